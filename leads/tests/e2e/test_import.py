"""In a browser: a manager uploads a CSV, fixes the mapping, previews, runs it, watches it, gets errors."""

import csv
import io
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import expect

from leads import imports
from leads.models import ImportJob, Lead
from leads.tests.factories import LeadFactory

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"
ROWS = 300
BAD_LINES = {20, 77, 150, 201, 299}  # file lines (the header is line 1) with a broken e-mail
DUPLICATE_LINE = 40


def prospects_csv():
    """300 rows; "Employer name" is a header the suggestions do not know, so the user maps it."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Full name", "Email", "Employer name", "Deal value"])
    for line in range(2, ROWS + 2):
        email = f"prospect{line}@browser.example"
        if line in BAD_LINES:
            email = f"prospect{line}-at-browser.example"
        if line == DUPLICATE_LINE:
            email = "already@browser.example"
        writer.writerow([f"Prospect {line}", email, f"Employer {line % 7}", str(100 + line)])
    return out.getvalue().encode("utf-8")


class _ThreadedImports:
    """Stands in for leads.tasks.run_import_task: runs the job in a thread of its own.

    The default in-process backend would run the whole import inside the "Start import" request,
    so the page would open at 100% and there would be no bar to watch. A thread is what a real
    worker looks like to the page (the job advances while the page polls), without a db_worker
    process in the test; small batches with a short pause between them let the bar move visibly.
    """

    def __init__(self):
        self.threads = []

    def enqueue(self, job_id):
        def run():
            try:
                imports.run_import(job_id)
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()


# SQLite's in-memory test database (shared cache, which the live server needs) answers a write
# that meets another thread's read with "database table is locked" instead of waiting, so a
# worker thread there fails at random while the page polls. On SQLite the job runs in-process,
# as with the default tasks backend; PostgreSQL (CI runs both) shows the bar moving.
THREADED = connection.vendor != "sqlite"


@pytest.fixture
def threaded_imports(monkeypatch, settings):
    if not THREADED:
        yield None
        return
    settings.IMPORT_BATCH_SIZE = 20
    original_batch = imports._run_batch

    def slow_batch(*args, **kwargs):
        time.sleep(0.2)
        return original_batch(*args, **kwargs)

    monkeypatch.setattr(imports, "_run_batch", slow_batch)
    runner = _ThreadedImports()
    monkeypatch.setattr("leads.tasks.run_import_task", runner)
    yield runner
    for thread in runner.threads:
        thread.join(timeout=30)


def test_manager_imports_a_csv_and_downloads_the_error_report(
    page, live_server, login, demo_users, threaded_imports, tmp_path
):
    manager = demo_users["manager@example.com"]
    existing = LeadFactory(email="already@browser.example", owner=manager, first_name="Al", last_name="Ready")
    login(page, live_server, "manager@example.com")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("link", name="Imports").click()
    expect(page.get_by_role("heading", name="Import leads")).to_be_visible()
    page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "prospects.csv", "mimeType": "text/csv", "buffer": prospects_csv()}
    )
    page.get_by_role("button", name="Upload and map columns").click()

    # The mapping step: suggestions preselected, the unknown column ignored.
    expect(page.get_by_role("heading", name="Import of prospects.csv")).to_be_visible()
    expect(page.get_by_label("Full name")).to_have_value("name")
    expect(page.get_by_label("Email", exact=True)).to_have_value("email")
    expect(page.get_by_label("Deal value")).to_have_value("value")
    employer = page.get_by_label("Employer name")
    expect(employer).to_have_value("")

    # The preview already marks the broken e-mail and the duplicate (skip is the default).
    preview = page.locator("table.import-preview")
    expect(preview.locator("tbody tr")).to_have_count(20)
    expect(preview.locator('tr[data-line="20"] .import-action')).to_have_text("Fail")
    expect(preview.locator('tr[data-line="20"] .import-row-errors')).not_to_be_empty()
    expect(preview.locator('tr[data-line="3"] .import-action')).to_have_text("Create")

    employer.select_option("company")
    page.get_by_role("button", name="Check again").click()
    expect(page.get_by_label("Employer name")).to_have_value("company")
    expect(page.locator('table.import-preview tr[data-line="21"] .import-action')).to_have_text("Create")
    page.screenshot(path=SCREENSHOTS / "import-mapping.png", full_page=True)

    page.get_by_role("button", name="Start import").click()

    # The progress bar fills without a reload, then the result section replaces it.
    bar = page.locator("#import-progress-bar")
    expect(bar).to_be_visible()
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen.append(int(bar.evaluate("element => element.value")))
        if seen[-1] == 100:
            break
        page.wait_for_timeout(150)
    assert seen[-1] == 100, seen
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    if THREADED:
        # At least 15 batches × 0.2 s while the page polls every second: it showed a step between.
        assert any(0 < value < 100 for value in seen), f"the bar never moved without a reload: {seen}"
    expect(page.locator("#import-progress-text")).to_contain_text(f"{ROWS} of {ROWS} rows")
    expect(page.get_by_role("heading", name="Result")).to_be_visible(timeout=10_000)

    counts = page.locator(".import-counts")
    expect(counts.locator('[data-count="created"]')).to_have_text(str(ROWS - len(BAD_LINES) - 1))
    expect(counts.locator('[data-count="skipped"]')).to_have_text("1")
    expect(counts.locator('[data-count="failed"]')).to_have_text(str(len(BAD_LINES)))
    assert Lead.objects.filter(email__endswith="@browser.example").count() == ROWS - len(BAD_LINES)
    assert Lead.objects.get(email="prospect21@browser.example").company == "Employer 0"
    assert Lead.objects.get(pk=existing.pk).first_name == "Al"  # skipped, not updated
    assert ImportJob.objects.get().status == ImportJob.Status.DONE
    page.screenshot(path=SCREENSHOTS / "import-done.png", full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the error report (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == "prospects-errors.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["Full name", "Email", "Employer name", "Deal value", "line", "reason"]
    assert [int(row[4]) for row in rows[1:]] == sorted(BAD_LINES)
    assert all(row[1].endswith("-at-browser.example") and row[5] for row in rows[1:])
