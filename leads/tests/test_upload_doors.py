"""Bad uploads through every door that takes a file: the lead page, the API, /apply/, the public API, imports.

The validators have their own tests (test_attachments.py, test_imports.py); this file sends the
same hostile files through each door as raw multipart requests (the test client would clean a
file name before it left, a hostile client does not) and checks each door refuses them alike,
with a message naming the problem, and writes nothing; a hostile *name* on a good file is
accepted, stored at a random path inside MEDIA_ROOT and shown sanitised.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.roles import Role
from leads import intake
from leads.models import Attachment, ImportJob, Lead
from leads.tests.attachment_files import PDF_BYTES, PNG_BYTES
from leads.tests.factories import UserFactory

BOUNDARY = "----leadboardUploadDoorBoundary"
CSV_BYTES = b"Name,E-mail\nUma Upload,uma@upload.example\n"


def multipart(fields, file_field, filename, content):
    """A multipart/form-data body written by hand, so the file name goes out exactly as given."""
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{file_field}"; filename="'.encode()
        + quoted
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


@dataclass
class Door:
    name: str
    file_field: str
    fields: dict
    ok_status: int
    is_api: bool
    makes: str  # "attachment" or "import"


DOORS = {
    "lead page": Door("lead page", "file", {}, 302, False, "attachment"),
    "API attachments": Door("API attachments", "file", {}, 201, True, "attachment"),
    "apply form": Door(
        "apply form",
        "resume",
        {
            "first_name": "Uma",
            "last_name": "Upload",
            "email": "uma@upload.example",
            "consent": "on",
            "website": "",
        },
        302,
        False,
        "attachment",
    ),
    "public API": Door(
        "public API",
        "resume",
        {"first_name": "Uma", "last_name": "Upload", "email": "uma@upload.example", "consent": "true"},
        202,
        True,
        "attachment",
    ),
    "import page": Door("import page", "file", {}, 302, False, "import"),
    "API imports": Door("API imports", "file", {}, 201, True, "import"),
}
ATTACHMENT_DOORS = [name for name, door in DOORS.items() if door.makes == "attachment"]
IMPORT_DOORS = [name for name, door in DOORS.items() if door.makes == "import"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def owner(db):
    owner = UserFactory(role=Role.SALES, email="uploader@upload.example")
    intake.update_assignment_rule(actor=UserFactory(role=Role.MANAGER), members=[owner])
    return owner


@pytest.fixture
def target_lead(owner):
    from leads import services

    return services.create_lead(actor=owner, name="Ulla Target", email="ulla@upload.example")


def send(door_name, owner, target_lead, filename, content, django_assert_max_num_queries):
    door = DOORS[door_name]
    url = {
        "lead page": reverse("leads:attachment_upload", args=[target_lead.pk]),
        "API attachments": reverse("api:lead-attachments", args=[target_lead.pk]),
        "apply form": reverse("leads:apply"),
        "public API": reverse("api:public_lead_create"),
        "import page": reverse("leads:imports"),
        "API imports": reverse("api:import-list"),
    }[door_name]
    client = APIClient()
    if door_name not in ("apply form", "public API"):
        client.force_login(owner)
    with django_assert_max_num_queries(40):
        return client.generic(
            "POST",
            url,
            multipart(door.fields, door.file_field, filename, content),
            content_type=f"multipart/form-data; boundary={BOUNDARY}",
        )


def assert_refused(door_name, response, says):
    door = DOORS[door_name]
    assert response.status_code == 400, (door_name, response.status_code, response.content[:300])
    if door.is_api:
        error = response.json()["error"]
        assert set(error["fields"]) == {door.file_field}, error
        message = " ".join(error["fields"][door.file_field])
    else:
        message = response.content.decode()
    assert says.lower() in message.lower(), (door_name, says, message[:2000])
    assert not Attachment.objects.exists() and not ImportJob.objects.exists()
    if door_name in ("apply form", "public API"):
        assert not Lead.objects.filter(email="uma@upload.example").exists()


# --- refused: the file itself is wrong -------------------------------------------------------------

BAD_ATTACHMENTS = [
    ("zero bytes", "cv.pdf", b"", "empty"),
    ("a program behind .pdf", "cv.pdf", b"MZ\x90\x00\x03\x00\x00\x00 this program cannot be run", "PDF"),
    ("a PNG behind .pdf", "cv.pdf", PNG_BYTES, "PDF"),
    ("HTML behind .png", "photo.png", b"<html><script>alert(1)</script></html>", "PNG"),
    ("a PDF behind .html", "page.html", PDF_BYTES, "not an accepted file type"),
    ("a PDF behind .exe", "setup.exe", PDF_BYTES, "not an accepted file type"),
    # Django's multipart parser drops a name that is only dots: as if no file had been sent.
    ("a name that is only ..", "..", PDF_BYTES, "file"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("door_name", ATTACHMENT_DOORS)
@pytest.mark.parametrize(
    ("case", "filename", "content", "says"), BAD_ATTACHMENTS, ids=[c[0] for c in BAD_ATTACHMENTS]
)
def test_a_bad_attachment_is_refused_at_every_door(
    door_name, case, filename, content, says, owner, target_lead, django_assert_max_num_queries
):
    response = send(door_name, owner, target_lead, filename, content, django_assert_max_num_queries)
    if filename == ".." and door_name in ("apply form", "public API"):
        # The résumé is optional there: a dropped file is a submission without one.
        assert response.status_code == DOORS[door_name].ok_status and not Attachment.objects.exists()
        return
    assert_refused(door_name, response, says)


@pytest.mark.django_db
@pytest.mark.parametrize("door_name", ATTACHMENT_DOORS)
def test_an_oversize_attachment_is_refused_at_every_door_with_the_limit(
    door_name, owner, target_lead, settings, django_assert_max_num_queries
):
    settings.ATTACHMENT_MAX_BYTES = 1024 * 1024
    content = PDF_BYTES + b"%" * (1024 * 1024)
    response = send(door_name, owner, target_lead, "cv.pdf", content, django_assert_max_num_queries)
    assert_refused(door_name, response, "1 MB")


BAD_IMPORTS = [
    ("zero bytes", "leads.csv", b"", "empty"),
    (
        "an Excel workbook behind .csv",
        "leads.csv",
        b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)),
        "Excel",
    ),
    ("binary behind .csv", "leads.csv", b"\x00\x01\x02\x03\xff\xfe\x00binary\x00" * 10, "binary"),
    ("no header", "leads.csv", b"1,2,3\n4,5,6\n", "header"),
    ("a name that is only ..", "..", CSV_BYTES, "file"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("door_name", IMPORT_DOORS)
@pytest.mark.parametrize(
    ("case", "filename", "content", "says"), BAD_IMPORTS, ids=[c[0] for c in BAD_IMPORTS]
)
def test_a_bad_import_file_is_refused_at_every_door(
    door_name, case, filename, content, says, owner, target_lead, django_assert_max_num_queries
):
    response = send(door_name, owner, target_lead, filename, content, django_assert_max_num_queries)
    assert_refused(door_name, response, says)


@pytest.mark.django_db
@pytest.mark.parametrize("door_name", IMPORT_DOORS)
def test_an_oversize_import_is_refused_at_every_door_with_the_limit(
    door_name, owner, target_lead, settings, django_assert_max_num_queries
):
    settings.IMPORT_MAX_BYTES = 1024 * 1024
    content = CSV_BYTES + b"Row,row@upload.example\n" * (1024 * 1024 // 20)
    response = send(door_name, owner, target_lead, "big.csv", content, django_assert_max_num_queries)
    assert_refused(door_name, response, "1 MB")


# --- accepted: a good file under a hostile name ------------------------------------------------------

HOSTILE_NAMES = [
    ("relative traversal", "../../etc/passwd.pdf"),
    ("absolute path", "/etc/passwd.pdf"),
    ("windows path", "C:\\Windows\\System32\\cv.pdf"),
    ("windows traversal", "..\\..\\boot.ini.pdf"),
    ("NUL byte", "evil\x00name.pdf"),
    ("control characters", "bell\x07\x1b[31mred.pdf"),
    ("very long", "x" * 400 + ".pdf"),
    ("right-to-left override", "invoice\u202efdp.exe.pdf"),
    ("unicode", "Résumé – Zoë 履歴書.pdf"),
    ("shell and HTML", "<img src=x onerror=alert(1)>;rm -rf ~|`id`.pdf"),
    ("dots", "....pdf"),
]


def _assert_safe_name(name):
    assert name and len(name) <= 120, name
    assert "/" not in name and "\\" not in name and not name.startswith("."), name
    assert not any(ord(char) < 32 or char in "\u202e\u202d" for char in name), name
    assert name.lower().endswith((".pdf", ".csv")), name


def _assert_stored_safely(stored, settings, prefix):
    media = Path(settings.MEDIA_ROOT).resolve()
    path = (media / stored).resolve()
    assert stored.startswith(prefix) and ".." not in stored, stored
    assert path.is_relative_to(media) and path.is_file(), path
    # The random path names nothing the uploader chose.
    assert not any(word in stored for word in ("passwd", "boot", "evil", "Windows", "invoice")), stored


@pytest.mark.django_db
@pytest.mark.parametrize("door_name", ATTACHMENT_DOORS)
@pytest.mark.parametrize(("case", "filename"), HOSTILE_NAMES, ids=[c[0] for c in HOSTILE_NAMES])
def test_a_hostile_name_on_a_good_attachment_is_stored_at_a_random_path(
    door_name, case, filename, owner, target_lead, settings, django_assert_max_num_queries
):
    response = send(door_name, owner, target_lead, filename, PDF_BYTES, django_assert_max_num_queries)
    assert response.status_code == DOORS[door_name].ok_status, (response.status_code, response.content[:500])
    attachment = Attachment.objects.get()
    _assert_safe_name(attachment.filename)
    _assert_stored_safely(attachment.file.name, settings, "attachments/")
    assert Path(settings.MEDIA_ROOT, attachment.file.name).read_bytes() == PDF_BYTES


@pytest.mark.django_db
@pytest.mark.parametrize("door_name", IMPORT_DOORS)
@pytest.mark.parametrize(("case", "filename"), HOSTILE_NAMES, ids=[c[0] for c in HOSTILE_NAMES])
def test_a_hostile_name_on_a_good_import_is_stored_at_a_random_path(
    door_name, case, filename, owner, target_lead, settings, django_assert_max_num_queries
):
    filename = filename.removesuffix(".pdf") + ".csv"
    response = send(door_name, owner, target_lead, filename, CSV_BYTES, django_assert_max_num_queries)
    assert response.status_code == DOORS[door_name].ok_status, (response.status_code, response.content[:500])
    job = ImportJob.objects.get()
    _assert_safe_name(job.filename)
    _assert_stored_safely(job.file.name, settings, "imports/")


@pytest.mark.django_db
def test_an_import_name_with_a_nul_byte_is_sanitised_before_it_is_stored(owner):
    """A caller of the service (not the multipart parser, which drops it) may pass a NUL byte,
    which PostgreSQL refuses in text: the import used to fail with a 500 there. The name is
    now cleaned as an attachment's is."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from leads import imports

    job = imports.start_upload(
        actor=owner, file=SimpleUploadedFile("evil\x00\u202ename.csv", CSV_BYTES, "text/csv")
    )
    assert ImportJob.objects.get(pk=job.pk).filename == "evilname.csv"
