"""/api/leads/{id}/attachments/: list, multipart upload, metadata, download and soft delete."""

from urllib.parse import quote

import pytest

from leads.attachments import add_attachment
from leads.models import Activity, Attachment
from leads.tests.api.contract import PAGE_KEYS, USER_REF_KEYS, assert_error, client_for
from leads.tests.attachment_files import (
    ACCEPTED_SAMPLES,
    JPEG_BYTES,
    PDF_BYTES,
    PNG_BYTES,
    SAMPLE_IDS,
    upload,
)
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

ATTACHMENT_KEYS = {"id", "filename", "content_type", "size", "uploaded_at", "uploaded_by", "download_url"}


def list_url(lead):
    return f"/api/leads/{lead.pk}/attachments/"


def detail_url(lead, attachment):
    return f"/api/leads/{lead.pk}/attachments/{attachment.pk}/"


def download_url(lead, attachment):
    return f"/api/leads/{lead.pk}/attachments/{attachment.pk}/download/"


def post_file(client, lead, file, **extra):
    return client.post(list_url(lead), {"file": file}, format="multipart", **extra)


@pytest.fixture
def attachment(lead, sales):
    return add_attachment(lead=lead, file=upload("cv.pdf"), actor=sales)


@pytest.mark.parametrize(("name", "content", "content_type"), ACCEPTED_SAMPLES, ids=SAMPLE_IDS)
def test_upload_each_accepted_type(as_sales, lead, sales, name, content, content_type):
    response = post_file(as_sales, lead, upload(name, content))
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == ATTACHMENT_KEYS
    assert (body["filename"], body["content_type"], body["size"]) == (name, content_type, len(content))
    assert set(body["uploaded_by"]) == USER_REF_KEYS and body["uploaded_by"]["id"] == sales.pk
    assert body["download_url"].endswith(f"/api/leads/{lead.pk}/attachments/{body['id']}/download/")
    assert response["Location"] == body["download_url"]
    activity = lead.activities.get(kind=Activity.Kind.ATTACHMENT_ADDED)
    assert activity.data["attachment_id"] == body["id"] and activity.actor == sales


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("cv.pdf", PNG_BYTES, "named like a PDF"),
        ("photo.png", b"GIF89a not a png", "named like a PNG image"),
        ("cv.pdf", b"", "is empty"),
        ("../../etc/passwd.exe", PDF_BYTES, "not an accepted file type"),
    ],
)
def test_refused_upload_names_the_file_field(as_sales, lead, name, content, says):
    response = post_file(as_sales, lead, upload(name, content))
    error = assert_error(response, 400, code="invalid", fields={"file"})
    assert says in error["fields"]["file"][0] and "Accepted files" in error["fields"]["file"][0]
    assert not Attachment.objects.exists()


def test_oversize_upload_says_the_limit(as_sales, lead, settings):
    settings.ATTACHMENT_MAX_BYTES = 1024 * 1024
    response = post_file(as_sales, lead, upload("big.jpg", JPEG_BYTES + b"\0" * 1024 * 1024))
    error = assert_error(response, 400, fields={"file"})
    assert "at most 1 MB" in error["fields"]["file"][0]


def test_upload_without_a_file(as_sales, lead):
    response = as_sales.post(list_url(lead), {"note": "no file"}, format="multipart")
    error = assert_error(response, 400, fields={"file"})
    assert "Choose a file" in error["fields"]["file"][0]


def test_json_upload_is_415(as_sales, lead):
    assert_error(as_sales.post(list_url(lead), {"file": "x"}, format="json"), 415)


def test_path_traversal_name_is_sanitised(as_sales, lead):
    response = post_file(as_sales, lead, upload("../../etc/passwd.pdf"))
    assert response.json()["filename"] == "passwd.pdf"
    response = post_file(as_sales, lead, upload("C:\\x\\a.pdf"))
    assert response.json()["filename"] == "a.pdf"


def test_list_is_paginated_newest_first(as_sales, lead, sales):
    files = [add_attachment(lead=lead, file=upload(f"cv{i}.pdf"), actor=sales) for i in range(3)]
    response = as_sales.get(list_url(lead), {"limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"attachments", *PAGE_KEYS}
    assert body["count"] == 3 and body["totalPages"] == 2 and body["next"]
    assert [row["id"] for row in body["attachments"]] == [files[2].pk, files[1].pk]


def test_list_leaves_out_deleted_files(as_manager, lead, attachment, manager):
    from leads.attachments import delete_attachment

    delete_attachment(attachment=attachment, actor=manager)
    assert as_manager.get(list_url(lead)).json()["count"] == 0


def test_metadata(as_sales, lead, attachment):
    body = as_sales.get(detail_url(lead, attachment)).json()
    assert body["id"] == attachment.pk and body["filename"] == "cv.pdf"
    assert body["download_url"] == f"http://testserver{download_url(lead, attachment)}"


def test_download_is_an_attachment(as_sales, lead, sales):
    attachment = add_attachment(lead=lead, file=upload("Zoë CV.pdf"), actor=sales)
    response = as_sales.get(download_url(lead, attachment), HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF_BYTES
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f"attachment; filename*=utf-8''{quote('Zoë CV.pdf')}"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_download_errors_are_json_whatever_accept_says(as_sales, lead):
    response = as_sales.get(f"/api/leads/{lead.pk}/attachments/999999/download/", HTTP_ACCEPT="image/png")
    assert_error(response, 404)


def test_private_sharing_hides_another_salespersons_files(settings, lead, attachment, other_sales, manager):
    settings.LEAD_SHARING = "private"
    other = client_for(other_sales)
    for url in (list_url(lead), detail_url(lead, attachment), download_url(lead, attachment)):
        assert_error(other.get(url), 404)
    assert_error(other.delete(detail_url(lead, attachment)), 404)
    assert_error(post_file(other, lead, upload()), 404)
    assert client_for(manager).get(download_url(lead, attachment)).status_code == 200


def test_delete_is_soft_and_recorded(as_sales, lead, attachment, sales):
    response = as_sales.delete(detail_url(lead, attachment))
    assert response.status_code == 204
    attachment.refresh_from_db()
    assert attachment.deleted_at is not None and attachment.deleted_by == sales
    assert lead.activities.filter(kind=Activity.Kind.ATTACHMENT_DELETED, actor=sales).exists()
    assert_error(as_sales.get(download_url(lead, attachment)), 404)
    assert_error(as_sales.get(detail_url(lead, attachment)), 404)
    assert_error(as_sales.delete(detail_url(lead, attachment)), 404)


def test_reader_may_not_delete_or_upload(settings, lead, attachment, as_other_sales):
    settings.LEAD_SHARING = "read"
    assert_error(as_other_sales.delete(detail_url(lead, attachment)), 403)
    assert_error(post_file(as_other_sales, lead, upload()), 403)
    assert Attachment.objects.live().count() == 1


def test_another_leads_file_is_404(as_sales, sales, attachment):
    other_lead = LeadFactory(owner=sales)
    assert_error(as_sales.get(detail_url(other_lead, attachment)), 404)
    assert_error(as_sales.get(download_url(other_lead, attachment)), 404)


def test_upload_with_idempotency_key_runs_once(as_sales, lead):
    first = post_file(as_sales, lead, upload(), HTTP_IDEMPOTENCY_KEY="upload-1")
    again = post_file(as_sales, lead, upload(), HTTP_IDEMPOTENCY_KEY="upload-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and Attachment.objects.count() == 1


def test_anonymous_is_401(api, lead, attachment):
    for url in (list_url(lead), detail_url(lead, attachment), download_url(lead, attachment)):
        assert_error(api.get(url), 401)


def test_schema_documents_multipart_upload_and_binary_download(as_sales):
    schema = as_sales.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    upload_op = schema["paths"]["/api/leads/{id}/attachments/"]["post"]
    file_schema = upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "file" in str(file_schema) or "$ref" in file_schema
    download = schema["paths"]["/api/leads/{id}/attachments/{attachment_id}/download/"]["get"]
    assert download["responses"]["200"]["content"]["application/pdf"]["schema"]["format"] == "binary"


# --- query counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("file_count", [2, 30])
def test_list_query_count_is_fixed(as_sales, lead, sales, file_count, django_assert_max_num_queries):
    for i in range(file_count):
        add_attachment(lead=lead, file=upload(f"cv{i}.pdf"), actor=sales)
    with django_assert_max_num_queries(4):
        response = as_sales.get(list_url(lead))
    assert response.status_code == 200


def test_other_endpoints_query_counts(as_sales, lead, attachment, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        assert as_sales.get(detail_url(lead, attachment)).status_code == 200
    with django_assert_max_num_queries(2):
        assert as_sales.get(download_url(lead, attachment)).status_code == 200
    with django_assert_max_num_queries(10):
        assert post_file(as_sales, lead, upload()).status_code == 201
    with django_assert_max_num_queries(8):
        assert as_sales.delete(detail_url(lead, attachment)).status_code == 204
