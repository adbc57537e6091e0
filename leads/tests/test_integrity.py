"""manage.py check_integrity: clean after real service operations; each kind of corruption is reported."""

import json
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.roles import Role
from leads import imports, intake, merging, services
from leads.attachments import add_attachment
from leads.models import Attachment, ImportJob, Lead, Source, Stage
from leads.tests.attachment_files import PDF_BYTES
from leads.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def check(*args):
    """(exit code, stdout, stderr) of check_integrity."""
    out, err = StringIO(), StringIO()
    try:
        call_command("check_integrity", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def problems():
    code, out, _ = check("--json")
    report = json.loads(out)
    assert code == (0 if report["ok"] else 1)
    return report["problems"]


def stage(name):
    return Stage.objects.get(name=name)


def pdf(name="cv.pdf"):
    return SimpleUploadedFile(name, PDF_BYTES, content_type="application/pdf")


def run_import(actor, text):
    job = imports.start_upload(actor=actor, file=ContentFile(text.encode(), name="leads.csv"))
    imports.configure_import(job=job, actor=actor, mapping=job.mapping, defaults={}, duplicate_mode="skip")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    return imports.run_import(job.pk)


@pytest.fixture
def history(manager, sales, other_sales):
    """A pipeline written only by the services: every door that changes a stage or an owner."""
    ada = services.create_lead(actor=sales, name="Ada Lovelace", email="ada@engines.example")
    ada = services.move_lead(lead=ada, stage=stage("In Progress"), actor=sales)
    ada = services.reassign_lead(lead=ada, owner=other_sales, actor=manager)
    add_attachment(lead=ada, file=pdf(), actor=other_sales)

    pool = services.create_lead(actor=manager, owner=None, name="Unassigned Pool", phone="+1 415 555 0100")
    pool = services.claim_lead(lead=pool, actor=sales)
    pool = services.move_lead(lead=pool, stage=stage("Lost"), actor=sales, lost_reason="Budget")

    # A merge that hands the survivor the duplicate's owner, then one that is undone.
    survivor = services.create_lead(actor=sales, name="Grace Hopper", email="grace@navy.example")
    twin = services.create_lead(actor=manager, owner=other_sales, name="G. Hopper", phone="+1 415 555 0101")
    add_attachment(lead=twin, file=pdf("twin.pdf"), actor=manager)
    merging.merge_leads(survivor=survivor, merged=twin, actor=manager, field_choices={"owner": "merged"})
    first = services.create_lead(actor=sales, name="Linus T", email="linus@kernel.example")
    second = services.create_lead(actor=manager, owner=None, name="Linus Torvalds", phone="+1 415 555 0102")
    merge = merging.merge_leads(survivor=first, merged=second, actor=manager, field_choices={})
    merging.undo_merge(merge=merge, actor=manager)

    # A CSV import (one lead into a named stage), and a second one that is reverted.
    kept = run_import(manager, "Name,E-mail,Stage\nKen Thompson,ken@unix.example,Reached Out\n")
    assert kept.created_count == 1
    reverted = run_import(manager, "Name,E-mail\nDennis Ritchie,dmr@unix.example\n")
    imports.revert_import(job=reverted, actor=manager)
    ken = Lead.objects.get(email="ken@unix.example")
    services.move_lead(lead=ken, stage=stage("Won"), actor=manager)

    # The public form with a CV, and a deleted lead (not live: its stage is not checked).
    intake.capture_lead(
        first_name="Margaret", last_name="Hamilton", email="mh@apollo.example", phone="", company="NASA",
        message="Call me", consent=True, resume=pdf("resume.pdf"),
    )  # fmt: skip
    gone = services.create_lead(actor=sales, name="Gone Soon", email="gone@test.example")
    services.delete_lead(lead=gone, actor=manager)
    return {"ada": ada, "pool": pool, "survivor": survivor, "ken": ken}


def test_a_pipeline_written_by_the_services_is_clean(history):
    code, out, err = check()
    assert (code, err) == (0, "")
    assert out.startswith("Integrity OK")
    assert f"{Lead.objects.filter(deleted_at__isnull=True).count()} live leads" in out
    assert f"{Attachment.objects.count()} attachments" in out and "3 files" in out


def test_a_renamed_stage_and_a_renamed_owner_are_not_problems(history, sales):
    # The timeline records ids, so names changing since is not a disagreement.
    services.save_stage(actor=UserFactory(role=Role.MANAGER), stage=stage("New Lead"), name="Fresh")
    sales.first_name = "Renamed"
    sales.save()
    assert problems() == {}


@contextmanager
def foreign_keys_off():
    """Raw SQL that breaks references, as a bad restore or a hand-edited table would.

    PostgreSQL: replica mode skips the foreign-key (and append-only) triggers for these writes only.
    SQLite checks its deferred foreign keys at commit, which the test's rollback never reaches.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        try:
            yield cursor
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")


def raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_a_stage_changed_behind_the_timelines_back_is_reported(history):
    ada = history["ada"]
    raw("UPDATE leads_lead SET stage_id = %s WHERE id = %s", [stage("Won").pk, ada.pk])
    code, _, err = check()
    assert code == 1
    assert "stage_mismatch: 1" in err
    assert f"lead #{ada.pk} is in stage #{stage('Won').pk}" in err
    assert f"says stage #{stage('In Progress').pk}" in err


def test_an_imported_lead_never_moved_is_checked_against_its_import_entry(history):
    imported = Lead.objects.get(email="ken@unix.example").activities.filter(kind="imported")
    assert imported.exists()
    lead = services.create_lead(actor=None, owner=None, name="Fresh Import", email="f@i.example")
    raw("UPDATE leads_lead SET stage_id = %s, owner_id = %s WHERE id = %s", [stage("Won").pk, None, lead.pk])
    run_import(history["ada"].owner, "Name,E-mail\nImported Only,io@i.example\n")
    only = Lead.objects.get(email="io@i.example")
    raw("UPDATE leads_lead SET stage_id = %s WHERE id = %s", [stage("Won").pk, only.pk])
    found = problems()
    assert found["stage_mismatch"]["count"] == 2
    assert f"lead #{only.pk} " in " ".join(found["stage_mismatch"]["examples"])
    assert "imported" in " ".join(found["stage_mismatch"]["examples"])


def test_an_owner_changed_behind_the_timelines_back_is_reported(history, manager):
    pool, ada = history["pool"], history["ada"]
    raw("UPDATE leads_lead SET owner_id = NULL WHERE id = %s", [pool.pk])
    raw("UPDATE leads_lead SET owner_id = %s WHERE id = %s", [manager.pk, ada.pk])
    found = problems()
    assert found["owner_mismatch"]["count"] == 2
    assert set(found) == {"owner_mismatch"}
    examples = " ".join(found["owner_mismatch"]["examples"])
    assert (
        f"lead #{pool.pk} is unassigned" in examples and f"lead #{ada.pk} is user #{manager.pk}" in examples
    )


def test_a_lead_without_any_history_is_reported(history):
    lead = Lead.objects.create(
        first_name="No", last_name="History", email="nohistory@test.example",
        source=Source.objects.get(name="Manual"), stage=stage("New Lead"),
    )  # fmt: skip
    found = problems()
    assert found["missing_history"] == {
        "description": "live leads with no created/imported entry on their timeline",
        "count": 1,
        "examples": [f"lead #{lead.pk}"],
    }


def test_live_duplicates_that_differ_only_in_case_or_punctuation_are_reported(history):
    ada, pool = history["ada"], history["pool"]
    twin = services.create_lead(actor=ada.owner, name="Ada Twin", email="ADA.twin@engines.example")
    raw("UPDATE leads_lead SET email = %s WHERE id = %s", ["ADA@Engines.example", twin.pk])
    other = services.create_lead(actor=ada.owner, name="Phone Twin", phone="+1 415 555 0199")
    raw("UPDATE leads_lead SET phone = %s WHERE id = %s", [pool.phone[:2] + " " + pool.phone[2:], other.pk])
    found = problems()
    assert set(found) == {"duplicate_email", "duplicate_phone"}
    assert found["duplicate_email"]["examples"] == [
        f"email 'ada@engines.example' is on 2 live leads (#{ada.pk} … #{twin.pk})"
    ]
    assert found["duplicate_phone"]["count"] == 1
    # A deleted lead keeps its address: that is not a live duplicate.
    services.delete_lead(lead=twin, actor=UserFactory(role=Role.MANAGER))
    assert "duplicate_email" not in problems()


def test_rows_pointing_at_missing_leads_are_reported(history, sales):
    missing_id = Lead.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000
    attachment = Attachment.objects.order_by("pk").first()
    now = timezone.now()
    with foreign_keys_off() as cursor:
        cursor.execute(
            "INSERT INTO leads_activity (lead_id, actor_id, kind, body, data, occurred_at)"
            " VALUES (%s, NULL, 'note', 'lost', '{}', %s)",
            [missing_id, now],
        )
        cursor.execute(
            "INSERT INTO leads_followup (lead_id, kind, title, assigned_to_id, due_at, outcome, notes,"
            " created_at, updated_at) VALUES (%s, 'call', 'Ring', %s, %s, '', '', %s, %s)",
            [missing_id, sales.pk, now, now, now],
        )
        cursor.execute("UPDATE leads_attachment SET lead_id = %s WHERE id = %s", [missing_id, attachment.pk])
    try:
        found = problems()
    finally:
        # The test database checks its foreign keys when the test ends: put things back first.
        with foreign_keys_off() as cursor:
            cursor.execute("DELETE FROM leads_activity WHERE lead_id = %s", [missing_id])
            cursor.execute("DELETE FROM leads_followup WHERE lead_id = %s", [missing_id])
            cursor.execute(
                "UPDATE leads_attachment SET lead_id = %s WHERE id = %s", [attachment.lead_id, attachment.pk]
            )
    assert {kind: found[kind]["count"] for kind in found} == {
        "dangling_activity": 1,
        "dangling_attachment": 1,
        "dangling_follow_up": 1,
    }
    assert found["dangling_activity"]["examples"][0].endswith(f"→ lead #{missing_id}")
    assert found["dangling_attachment"]["examples"] == [f"attachment #{attachment.pk} → lead #{missing_id}"]


def test_a_missing_file_and_an_orphan_file_are_reported(history):
    attachment = Attachment.objects.order_by("pk").first()
    default_storage.delete(attachment.file.name)
    orphan = default_storage.save("attachments/2020/01/not-in-the-database", ContentFile(b"stray"))
    found = problems()
    assert set(found) == {"missing_file", "orphan_file"}
    assert found["missing_file"]["examples"] == [
        f"attachment #{attachment.pk} of lead #{attachment.lead_id}: {attachment.file.name}"
    ]
    assert found["orphan_file"]["examples"] == [orphan]


def test_examples_are_capped_per_kind_and_the_rest_counted(history):
    leads = [
        services.create_lead(actor=None, owner=None, name=f"Lead {n}", email=f"cap{n}@test.example")
        for n in range(5)
    ]
    raw(
        "UPDATE leads_lead SET stage_id = %s WHERE id IN (" + ",".join(["%s"] * 5) + ")",
        [stage("Won").pk, *[lead.pk for lead in leads]],
    )
    code, _, err = check("--examples", "2")
    assert code == 1
    assert "stage_mismatch: 5" in err and err.count("  - lead #") == 2 and "… and 3 more" in err
    with pytest.raises(CommandError, match="at least 1"):
        check("--examples", "0")


def test_counter_drift_is_reported_when_counters_exist(history, monkeypatch):
    drift = [
        {
            "stage_id": 1,
            "source_id": 2,
            "owner_id": None,
            "counted": 5,
            "actual": 4,
            "counted_value": 0,
            "actual_value": 0,
        }
    ]
    monkeypatch.setattr("leads.counts.counter_drift", lambda: drift)
    found = problems()
    assert found["counter_drift"]["examples"] == [
        "stage #1 source #2 owner #None: counted 5 (value 0), actually 4 (value 0)"
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="lead counters are kept by PostgreSQL triggers")
def test_real_counter_drift_on_postgresql_is_reported(history):
    from leads.counts import uses_counters

    if not uses_counters():
        pytest.skip("this database has no counter table")
    with foreign_keys_off() as cursor:  # replica mode: the counting trigger does not see this write
        cursor.execute("UPDATE leads_lead SET value = value + 7 WHERE id = %s", [history["ada"].pk])
    assert problems()["counter_drift"]["count"] == 1
