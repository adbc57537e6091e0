"""The import pages: upload, mapping and preview, start, result, error report, cancel, revert, history."""

import csv
import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from leads.models import ImportJob, Lead
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

# Five rows: two good, one with a bad e-mail, one without name, and one whose "Potential" is not a number.
# "Potential" is a header the suggestions do not know, so it starts out ignored.
CSV_TEXT = (
    "Name,E-mail,Company,Potential\n"
    "Ada Lovelace,ada@import.example,Analytical Engines,1200\n"
    "Grace Hopper,grace@import.example,Navy,900\n"
    "Bad Mail,not-an-email,Nowhere,10\n"
    ",nobody@import.example,Anon Ltd,5\n"
    "Alan Turing,alan@import.example,Bletchley,lots\n"
)


def csv_upload(text=CSV_TEXT, name="prospects.csv"):
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def upload(client, text=CSV_TEXT, name="prospects.csv"):
    return client.post(reverse("leads:imports"), {"file": csv_upload(text, name)})


def uploaded_job(client, text=CSV_TEXT):
    response = upload(client, text)
    assert response.status_code == 302, response.content[:500]
    return ImportJob.objects.latest("id")


def mapping_post(job, *, overrides=None, duplicate_mode="skip", **defaults):
    """The mapping form as the page posts it: the job's current mapping, with overrides by column."""
    mapping = {int(index): field for index, field in job.mapping.items()} | (overrides or {})
    data = {f"column_{index}": mapping.get(index, "") for index in range(len(job.headers))}
    return {**data, "duplicate_mode": duplicate_mode, **defaults}


def start(client, job, django_capture_on_commit_callbacks, **kwargs):
    # The in-process tasks backend runs the job when the request's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("leads:import_start", args=[job.pk]), mapping_post(job, **kwargs))
    job.refresh_from_db()
    return response


def preview_actions(response):
    """{line: (action, errors text)} from the preview table."""
    rows = {}
    for row in response.context["preview"]:
        preview_row = row[0]
        rows[preview_row.line] = (preview_row.action, " ".join(preview_row.errors))
    return rows


# --- upload ----------------------------------------------------------------------------------------


def test_the_imports_page_shows_the_upload_form(manager_client):
    response = manager_client.get(reverse("leads:imports"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'enctype="multipart/form-data"' in html and 'name="file"' in html
    assert "No imports yet." in html
    assert 'href="/imports/"' in html  # the nav link


def test_upload_leads_to_the_mapping_step_with_suggestions(manager_client):
    response = upload(manager_client)
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("leads:import_detail", args=[job.pk])
    page = manager_client.get(response["Location"])
    assert page.status_code == 200
    form = page.context["form"]
    assert form["column_0"].value() == "name"
    assert form["column_1"].value() == "email"
    assert form["column_2"].value() == "company"
    assert not form["column_3"].value()  # "Potential" is unknown: ignored until someone maps it
    html = page.content.decode()
    assert '<option value="email" selected>E-mail</option>' in html
    assert "Start import" in html and "Check again" in html
    # The preview: five rows, the bad ones marked with why; nothing written yet.
    actions = preview_actions(page)
    assert len(actions) == 5
    assert actions[2][0] == "create" and actions[3][0] == "create"
    assert actions[4][0] == "fail" and actions[5][0] == "fail"
    assert Lead.objects.filter(email__endswith="@import.example").count() == 0


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"", "empty.csv"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)) * 4, "sheet.csv"),
        (b"\x00\x01\x02\x03\xff\xfe\x00binary\x00\x00", "data.csv"),
    ],
    ids=["empty", "xlsx-renamed", "binary"],
)
def test_a_bad_file_is_refused_inline(manager_client, content, name):
    response = manager_client.post(
        reverse("leads:imports"), {"file": SimpleUploadedFile(name, content, content_type="text/csv")}
    )
    assert response.status_code == 400
    errors = response.context["form"].errors["file"]
    assert errors and all(message.strip() for message in errors)
    assert errors[0] in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_upload_without_a_file_says_so(manager_client):
    response = manager_client.post(reverse("leads:imports"), {})
    assert response.status_code == 400
    assert response.context["form"].errors["file"]


# --- mapping and preview ----------------------------------------------------------------------------


def test_check_again_shows_the_preview_with_the_edited_mapping(manager_client):
    job = uploaded_job(manager_client)
    before = preview_actions(manager_client.get(reverse("leads:import_detail", args=[job.pk])))
    assert before[6][0] == "create"  # "lots" is ignored while Potential is not mapped

    response = manager_client.post(
        reverse("leads:import_detail", args=[job.pk]), mapping_post(job, overrides={3: "value"})
    )
    assert response.status_code == 200
    after = preview_actions(response)
    assert after[6][0] == "fail" and after[6][1]
    assert after[2][0] == "create"
    assert response.context["form"]["column_3"].value() == "value"
    job.refresh_from_db()
    assert job.mapping["3"] == "value" and job.status == ImportJob.Status.MAPPING


def test_an_impossible_mapping_is_refused_with_the_reason(manager_client):
    job = uploaded_job(manager_client)
    # Neither a name nor an e-mail/phone column left.
    response = manager_client.post(
        reverse("leads:import_detail", args=[job.pk]), mapping_post(job, overrides={0: "", 1: ""})
    )
    assert response.status_code == 400
    assert response.context["form"].errors
    assert "The import was not started" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.MAPPING


def test_duplicates_follow_the_chosen_mode_in_the_preview(manager_client):
    existing = LeadFactory(email="ada@import.example", first_name="Ada", last_name="L")
    job = uploaded_job(manager_client)
    skip = preview_actions(
        manager_client.post(reverse("leads:import_detail", args=[job.pk]), mapping_post(job))
    )
    assert skip[2][0] == "skip"
    update = manager_client.post(
        reverse("leads:import_detail", args=[job.pk]), mapping_post(job, duplicate_mode="update")
    )
    assert preview_actions(update)[2][0] == "update"
    assert update.context["preview"][0][0].existing_id == existing.pk
    assert f'href="/leads/{existing.pk}/"' in update.content.decode()


def test_owner_default_is_for_managers_only(client, manager, sales):
    for user, offered in ((manager, True), (sales, False)):
        client.force_login(user)
        job = uploaded_job(client)
        form = client.get(reverse("leads:import_detail", args=[job.pk])).context["form"]
        assert ("owner" in form.fields) is offered


# --- start, result, error report --------------------------------------------------------------------


def test_start_runs_the_import_and_shows_the_counts(
    manager_client, manager, django_capture_on_commit_callbacks
):
    job = uploaded_job(manager_client)
    response = start(manager_client, job, django_capture_on_commit_callbacks, overrides={3: "value"})
    assert response.status_code == 302
    assert job.status == ImportJob.Status.DONE
    assert (job.created_count, job.failed_count) == (2, 3)
    assert set(Lead.objects.filter(email__endswith="@import.example").values_list("email", flat=True)) == {
        "ada@import.example",
        "grace@import.example",
    }
    page = manager_client.get(response["Location"])
    html = page.content.decode()
    assert '<dd data-count="created">2</dd>' in html and '<dd data-count="failed">3</dd>' in html
    assert 'value="100"' in html  # the progress bar is full
    assert reverse("leads:import_errors", args=[job.pk]) in html
    assert "Revert this import" in html


def test_the_error_report_lists_each_refused_row(manager_client, django_capture_on_commit_callbacks):
    job = uploaded_job(manager_client)
    start(manager_client, job, django_capture_on_commit_callbacks, overrides={3: "value"})
    response = manager_client.get(reverse("leads:import_errors", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert (
        "attachment" in response["Content-Disposition"]
        and "prospects-errors.csv" in response["Content-Disposition"]
    )
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Name", "E-mail", "Company", "Potential", "line", "reason"]
    assert [row[:4] for row in rows[1:]] == [
        ["Bad Mail", "not-an-email", "Nowhere", "10"],
        ["", "nobody@import.example", "Anon Ltd", "5"],
        ["Alan Turing", "alan@import.example", "Bletchley", "lots"],
    ]
    assert [row[4] for row in rows[1:]] == ["4", "5", "6"]
    assert all(row[5] for row in rows[1:])


def test_start_with_an_impossible_mapping_stays_on_the_mapping_step(
    manager_client, django_capture_on_commit_callbacks
):
    job = uploaded_job(manager_client)
    response = start(manager_client, job, django_capture_on_commit_callbacks, overrides={0: "", 1: ""})
    assert response.status_code == 400
    assert job.status == ImportJob.Status.MAPPING
    assert not Lead.objects.filter(email__endswith="@import.example").exists()


def test_the_progress_endpoint_answers_json(manager_client, django_capture_on_commit_callbacks):
    job = uploaded_job(manager_client)
    start(manager_client, job, django_capture_on_commit_callbacks)
    data = manager_client.get(reverse("leads:import_progress", args=[job.pk])).json()
    assert data["finished"] is True and data["percent"] == 100
    assert data["rows_done"] == data["total_rows"] == 5
    assert data["text"].startswith("5 of 5 rows")


def test_while_running_the_page_polls_and_refreshes_without_javascript(manager_client):
    job = uploaded_job(manager_client)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, total_rows=5, rows_done=2)
    html = manager_client.get(reverse("leads:import_detail", args=[job.pk])).content.decode()
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in html
    assert "js/imports.js" in html
    assert f'data-progress-url="{reverse("leads:import_progress", args=[job.pk])}"' in html
    assert "<progress" in html and 'aria-live="polite"' in html
    assert "Cancel import" in html
    assert " style=" not in html and "<script>" not in html


# --- cancel and revert -------------------------------------------------------------------------------


def test_cancel_a_waiting_import(sales_client):
    job = uploaded_job(sales_client)
    response = sales_client.post(reverse("leads:import_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED
    assert not Lead.objects.filter(email__endswith="@import.example").exists()


def test_a_manager_reverts_an_import(manager_client, django_capture_on_commit_callbacks):
    job = uploaded_job(manager_client)
    start(manager_client, job, django_capture_on_commit_callbacks)
    url = reverse("leads:import_revert", args=[job.pk])
    confirm = manager_client.get(url)
    assert confirm.status_code == 200 and "Revert import" in confirm.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(url)
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportJob.Status.REVERTED and job.reverted_at is not None
    assert not Lead.objects.filter(email__endswith="@import.example", deleted_at__isnull=True).exists()
    assert "Reverted by" in manager_client.get(reverse("leads:import_detail", args=[job.pk])).content.decode()


def test_sales_may_not_revert_their_own_import(sales_client, django_capture_on_commit_callbacks):
    job = uploaded_job(sales_client)
    start(sales_client, job, django_capture_on_commit_callbacks)
    url = reverse("leads:import_revert", args=[job.pk])
    assert sales_client.get(url).status_code == 403
    assert sales_client.post(url).status_code == 403
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert (
        "Revert this import"
        not in sales_client.get(reverse("leads:import_detail", args=[job.pk])).content.decode()
    )


def test_sales_imports_become_their_own(sales_client, sales, django_capture_on_commit_callbacks):
    job = uploaded_job(sales_client)
    start(sales_client, job, django_capture_on_commit_callbacks)
    owners = set(Lead.objects.filter(email__endswith="@import.example").values_list("owner", flat=True))
    assert owners == {sales.pk}


def test_revert_after_the_window_is_not_offered(manager_client, django_capture_on_commit_callbacks, settings):
    job = uploaded_job(manager_client)
    start(manager_client, job, django_capture_on_commit_callbacks)
    long_ago = timezone.now() - timedelta(days=settings.IMPORT_REVERT_DAYS + 1)
    ImportJob.objects.filter(pk=job.pk).update(finished_at=long_ago, created_at=long_ago)
    assert (
        "Revert this import"
        not in manager_client.get(reverse("leads:import_detail", args=[job.pk])).content.decode()
    )
    response = manager_client.post(reverse("leads:import_revert", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE


# --- who sees what ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("import_detail", "get"),
        ("import_detail", "post"),
        ("import_start", "post"),
        ("import_cancel", "post"),
        ("import_revert", "get"),
        ("import_errors", "get"),
        ("import_progress", "get"),
    ],
)
def test_someone_elses_import_is_not_found(client, sales, other_sales, name, method):
    client.force_login(sales)
    job = uploaded_job(client)
    client.force_login(other_sales)
    response = getattr(client, method)(reverse(f"leads:{name}", args=[job.pk]))
    assert response.status_code == 404
    job.refresh_from_db()
    assert job.status == ImportJob.Status.MAPPING


def test_pages_need_a_login(client):
    response = client.get(reverse("leads:imports"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_history_lists_own_imports_for_sales_and_all_for_managers(client, sales, other_sales, manager):
    for user in (sales, other_sales):
        client.force_login(user)
        uploaded_job(client, CSV_TEXT)
    client.force_login(sales)
    mine = client.get(reverse("leads:imports"))
    assert [job.created_by for job in mine.context["jobs"]] == [sales]
    assert "Your imports" in mine.content.decode()
    client.force_login(manager)
    everyone = client.get(reverse("leads:imports"))
    assert {job.created_by for job in everyone.context["jobs"]} == {sales, other_sales}
    html = everyone.content.decode()
    assert "All imports" in html and "prospects.csv" in html and str(sales) in html


# --- query counts ---------------------------------------------------------------------------------------


def _many_jobs(client, count):
    for _ in range(count):
        uploaded_job(client)


@pytest.mark.parametrize("jobs", [1, 10])
def test_history_query_count(manager_client, django_assert_max_num_queries, jobs):
    _many_jobs(manager_client, jobs)
    with django_assert_max_num_queries(8):
        assert manager_client.get(reverse("leads:imports")).status_code == 200


def test_mapping_page_query_count(manager_client, django_assert_max_num_queries):
    LeadFactory(email="ada@import.example")
    job = uploaded_job(manager_client)
    with django_assert_max_num_queries(14):
        assert manager_client.get(reverse("leads:import_detail", args=[job.pk])).status_code == 200
    with django_assert_max_num_queries(18):
        response = manager_client.post(reverse("leads:import_detail", args=[job.pk]), mapping_post(job))
        assert response.status_code == 200


def test_upload_query_count(manager_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        assert upload(manager_client).status_code == 302


def test_result_pages_query_counts(
    manager_client, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    job = uploaded_job(manager_client)
    start(manager_client, job, django_capture_on_commit_callbacks, overrides={3: "value"})
    for name in ("import_detail", "import_progress", "import_revert"):
        with django_assert_max_num_queries(8):
            assert manager_client.get(reverse(f"leads:{name}", args=[job.pk])).status_code == 200
    with django_assert_max_num_queries(8):
        response = manager_client.get(reverse("leads:import_errors", args=[job.pk]))
        b"".join(response.streaming_content)


def test_start_query_count_does_not_grow_with_rows(manager_client, django_assert_max_num_queries, settings):
    # Starting only queues the job (the worker's own cost is the benchmark's business), so the
    # request itself is bounded; the run happens in on_commit, which this test does not execute.
    job = uploaded_job(
        manager_client, CSV_TEXT + "".join(f"Row {i},row{i}@import.example,Co,1\n" for i in range(200))
    )
    with django_assert_max_num_queries(16):
        response = manager_client.post(reverse("leads:import_start", args=[job.pk]), mapping_post(job))
    assert response.status_code == 302


def test_cancel_query_count(manager_client, django_assert_max_num_queries):
    job = uploaded_job(manager_client)
    with django_assert_max_num_queries(10):
        assert manager_client.post(reverse("leads:import_cancel", args=[job.pk])).status_code == 302


def test_upload_size_limit_is_explained(manager_client, settings):
    settings.IMPORT_MAX_BYTES = 100
    response = upload(manager_client, CSV_TEXT * 3)
    assert response.status_code == 400
    assert response.context["form"].errors["file"]
