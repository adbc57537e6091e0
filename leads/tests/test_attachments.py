"""Files on leads: what uploads are accepted, the services' records, and the lead page's Files panel."""

import io
import zipfile
from urllib.parse import quote

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from leads import policies, selectors, services
from leads.attachments import add_attachment, delete_attachment, safe_filename, validate_upload
from leads.events import lead_changed
from leads.models import Activity, Attachment
from leads.tests.attachment_files import (
    ACCEPTED_SAMPLES,
    DOCX_BYTES,
    JPEG_BYTES,
    ODT_BYTES,
    PDF_BYTES,
    PLAIN_ZIP_BYTES,
    PNG_BYTES,
    SAMPLE_IDS,
    TEXT_BYTES,
    upload,
)
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def announced():
    events = []

    def record(sender, event, lead_id, actor_id, payload, **kwargs):
        events.append((event, lead_id, actor_id, payload))

    lead_changed.connect(record, weak=False, dispatch_uid="test_attachments.announced")
    yield events
    lead_changed.disconnect(dispatch_uid="test_attachments.announced")


def refusal(uploaded):
    with pytest.raises(ValidationError) as excinfo:
        validate_upload(uploaded)
    assert set(excinfo.value.message_dict) == {"file"}
    (message,) = excinfo.value.message_dict["file"]
    return message


def page_url(name, lead, attachment=None):
    args = [lead.pk] if attachment is None else [lead.pk, attachment.pk]
    return reverse(f"leads:{name}", args=args)


# --- validate_upload ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "content_type"), ACCEPTED_SAMPLES, ids=SAMPLE_IDS)
def test_each_accepted_type_is_recognised_by_its_content(name, content, content_type):
    assert validate_upload(upload(name, content)) == (name, content_type)


def test_upper_case_extension_is_accepted_and_normalised():
    assert validate_upload(upload("SCAN.PDF", PDF_BYTES)) == ("SCAN.pdf", "application/pdf")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("cv.pdf", b"MZ\x90\x00 this is a Windows program"),
        ("photo.png", b"\x89PNG\r\n\x1a\n but no IHDR chunk follows"),
        ("cv.docx", PLAIN_ZIP_BYTES),
        ("cv.odt", DOCX_BYTES.replace(b"word/", b"wurd/")),
        ("notes.txt", b"text with a \x00 NUL byte"),
        ("notes.txt", b"\xff\xfe not UTF-8 \xc3\x28"),
        ("cv.doc", b"<html>a web page saved as .doc</html>\x00"),
    ],
)
def test_wrong_content_behind_a_right_extension_is_refused(name, content):
    message = refusal(upload(name, content))
    assert name in message and "Accepted files: PDF" in message


@pytest.mark.parametrize(
    ("name", "content", "inside"),
    [
        ("photo.png", PDF_BYTES, "a PDF"),
        ("cv.pdf", PNG_BYTES, "a PNG image"),
        ("cv.pdf", TEXT_BYTES, "plain text"),
        ("photo.jpg", PNG_BYTES, "a PNG image"),
        ("cv.docx", ODT_BYTES, "OpenDocument"),
        ("notes.txt", JPEG_BYTES, "a JPEG image"),
    ],
)
def test_extension_must_agree_with_the_content(name, content, inside):
    message = refusal(upload(name, content))
    assert "named like" in message and inside in message


@pytest.mark.parametrize("name", ["script.exe", "page.html", "image.svg", "archive.zip", "noextension"])
def test_other_types_are_refused_naming_what_is_accepted(name):
    message = refusal(upload(name, TEXT_BYTES))
    assert "not an accepted file type" in message
    assert "PDF, Word (DOC, DOCX), OpenDocument text (ODT), plain text (TXT), PNG and JPEG" in message


def test_oversize_is_refused_with_the_limit_in_megabytes(settings):
    settings.ATTACHMENT_MAX_BYTES = 2 * 1024 * 1024
    message = refusal(upload("big.pdf", PDF_BYTES + b"0" * (2 * 1024 * 1024)))
    assert "at most 2 MB" in message
    # Exactly at the limit is fine.
    exact = PDF_BYTES + b"0" * (2 * 1024 * 1024 - len(PDF_BYTES))
    assert validate_upload(upload("exact.pdf", exact))[1] == "application/pdf"


def test_default_limit_is_ten_megabytes(settings):
    del settings.ATTACHMENT_MAX_BYTES
    message = refusal(upload("big.pdf", PDF_BYTES + b"0" * (10 * 1024 * 1024)))
    assert "at most 10 MB" in message


def test_empty_file_is_refused():
    assert "is empty" in refusal(upload("cv.pdf", b""))


def test_no_file_at_all_is_refused():
    assert "Choose a file" in refusal(None)


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\x\\a.pdf", "a.pdf"),
        ("/abs/path/cv.pdf", "cv.pdf"),
        ("..\\..\\boot.ini.pdf", "boot.ini.pdf"),
        ("evil\x00name\x1b[31m.pdf", "evilname[31m.pdf"),
        ("bidi\u202eFDP.exe.pdf", "bidiFDP.exe.pdf"),
        ('<script>"x"|y?.pdf', "_script__x__y_.pdf"),
        ("   spaced    out   name .pdf", "spaced out name.pdf"),
        ("Résumé – Zoë.pdf", "Résumé – Zoë.pdf"),
        ("....pdf", "file.pdf"),
        ("..", "file"),
    ],
)
def test_filenames_are_sanitised(raw, safe):
    assert safe_filename(raw) == safe


def test_long_names_are_cut_keeping_the_extension():
    name = safe_filename("x" * 500 + ".docx")
    assert len(name) <= 120 and name.endswith(".docx")


def test_path_traversal_upload_is_stored_at_a_random_path(lead, sales):
    attachment = add_attachment(lead=lead, file=upload("../../etc/passwd.pdf"), actor=sales)
    assert attachment.filename == "passwd.pdf"
    assert attachment.file.name.startswith("attachments/") and "passwd" not in attachment.file.name
    assert ".." not in attachment.file.name
    assert default_storage.exists(attachment.file.name)


# --- services ----------------------------------------------------------------------------------


def test_add_attachment_stores_the_file_and_records_it(
    lead, sales, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    attachment.refresh_from_db()
    assert (attachment.lead, attachment.uploaded_by, attachment.size) == (lead, sales, len(PDF_BYTES))
    assert attachment.content_type == "application/pdf"
    with default_storage.open(attachment.file.name, "rb") as stored:
        assert stored.read() == PDF_BYTES
    activity = lead.activities.get(kind=Activity.Kind.ATTACHMENT_ADDED)
    assert activity.actor == sales and activity.body == "cv.pdf"
    assert activity.data == {
        "attachment_id": attachment.pk,
        "filename": "cv.pdf",
        "size": len(PDF_BYTES),
        "content_type": "application/pdf",
    }
    assert announced == [("attachment.added", lead.pk, sales.pk, {"attachment_id": attachment.pk})]


def test_two_uploads_of_one_name_get_different_paths(lead, sales):
    first = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    second = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    assert first.file.name != second.file.name


def test_record_false_leaves_the_timeline_to_the_caller(lead, announced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=None, record=False)
    assert attachment.uploaded_by is None
    assert not lead.activities.filter(kind=Activity.Kind.ATTACHMENT_ADDED).exists()
    assert [event for event, *_ in announced] == ["attachment.added"]


def test_refused_upload_writes_nothing(lead, sales):
    with pytest.raises(ValidationError):
        add_attachment(lead=lead, file=upload("cv.pdf", PNG_BYTES), actor=sales)
    assert not Attachment.objects.exists()
    assert not lead.activities.filter(kind=Activity.Kind.ATTACHMENT_ADDED).exists()


def test_who_may_attach(settings, lead, sales, other_sales, manager):
    settings.LEAD_SHARING = "read"
    assert policies.can_attach(None, lead) and policies.can_attach(sales, lead)
    assert policies.can_attach(manager, lead)
    assert not policies.can_attach(other_sales, lead)
    with pytest.raises(PermissionDenied):
        add_attachment(lead=lead, file=upload(), actor=other_sales)
    settings.LEAD_SHARING = "write"
    assert policies.can_attach(other_sales, lead)
    services.delete_lead(lead=lead, actor=manager)
    lead.refresh_from_db()
    assert not policies.can_attach(None, lead) and not policies.can_attach(manager, lead)


def test_delete_is_soft_and_recorded(lead, sales, manager, announced, django_capture_on_commit_callbacks):
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    with django_capture_on_commit_callbacks(execute=True):
        delete_attachment(attachment=attachment, actor=manager)
    attachment.refresh_from_db()
    assert attachment.deleted_at is not None and attachment.deleted_by == manager
    assert default_storage.exists(attachment.file.name), "a soft delete keeps the file"
    assert list(selectors.lead_attachments(lead)) == []
    activity = lead.activities.get(kind=Activity.Kind.ATTACHMENT_DELETED)
    assert activity.actor == manager and activity.data["attachment_id"] == attachment.pk
    assert announced[-1] == ("attachment.deleted", lead.pk, manager.pk, {"attachment_id": attachment.pk})
    with pytest.raises(ValidationError):
        delete_attachment(attachment=attachment, actor=manager)


def test_who_may_delete(settings, lead, sales, other_sales, manager):
    settings.LEAD_SHARING = "write"
    by_owner = add_attachment(lead=lead, file=upload(), actor=sales)
    by_other = add_attachment(lead=lead, file=upload(), actor=other_sales)
    by_form = add_attachment(lead=lead, file=upload(), actor=None)
    assert policies.can_delete_attachment(manager, by_owner)
    # The owner may delete every file on their lead; another salesperson only their own upload.
    assert all(policies.can_delete_attachment(sales, a) for a in (by_owner, by_other, by_form))
    assert policies.can_delete_attachment(other_sales, by_other)
    assert not policies.can_delete_attachment(other_sales, by_owner)
    assert not policies.can_delete_attachment(other_sales, by_form)
    settings.LEAD_SHARING = "read"  # no longer able to edit the lead: not even their own upload
    assert not policies.can_delete_attachment(other_sales, by_other)
    with pytest.raises(PermissionDenied):
        delete_attachment(attachment=by_other, actor=other_sales)


# --- the lead page -----------------------------------------------------------------------------


def test_lead_page_lists_files_with_download_and_delete(sales_client, lead, sales):
    attachment = add_attachment(lead=lead, file=upload("Résumé.pdf"), actor=sales)
    body = sales_client.get(page_url("detail", lead)).content.decode()
    assert 'id="files"' in body and "Résumé.pdf" in body and "application/pdf" in body
    assert page_url("attachment_download", lead, attachment) in body
    assert page_url("attachment_delete", lead, attachment) in body
    assert 'enctype="multipart/form-data"' in body


def test_reader_sees_files_but_no_upload_or_delete(client, settings, lead, sales, other_sales):
    settings.LEAD_SHARING = "read"
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    client.force_login(other_sales)
    body = client.get(page_url("detail", lead)).content.decode()
    assert "cv.pdf" in body and page_url("attachment_download", lead, attachment) in body
    assert page_url("attachment_delete", lead, attachment) not in body
    assert f'action="{page_url("attachment_upload", lead)}"' not in body


def test_upload_from_the_lead_page(sales_client, lead, sales):
    response = sales_client.post(page_url("attachment_upload", lead), {"file": upload("cv.docx", DOCX_BYTES)})
    assert response.status_code == 302 and response["Location"].endswith("#files")
    attachment = Attachment.objects.get()
    assert attachment.filename == "cv.docx" and attachment.uploaded_by == sales
    assert lead.activities.filter(kind=Activity.Kind.ATTACHMENT_ADDED).exists()
    page = sales_client.get(response["Location"]).content.decode()
    assert "Attached cv.docx." in page


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"file": upload("cv.png", PDF_BYTES)}, "named like a PNG image"),
        ({"file": upload("cv.pdf", b"")}, "is empty"),
        ({}, "Choose a file"),
    ],
)
def test_refused_upload_shows_why_on_a_small_page(sales_client, lead, data, expected):
    response = sales_client.post(page_url("attachment_upload", lead), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert expected in body and "The file was not attached." in body
    assert 'enctype="multipart/form-data"' in body  # the form to try again
    assert not Attachment.objects.exists()


def test_upload_by_a_reader_is_forbidden(client, settings, lead, other_sales):
    settings.LEAD_SHARING = "read"
    client.force_login(other_sales)
    response = client.post(page_url("attachment_upload", lead), {"file": upload()})
    assert response.status_code == 403 and not Attachment.objects.exists()


def test_download_is_an_attachment_with_the_stored_type(sales_client, lead, sales):
    attachment = add_attachment(lead=lead, file=upload("photo.png", PNG_BYTES), actor=sales)
    response = sales_client.get(page_url("attachment_download", lead, attachment))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PNG_BYTES
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="photo.png"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_download_of_a_non_ascii_name_uses_rfc_5987(sales_client, lead, sales):
    attachment = add_attachment(lead=lead, file=upload("Résumé Zoë.pdf"), actor=sales)
    response = sales_client.get(page_url("attachment_download", lead, attachment))
    assert response["Content-Disposition"] == f"attachment; filename*=utf-8''{quote('Résumé Zoë.pdf')}"


def test_private_sharing_hides_files_of_others_leads(client, settings, lead, sales, other_sales, manager):
    settings.LEAD_SHARING = "private"
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    client.force_login(other_sales)
    assert client.get(page_url("attachment_download", lead, attachment)).status_code == 404
    assert client.get(page_url("attachment_delete", lead, attachment)).status_code == 404
    assert client.post(page_url("attachment_upload", lead), {"file": upload()}).status_code == 404
    client.force_login(manager)
    assert client.get(page_url("attachment_download", lead, attachment)).status_code == 200


def test_deleted_or_other_leads_file_is_404(sales_client, lead, sales, manager):
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    other_lead = LeadFactory(owner=sales)
    assert sales_client.get(page_url("attachment_download", other_lead, attachment)).status_code == 404
    assert sales_client.get(reverse("leads:attachment_download", args=[lead.pk, 999999])).status_code == 404
    delete_attachment(attachment=attachment, actor=manager)
    assert sales_client.get(page_url("attachment_download", lead, attachment)).status_code == 404
    assert sales_client.get(page_url("attachment_delete", lead, attachment)).status_code == 404


def test_file_missing_from_storage_is_404_not_500(sales_client, lead, sales):
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    default_storage.delete(attachment.file.name)
    assert sales_client.get(page_url("attachment_download", lead, attachment)).status_code == 404


def test_delete_asks_first_then_deletes_softly(sales_client, lead, sales):
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    confirm = sales_client.get(page_url("attachment_delete", lead, attachment))
    assert confirm.status_code == 200 and "Delete cv.pdf?" in confirm.content.decode()
    assert Attachment.objects.live().count() == 1
    response = sales_client.post(page_url("attachment_delete", lead, attachment))
    assert response.status_code == 302
    attachment.refresh_from_db()
    assert attachment.deleted_by == sales
    assert lead.activities.filter(kind=Activity.Kind.ATTACHMENT_DELETED).exists()
    page = sales_client.get(page_url("detail", lead)).content.decode()
    assert "Deleted cv.pdf." in page and page_url("attachment_download", lead, attachment) not in page


def test_delete_by_someone_not_allowed_is_forbidden(client, settings, lead, sales, other_sales):
    settings.LEAD_SHARING = "read"
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    client.force_login(other_sales)
    assert client.post(page_url("attachment_delete", lead, attachment)).status_code == 403
    assert Attachment.objects.live().count() == 1


def test_download_needs_login(client, lead, sales):
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    response = client.get(page_url("attachment_download", lead, attachment))
    assert response.status_code == 302 and "login" in response["Location"]


# --- query counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("file_count", [1, 20])
def test_files_panel_adds_one_query_whatever_the_number_of_files(manager_client, lead, sales, file_count):
    for _ in range(file_count):
        add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    with CaptureQueriesContext(connection) as queries:
        response = manager_client.get(page_url("detail", lead))
    assert response.status_code == 200
    attachment_queries = [q for q in queries.captured_queries if "leads_attachment" in q["sql"]]
    assert len(attachment_queries) == 1


def test_upload_query_count(sales_client, lead, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = sales_client.post(page_url("attachment_upload", lead), {"file": upload()})
    assert response.status_code == 302


def test_download_query_count(sales_client, lead, sales, django_assert_max_num_queries):
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    with django_assert_max_num_queries(4):
        response = sales_client.get(page_url("attachment_download", lead, attachment))
    assert response.status_code == 200


def test_delete_query_counts(sales_client, lead, sales, django_assert_max_num_queries):
    attachment = add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)
    with django_assert_max_num_queries(6):
        assert sales_client.get(page_url("attachment_delete", lead, attachment)).status_code == 200
    # Session and user, lead, file; then lock, update, activity; then the session keeps the message.
    with django_assert_max_num_queries(12):
        assert sales_client.post(page_url("attachment_delete", lead, attachment)).status_code == 302


def test_a_corrupt_document_archive_is_a_clear_error_not_a_crash():
    """A zip whose deflate stream is broken raises zlib.error, not BadZipFile: still just refused."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", b"application/vnd.oasis.opendocument.text" * 2)
    data = bytearray(buffer.getvalue())
    start = 30 + len("mimetype")  # the entry's data follows its 30-byte local header and name
    data[start : start + 6] = b"\xff" * 6
    with pytest.raises(ValidationError) as refused:
        validate_upload(upload("cv.odt", bytes(data)))
    assert "file" in refused.value.message_dict
