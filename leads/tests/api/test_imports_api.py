"""/api/imports/: upload, mapping and preview, start, progress, cancel, revert, error report, who sees it."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from leads.models import ImportJob, Lead
from leads.tests.api.contract import PAGE_KEYS, assert_error
from leads.tests.factories import LeadFactory
from leads.tests.test_import_pages import CSV_TEXT

pytestmark = pytest.mark.django_db

URL = "/api/imports/"


def post_csv(client, text=CSV_TEXT, name="prospects.csv"):
    upload = SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")
    return client.post(URL, {"file": upload}, format="multipart")


def uploaded(client, text=CSV_TEXT):
    response = post_csv(client, text)
    assert response.status_code == 201, response.content[:500]
    return ImportJob.objects.get(pk=response.json()["id"])


def started(client, job, capture):
    with capture(execute=True):
        response = client.post(f"{URL}{job.pk}/start/")
    job.refresh_from_db()
    return response


def test_upload_answers_the_job_with_headers_suggestions_and_preview(as_manager, manager):
    response = post_csv(as_manager)
    assert response.status_code == 201
    body = response.json()
    assert response["Location"].endswith(f"{URL}{body['id']}/")
    assert body["headers"] == ["Name", "E-mail", "Company", "Potential"]
    assert body["mapping"] == {"0": "name", "1": "email", "2": "company"}
    assert body["status"] == "mapping" and body["filename"] == "prospects.csv"
    assert body["created_by"]["id"] == manager.pk
    assert body["available_fields"][:4] == ["name", "first_name", "last_name", "email"]
    assert [row["line"] for row in body["preview"]] == [2, 3, 4, 5, 6]
    assert [row["action"] for row in body["preview"]] == ["create", "create", "fail", "fail", "create"]
    assert body["preview"][2]["errors"]
    assert body["progress"]["finished"] is False
    assert not Lead.objects.filter(email__endswith="@import.example").exists()


def test_a_bad_file_is_a_400_naming_the_file(as_manager):
    response = as_manager.post(
        URL, {"file": SimpleUploadedFile("x.csv", b"", content_type="text/csv")}, format="multipart"
    )
    error = assert_error(response, 400, fields={"file"})
    assert error["fields"]["file"][0]
    assert ImportJob.objects.count() == 0


def test_no_file_is_a_400(as_manager):
    assert_error(as_manager.post(URL, {}, format="multipart"), 400, fields={"file"})


def test_json_upload_is_a_415(as_manager):
    assert_error(as_manager.post(URL, {"file": "a,b"}, format="json"), 415)


def test_patch_changes_the_mapping_and_answers_the_new_preview(as_manager):
    job = uploaded(as_manager)
    response = as_manager.patch(
        f"{URL}{job.pk}/",
        {"mapping": {"0": "name", "1": "email", "2": "company", "3": "value"}},
        format="json",
    )
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["mapping"]["3"] == "value"
    assert body["preview"][4]["action"] == "fail"  # "lots" is no deal value
    job.refresh_from_db()
    assert job.mapping["3"] == "value"


def test_patch_duplicate_mode_turns_skips_into_updates(as_manager):
    existing = LeadFactory(email="ada@import.example")
    job = uploaded(as_manager)
    response = as_manager.patch(f"{URL}{job.pk}/", {"duplicate_mode": "update"}, format="json")
    first = response.json()["preview"][0]
    assert (first["action"], first["existing_id"]) == ("update", existing.pk)


def test_patch_refuses_an_impossible_mapping(as_manager):
    job = uploaded(as_manager)
    response = as_manager.patch(f"{URL}{job.pk}/", {"mapping": {"2": "company"}}, format="json")
    error = assert_error(response, 400)
    assert "mapping" in error["fields"]
    job.refresh_from_db()
    assert job.mapping == {"0": "name", "1": "email", "2": "company"}


def test_patch_refuses_an_unknown_duplicate_mode(as_manager):
    job = uploaded(as_manager)
    assert_error(
        as_manager.patch(f"{URL}{job.pk}/", {"duplicate_mode": "merge"}, format="json"),
        400,
        fields={"duplicate_mode"},
    )


def test_start_runs_and_get_shows_the_result(as_manager, django_capture_on_commit_callbacks):
    job = uploaded(as_manager)
    response = started(as_manager, job, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    body = as_manager.get(f"{URL}{job.pk}/").json()
    assert body["status"] == "done"
    assert (body["created_count"], body["failed_count"]) == (3, 2)
    assert body["progress"]["percent"] == 100 and body["progress"]["finished"] is True


def test_the_error_report_is_csv(as_manager, django_capture_on_commit_callbacks):
    job = uploaded(as_manager)
    started(as_manager, job, django_capture_on_commit_callbacks)
    response = as_manager.get(f"{URL}{job.pk}/errors/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][-2:] == ["line", "reason"]
    assert [row[-2] for row in rows[1:]] == ["4", "5"]


def test_cancel_and_revert(as_manager, django_capture_on_commit_callbacks):
    waiting = uploaded(as_manager)
    cancelled = as_manager.post(f"{URL}{waiting.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    job = uploaded(as_manager)
    started(as_manager, job, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        reverted = as_manager.post(f"{URL}{job.pk}/revert/")
    assert reverted.status_code == 200 and reverted.json()["status"] == "reverted"
    assert not Lead.objects.filter(email__endswith="@import.example", deleted_at__isnull=True).exists()


def test_sales_may_not_revert(as_sales, django_capture_on_commit_callbacks):
    job = uploaded(as_sales)
    started(as_sales, job, django_capture_on_commit_callbacks)
    assert_error(as_sales.post(f"{URL}{job.pk}/revert/"), 403)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE


def test_others_imports_are_404_and_missing_from_the_list(as_sales, as_other_sales, as_manager):
    job = uploaded(as_sales)
    for method, path in [
        ("get", ""),
        ("patch", ""),
        ("post", "start/"),
        ("post", "cancel/"),
        ("post", "revert/"),
        ("get", "errors/"),
    ]:
        assert_error(getattr(as_other_sales, method)(f"{URL}{job.pk}/{path}", {}, format="json"), 404)
    assert as_other_sales.get(URL).json()["imports"] == []
    listed = as_manager.get(URL).json()
    assert set(listed) == {"imports", *PAGE_KEYS}
    assert [row["id"] for row in listed["imports"]] == [job.pk]


def test_anonymous_is_401(api):
    assert_error(api.get(URL), 401)


@pytest.mark.parametrize("jobs", [1, 15])
def test_list_query_count(as_manager, django_assert_max_num_queries, jobs):
    for _ in range(jobs):
        uploaded(as_manager)
    with django_assert_max_num_queries(6):
        response = as_manager.get(URL)
    assert response.json()["count"] == jobs


def test_endpoint_query_counts(as_manager, django_assert_max_num_queries, django_capture_on_commit_callbacks):
    with django_assert_max_num_queries(10):
        job = uploaded(as_manager)
    with django_assert_max_num_queries(6):
        assert as_manager.get(f"{URL}{job.pk}/").status_code == 200
    with django_assert_max_num_queries(14):
        assert (
            as_manager.patch(f"{URL}{job.pk}/", {"duplicate_mode": "update"}, format="json").status_code
            == 200
        )
    with django_assert_max_num_queries(12):
        assert as_manager.post(f"{URL}{job.pk}/start/").status_code == 202
    with django_assert_max_num_queries(6):
        response = as_manager.get(f"{URL}{job.pk}/errors/")
        b"".join(response.streaming_content)
    other = uploaded(as_manager)
    with django_assert_max_num_queries(8):
        assert as_manager.post(f"{URL}{other.pk}/cancel/").status_code == 200
