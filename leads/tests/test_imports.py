"""The CSV import engine: sniffing, mapping, preview, duplicates, errors, bulk writes, revert, resume."""

import csv
import io
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.roles import Role
from leads import imports, selectors, services
from leads.models import Activity, ImportJob, ImportRecord, Lead, Source, Stage
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = "Name,E-mail,Phone,Company,Stage,Value\n"


def upload(actor, text, *, encoding="utf-8", name="leads.csv"):
    data = text if isinstance(text, bytes) else text.encode(encoding)
    return imports.start_upload(actor=actor, file=ContentFile(data, name=name))


def queued(actor, text, *, mode="skip", defaults=None, mapping=None, **kwargs):
    """A job uploaded, mapped and queued, as the import page leaves it for the worker."""
    job = upload(actor, text, **kwargs)
    imports.configure_import(
        job=job, actor=actor, mapping=mapping or job.mapping, defaults=defaults or {}, duplicate_mode=mode
    )
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    return job


def run(actor, text, **kwargs):
    return imports.run_import(queued(actor, text, **kwargs).pk)


def rows(n, start=0):
    return "".join(f"Person {i},p{i}@example.com,,Acme,,{i}\n" for i in range(start, start + n))


def report(job):
    return list(imports.error_report_rows(job))


# --- sniffing and mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding,prefix",
    [
        ("utf-8", b""),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("latin-1", b""),
    ],
)
def test_reads_each_encoding(manager, encoding, prefix):
    text = HEADER + "Zoë Müller,zoe@example.com,,Café Crème,,\n"
    job = run(manager, prefix + text.encode(encoding))
    assert job.status == ImportJob.Status.DONE, job.error
    lead = Lead.objects.get(email="zoe@example.com")
    assert (lead.first_name, lead.last_name, lead.company) == ("Zoë", "Müller", "Café Crème")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_sniffs_the_delimiter(manager, delimiter):
    text = (
        f'Name{delimiter}Email{delimiter}Notes\nAda Lovelace{delimiter}ada@example.com{delimiter}"a, b; c"\n'
    )
    job = run(manager, text)
    assert job.delimiter == delimiter
    assert Lead.objects.get(email="ada@example.com").notes == "a, b; c"


def test_quoted_fields_with_embedded_newlines_and_line_numbers(manager):
    text = 'Name,Email,Notes\n"Lovelace, Ada",ada@example.com,"line one\nline ""two"""\nBad,nope,x\n'
    job = run(manager, text)
    assert Lead.objects.get(email="ada@example.com").notes == 'line one\nline "two"'
    assert report(job)[1][-2:] == [4, "“nope” is not a valid e-mail address."]


@pytest.mark.parametrize(
    "header,field",
    [
        ("E-mail", "email"),
        ("email address", "email"),
        ("Mail", "email"),
        ("First Name", "first_name"),
        ("Given name", "first_name"),
        ("Surname", "last_name"),
        ("Owner", "owner_email"),
        ("Owner e-mail", "owner_email"),
        ("Deal value", "value"),
        ("Amount", "value"),
        ("Phone Number", "phone"),
        ("Organisation", "company"),
        ("Job Title", "title"),
        ("Lead source", "source"),
        ("Full name", "name"),
    ],
)
def test_header_spellings(header, field):
    assert imports.suggest_mapping(["ID", header, "Created"]) == {"1": field}


def test_export_headers_map_back():
    headers = ["First name", "Last name", "E-mail", "Phone", "Company", "Title", "Source", "Owner e-mail"]
    headers += ["Stage", "Value", "Notes", "ID", "Created"]
    mapping = imports.suggest_mapping(headers)
    assert list(mapping.values()) == [f for f in imports.IMPORT_FIELDS if f != "name"]
    assert "11" not in mapping and "12" not in mapping


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 200, "Excel"),
        (bytes(range(256)) * 20, "binary"),
        (b"Ada,ada@example.com\nBob,bob@example.com\n", "No recognisable header"),
        (b"x" * (1024 * 1024 + 100) + b"\nName,Email\n", "longer than 1 MB"),
    ],
)
def test_bad_files_are_refused_with_a_reason(sales, content, message):
    with pytest.raises(ValidationError) as caught:
        upload(sales, content)
    assert message in caught.value.message_dict["file"][0]
    assert not ImportJob.objects.exists()


def test_too_large_file_is_refused(sales, settings):
    settings.IMPORT_MAX_BYTES = 100
    with pytest.raises(ValidationError, match="larger than"):
        upload(sales, HEADER + rows(10))


def test_a_50_mb_line_fails_its_row_only(manager, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as out:
        out.write("Name,Email\nAda,ada@example.com\n")
        out.write("Huge," + "x" * (50 * 1024 * 1024) + "\n")
        out.write("Bob,bob@example.com\n")
    with open(path, "rb") as handle:
        job = imports.start_upload(actor=manager, file=ContentFile(handle.read(), name="big.csv"))
    imports.configure_import(job=job, actor=manager, mapping=job.mapping, defaults={}, duplicate_mode="skip")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    job = imports.run_import(job.pk)
    assert (job.created_count, job.failed_count) == (2, 1)
    assert report(job)[1][-2:] == [3, "The line is longer than 1 MB."]


def test_broken_quoting_is_reported(manager):
    job = run(manager, 'Name,Email\nAda,ada@example.com\n"Bob,bob@example.com\n' + "x\n" * 600)
    assert job.created_count == 1
    assert job.failed_count >= 1
    assert "quote" in report(job)[1][-1]


# --- preview ------------------------------------------------------------------------------------


def test_preview_shows_each_rows_fate_and_writes_nothing(manager):
    existing = LeadFactory(email="old@example.com")
    job = upload(
        manager, HEADER + "Ada,ada@example.com,,,,\nOld,old@example.com,,,,\nNo Contact,,,,,\n" + rows(30)
    )
    before = Lead.objects.count()
    result = imports.preview(job, duplicate_mode="update")
    assert len(result) == 20
    assert [row.action for row in result[:3]] == ["create", "update", "fail"]
    assert result[1].existing_id == existing.pk
    assert result[2].errors == ["The row has neither an e-mail address nor a phone number."]
    assert result[0].values["email"] == "ada@example.com" and result[0].line == 2
    assert Lead.objects.count() == before
    assert imports.preview(job, duplicate_mode="skip")[1].action == "skip"


# --- duplicates ----------------------------------------------------------------------------------


def test_skip_mode_skips_db_and_in_file_duplicates(manager):
    LeadFactory(email="old@example.com", company="Before")
    text = HEADER + "Old,OLD@example.com,,After,,\nAda,ada@example.com,,,,\nAda 2,ada@example.com,,,,\n"
    job = run(manager, text)
    assert (job.created_count, job.skipped_count, job.updated_count) == (1, 2, 0)
    assert Lead.objects.get(email="old@example.com").company == "Before"


def test_update_mode_updates_and_records_old_values(manager):
    old = LeadFactory(email="old@example.com", company="Before", phone="")
    text = HEADER + "Old,old@example.com,+1 415 555 0101,After,,100\n"
    job = run(manager, text, mode="update")
    old.refresh_from_db()
    assert (old.company, old.phone, old.value, old.version) == ("After", "+14155550101", Decimal("100.00"), 2)
    record = ImportRecord.objects.get(job=job)
    assert record.action == "updated" and record.old_values["company"] == "Before"
    activity = Activity.objects.get(lead=old, kind=Activity.Kind.IMPORTED)
    assert activity.data["changes"]["company"] == {"from": "Before", "to": "After"}


def test_update_mode_with_identical_values_changes_nothing(manager):
    old = LeadFactory(email="same@example.com", first_name="Same", last_name="Person", company="Co")
    job = run(
        manager, "First name,Last name,E-mail,Company\nSame,Person,same@example.com,Co\n", mode="update"
    )
    assert (job.updated_count, job.skipped_count) == (0, 1)
    old.refresh_from_db()
    assert old.version == 1
    assert not Activity.objects.filter(kind=Activity.Kind.IMPORTED).exists()


def test_update_mode_within_the_file_applies_the_later_row(manager, settings):
    text = HEADER + "Ada,ada@example.com,,First,,\nAda,ada@example.com,,Second,,\n"
    job = run(manager, text, mode="update")
    assert (job.created_count, job.updated_count) == (1, 1)
    assert Lead.objects.get(email="ada@example.com").company == "Second"


def test_create_mode_creates_keeping_the_clash_in_notes(manager):
    LeadFactory(email="shared@example.com")
    job = run(manager, "Name,Email,Phone\nNew,shared@example.com,+1 415 555 0102\n", mode="create")
    assert job.created_count == 1
    new = Lead.objects.get(phone="+14155550102")
    assert new.email == "" and "shared@example.com" in new.notes
    job = run(manager, "Name,Email\nAgain,shared@example.com\n", mode="create")
    assert job.failed_count == 1


def test_imported_activity_names_where_the_lead_went_and_why_a_contact_moved(manager):
    # The activity's JSON is assembled from a cached fragment (imports._created_data): it must
    # still decode to the full record, note included.
    existing = LeadFactory(email="shared@example.com")
    job = run(manager, "Name,Email,Phone\nNew,shared@example.com,+1 415 555 0102\n", mode="create")
    new = Lead.objects.get(phone="+14155550102")
    data = Activity.objects.get(lead=new, kind=Activity.Kind.IMPORTED).data
    assert data["job_id"] == job.pk and data["line"] == 2 and data["action"] == "created"
    assert data["stage_id"] == new.stage_id and data["owner_id"] == new.owner_id == manager.pk
    assert data["source"] == new.source.name and data["stage"] == new.stage.name
    assert data["owner"] == str(manager)
    assert data["note"] == f"Also e-mail shared@example.com (lead #{existing.pk} has it)."


def test_update_mode_refuses_two_different_matches(manager):
    a = LeadFactory(email="a@example.com")
    LeadFactory(email="b@example.com", phone="+14155550103")
    job = run(manager, "Name,Email,Phone\nX,a@example.com,+1 415 555 0103\n", mode="update")
    assert job.failed_count == 1 and f"#{a.pk}" in report(job)[1][-1]


# --- row errors and the report ------------------------------------------------------------------


def test_row_errors_and_the_error_report(manager):
    text = (
        "Name,Email,Phone,Stage\n"
        "Ada,ada@,,\n"
        "Bob,,12,\n"
        ",carl@example.com,,\n"
        "Dan,dan@example.com,,Foo\n"
        "Eve,eve@example.com,,new lead\n"
    )
    job = run(manager, text)
    assert (job.created_count, job.failed_count) == (1, 4)
    assert report(job) == [
        ["Name", "Email", "Phone", "Stage", "line", "reason"],
        ["Ada", "ada@", "", "", 2, "“ada@” is not a valid e-mail address."],
        ["Bob", "", "12", "", 3, "“12” is not a valid phone number."],
        ["", "carl@example.com", "", "", 4, "The row has no name."],
        [
            "Dan",
            "dan@example.com",
            "",
            "Foo",
            5,
            "Unknown stage “Foo”: choose a default stage or fix the row.",
        ],
    ]


def test_unknown_values_take_the_chosen_defaults(manager, sales):
    stage = Stage.objects.get(name="Reached Out")
    source = Source.objects.get(name="Referral")
    text = "Name,Email,Stage,Source,Owner\nDan,dan@example.com,Foo,Bar,nobody@example.com\n"
    defaults = {"stage": stage.pk, "source": source.pk, "owner": sales.pk}
    job = run(manager, text, defaults=defaults)
    assert job.created_count == 1
    lead = Lead.objects.get(email="dan@example.com")
    assert (lead.stage, lead.source, lead.owner) == (stage, source, sales)


def test_values_and_formula_escapes_from_an_export(manager):
    text = 'Name,Email,Value,Notes\nAda,ada@example.com,"$1,234.50",\'=1+2\n'
    run(manager, text)
    lead = Lead.objects.get(email="ada@example.com")
    assert (lead.value, lead.notes) == (Decimal("1234.50"), "=1+2")


def test_configure_refuses_a_mapping_without_name_or_contact(manager):
    job = upload(manager, "Name,Email,Company\nAda,ada@example.com,X\n")
    with pytest.raises(ValidationError) as caught:
        imports.configure_import(
            job=job,
            actor=manager,
            mapping={"2": "company"},
            defaults={"stage": 999999},
            duplicate_mode="merge",
        )
    assert set(caught.value.message_dict) == {"mapping", "defaults", "duplicate_mode"}


# --- bulk writes ---------------------------------------------------------------------------------


def _queries_for(manager, n, settings):
    settings.IMPORT_BATCH_SIZE = 1000
    job = queued(manager, HEADER + rows(n, start=n * 1000))
    with CaptureQueriesContext(connection) as ctx:
        job = imports.run_import(job.pk)
    assert job.created_count == n
    return len(ctx.captured_queries)


def test_queries_do_not_grow_with_the_batch(manager, settings):
    # SQLite splits a bulk insert into chunks of 999 parameters; PostgreSQL sends one statement.
    big = 200 if connection.vendor == "postgresql" else 40
    assert _queries_for(manager, 10, settings) == _queries_for(manager, big, settings)


def test_batches_activities_and_one_event_per_batch(manager, settings, django_capture_on_commit_callbacks):
    settings.IMPORT_BATCH_SIZE = 10
    with django_capture_on_commit_callbacks() as callbacks:
        job = run(manager, HEADER + rows(25))
    assert job.created_count == 25 and job.rows_done == 25 and job.total_rows == 25
    assert Activity.objects.filter(kind=Activity.Kind.IMPORTED, data__job_id=job.pk).count() == 25
    assert ImportRecord.objects.filter(job=job, action="created").count() == 25
    assert len(callbacks) == 3  # one announcement per batch


# --- owners and permissions ----------------------------------------------------------------------


def test_sales_imports_become_their_own(sales, other_sales):
    job = run(sales, f"Name,Email,Owner\nAda,ada@example.com,{other_sales.email}\n")
    assert job.created_count == 1
    assert Lead.objects.get(email="ada@example.com").owner == sales


def test_manager_owner_column_and_unknown_owner(manager, sales):
    job = run(
        manager,
        f"Name,Email,Owner\nAda,ada@example.com,{sales.email.upper()}\nBob,bob@example.com,x@y.example\n",
    )
    assert Lead.objects.get(email="ada@example.com").owner == sales
    assert job.failed_count == 1 and "Unknown owner" in report(job)[1][-1]


def test_sales_cannot_see_or_revert_others_imports(sales, other_sales, manager):
    job = upload(other_sales, HEADER + rows(1))
    assert list(selectors.visible_imports(sales)) == []
    with pytest.raises(Http404):
        selectors.get_visible_import(sales, job.pk)
    assert selectors.get_visible_import(manager, job.pk) == job
    with pytest.raises(PermissionDenied):
        imports.cancel_import(job=job, actor=sales)
    with pytest.raises(PermissionDenied):
        imports.revert_import(job=job, actor=other_sales)


def test_sales_cannot_update_others_leads(sales, other_sales):
    LeadFactory(email="theirs@example.com", owner=other_sales, company="Theirs")
    job = run(sales, "Name,Email,Company\nX,theirs@example.com,Mine\n", mode="update")
    assert job.failed_count == 1
    assert Lead.objects.get(email="theirs@example.com").company == "Theirs"


# --- revert, resume, cancel ----------------------------------------------------------------------


def test_revert_deletes_created_restores_updated_and_keeps_later_edits(manager, settings):
    settings.IMPORT_BATCH_SIZE = 2
    updated = LeadFactory(email="u@example.com", company="Before", title="Old title")
    edited = LeadFactory(email="e@example.com", company="Before")
    text = "Name,Email,Company,Title\nNew,n@example.com,N,\n"
    text += "U,u@example.com,After,New title\nE,e@example.com,After,\n"
    job = run(manager, text, mode="update")
    assert (job.created_count, job.updated_count) == (1, 2)
    services.update_lead(lead=edited, actor=manager, company="Edited since")
    job = imports.revert_import(job=job, actor=manager)
    assert job.status == ImportJob.Status.REVERTED
    # The edited lead gets its name back (nobody touched it) but keeps the company edited since.
    assert job.revert_summary == {"deleted": 1, "restored": 2, "kept": 1}
    assert Lead.objects.get(email="n@example.com").is_deleted
    updated.refresh_from_db()
    assert (updated.company, updated.title) == ("Before", "Old title")
    assert Lead.objects.get(email="e@example.com").company == "Edited since"
    assert (
        Activity.objects.filter(kind=Activity.Kind.DELETED, body__contains=f"Import #{job.pk}").count() == 1
    )


def test_revert_only_within_the_window(manager, settings):
    job = run(manager, HEADER + rows(1))
    ImportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=31))
    job.refresh_from_db()
    with pytest.raises(ValidationError, match="30 days"):
        imports.revert_import(job=job, actor=manager)


def kill_the_worker_in_the_second_batch(monkeypatch):
    """The worker dies inside the second batch's transaction (which rolls back); returns the real writer."""
    real_write_job = imports._write_job
    calls = []

    def crash_in_the_second_batch(*args, **kwargs):
        if calls:
            raise SystemExit("worker killed")
        calls.append(1)
        return real_write_job(*args, **kwargs)

    monkeypatch.setattr(imports, "_write_job", crash_in_the_second_batch)
    return real_write_job


def test_resume_after_a_crash_creates_no_lead_twice(manager, settings, monkeypatch):
    settings.IMPORT_BATCH_SIZE = 10
    job = queued(manager, HEADER + rows(25) + "\n", mode="create")
    real_write_job = kill_the_worker_in_the_second_batch(monkeypatch)
    with pytest.raises(SystemExit):
        imports.run_import(job.pk)
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.created_count) == (ImportJob.Status.RUNNING, 10, 10)
    assert Lead.objects.count() == 10
    monkeypatch.setattr(imports, "_write_job", real_write_job)
    assert imports.run_import(job.pk).status == ImportJob.Status.RUNNING  # heartbeat fresh: someone else's
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    job = imports.run_import(job.pk)
    assert (job.status, job.created_count, job.rows_done) == (ImportJob.Status.DONE, 25, 25)
    assert Lead.objects.count() == 25


def test_cancel_stops_between_batches_keeping_what_committed(manager, settings, monkeypatch):
    settings.IMPORT_BATCH_SIZE = 10
    job = queued(manager, HEADER + rows(35))
    real = imports._write_job

    def cancel_after_second(ctx, *args, **kwargs):
        real(ctx, *args, **kwargs)
        if ctx.job.rows_done == 20:
            imports.cancel_import(job=ctx.job, actor=manager)

    monkeypatch.setattr(imports, "_write_job", cancel_after_second)
    job = imports.run_import(job.pk)
    assert (job.status, job.created_count) == (ImportJob.Status.CANCELLED, 20)
    assert imports.job_progress(job)["finished"] is True


def test_cancel_before_start_and_progress(manager):
    job = upload(manager, HEADER + rows(3))
    job = imports.cancel_import(job=job, actor=manager)
    assert job.status == ImportJob.Status.CANCELLED
    progress = imports.job_progress(job)
    assert progress["status_label"] == "Cancelled" and progress["created"] == 0


def test_queue_import_runs_the_task(manager, django_capture_on_commit_callbacks):
    job = upload(manager, HEADER + rows(3))
    with django_capture_on_commit_callbacks(execute=True):
        job = imports.queue_import(job=job, actor=manager)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.created_count == 3


def test_an_exported_file_reimported_in_update_mode_changes_nothing(manager, sales):
    LeadFactory(email="x@example.com", owner=sales, notes="=SUM(A1)", value=Decimal("12.50"))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "First name",
            "Last name",
            "E-mail",
            "Phone",
            "Source",
            "Owner e-mail",
            "Stage",
            "Value",
            "Notes",
            "ID",
        ]
    )
    lead = Lead.objects.get()
    writer.writerow(
        [
            lead.first_name,
            lead.last_name,
            lead.email,
            "",
            "Manual",
            sales.email,
            "New Lead",
            "12.50",
            "'=SUM(A1)",
            lead.pk,
        ]
    )
    job = run(manager, "\ufeff" + out.getvalue(), mode="update")
    assert (job.skipped_count, job.updated_count, job.failed_count) == (1, 0, 0)
    lead.refresh_from_db()
    assert lead.version == 1


def test_role_fixture_sanity():
    assert UserFactory(role=Role.MANAGER).is_manager


# --- speed paths (import speed): phones without parse, updates within a batch, COPY's fallback ----------


@pytest.mark.parametrize(
    "raw",
    [
        "+1 212 555 0100",
        "+12125550100",
        "212 555 0100",
        "(212) 555-0100",
        "212.555.0100",
        "1 212 555 0100",
        "+1 (0) 212 555 0100",
        "+1 876 555 0100",
        "(876) 555-0100",
        "+1-800-555-0199",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+4402079460958",
        "+447700900123",
        "+49 30 901820",
        "+49 (0)30 901820",
        "+39 06 6982 0000",
        "+7 495 123 45 67",
        "+7 8495 123 45 67",
        "+36 1 234 5678",
        "+36 06 1 234 5678",
        "+61 2 9374 4000",
        "+81 3-1234-5678",
        "+33 1 42 68 53 00",
        "+999 123 4567",
        "+0 123456789",
        "+1 212 555",
        "+1212555010",
        "2125550100123",
        "12345",
        "call after 5",
        "+1 212 555 0100 x12",
    ],
)
def test_the_fast_phone_path_agrees_with_normalize_phone(raw):
    from leads.normalization import normalize_phone

    try:
        expected = normalize_phone(raw)
    except ValidationError:
        expected = None
    fast = imports._fast_phone(raw)
    # The fast path answers only for numbers it is sure of, and then exactly as parse would.
    assert fast is None or fast == expected
    imports._phone.cache_clear()
    try:
        assert imports._phone(raw) == expected
    except ValidationError:
        assert expected is None


def test_rows_updating_one_lead_within_a_batch_apply_in_file_order(manager):
    old = LeadFactory(email="old@example.com", phone="+14155550110", company="Before", title="T0")
    text = (
        "Name,Email,Phone,Company,Title\n"
        "New Person,new@example.com,,C1,\n"
        "Old Person,old@example.com,,C2,\n"
        "New Person,new@example.com,+1 415 555 0111,,\n"
        "Old Person,,+1 415 555 0110,C3,T3\n"
        "New Person,NEW@example.com,,C4,\n"
    )
    job = run(manager, text, mode="update")
    assert (job.created_count, job.updated_count, job.failed_count) == (1, 4, 0)
    new = Lead.objects.get(email="new@example.com")
    assert (new.company, new.phone, new.version) == ("C4", "+14155550111", 3)
    old.refresh_from_db()
    assert (old.company, old.title, old.version) == ("C3", "T3", 3)
    timeline = list(Activity.objects.filter(lead=old, kind=Activity.Kind.IMPORTED).order_by("id"))
    assert [a.data["changes"]["company"] for a in timeline] == [
        {"from": "Before", "to": "C2"},
        {"from": "C2", "to": "C3"},
    ]
    assert [a.data["action"] for a in Activity.objects.filter(lead=new).order_by("id")] == [
        "created",
        "updated",
        "updated",
    ]
    job = imports.revert_import(job=job, actor=manager)
    old.refresh_from_db()
    assert (old.company, old.title) == ("Before", "T0")
    assert Lead.objects.get(pk=new.pk).is_deleted


def test_a_row_after_its_contact_changed_hands_in_the_batch_is_looked_up_again(manager):
    lead = LeadFactory(email="a@example.com", phone="+14155550120")
    # Line 2 matches the lead by phone and gives it a new e-mail; line 3's (old) e-mail then
    # belongs to nobody, so it is a new lead, exactly as if line 2 had been committed first.
    text = "Name,Email,Phone\nMoved,b@example.com,+1 415 555 0120\nFresh,a@example.com,\n"
    job = run(manager, text, mode="update")
    assert (job.created_count, job.updated_count, job.failed_count) == (1, 1, 0)
    lead.refresh_from_db()
    assert (lead.first_name, lead.email) == ("Moved", "b@example.com")
    assert Lead.objects.get(email="a@example.com").first_name == "Fresh"


def test_a_concurrent_writer_makes_the_batch_fall_back_to_row_by_row(manager, monkeypatch):
    LeadFactory(email="taken@example.com")
    # As if another writer had taken the e-mail after our duplicate lookup: the lookup sees nothing.
    monkeypatch.setattr(imports, "_lookup_existing", lambda emails, phones, lock=False: {})
    job = run(manager, "Name,Email\nAda,ada@example.com\nTaken,taken@example.com\nBob,bob@example.com\n")
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.failed_count) == (2, 1)
    assert report(job)[1][-2:] == [3, "Another lead took this e-mail or phone while importing."]
    assert Lead.objects.filter(email__in=["ada@example.com", "bob@example.com"]).count() == 2
    assert ImportRecord.objects.filter(job=job).count() == 2


def _reader_threads(job):
    return [thread for thread in threading.enumerate() if thread.name == f"import-{job.pk}-reader"]


def test_a_failure_reading_ahead_fails_the_job_keeping_committed_batches(manager, settings, monkeypatch):
    # Rows are read and cleaned in a thread ahead of the writer (imports._Prefetch): an error
    # there must end the job as FAILED, with its reason, after the batches before it committed.
    settings.IMPORT_BATCH_SIZE = 10
    job = queued(manager, HEADER + rows(35), mode="create")
    real_cleaned = imports._cleaned

    def break_at_row_15(ctx, record):
        if record.index == 15:
            raise RuntimeError("disk went away")
        return real_cleaned(ctx, record)

    monkeypatch.setattr(imports, "_cleaned", break_at_row_15)
    job = imports.run_import(job.pk)
    assert job.status == ImportJob.Status.FAILED
    assert "RuntimeError: disk went away" in job.error
    assert (job.rows_done, job.created_count, Lead.objects.count()) == (10, 10, 10)
    assert not _reader_threads(job)


def test_the_reader_thread_ends_with_the_writer_however_it_ends(manager, settings, monkeypatch):
    settings.IMPORT_BATCH_SIZE = 5
    job = queued(manager, HEADER + rows(40), mode="create")
    kill_the_worker_in_the_second_batch(monkeypatch)
    with pytest.raises(SystemExit):
        imports.run_import(job.pk)
    # The reader had batches queued ahead (it was blocked on the full queue): it is gone too.
    assert not _reader_threads(job)
    job.refresh_from_db()
    assert job.resume_offset > 0  # progress in bytes is the committed batch's, kept with it
    assert job.rows_done == 5
