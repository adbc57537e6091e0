"""Lead counters (leads/counts.py, migration 0007): exact after every write; drift found, rebuilt."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from leads import counts, imports, intake, merging, selectors, services
from leads.models import ImportJob, Lead, LeadCount, Source, Stage
from leads.selectors import visible_leads
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db


def on_postgresql():
    return connection.vendor == "postgresql"


def real_counts():
    """{(stage, source, owner): (count, value)} of live leads, counted from the rows by the ORM."""
    rows = (
        Lead.objects.live()
        .order_by()
        .values("stage_id", "source_id", "owner_id")
        .annotate(n=Count("pk"), value=Sum("value"))
    )
    return {(r["stage_id"], r["source_id"], r["owner_id"]): (r["n"], r["value"]) for r in rows}


def counter_rows():
    """The same, summed from the counter table's rows (keys that fell to zero left out)."""
    rows = (
        LeadCount.objects.order_by()
        .values("stage_id", "source_id", "owner_id")
        .annotate(n=Sum("count"), value=Sum("value_sum"))
    )
    return {
        (r["stage_id"], r["source_id"], r["owner_id"]): (r["n"], r["value"])
        for r in rows
        if r["n"] or r["value"]
    }


def assert_exact():
    assert counter_rows() == real_counts()
    assert counts.counter_drift() == []


def stage_named(name):
    return Stage.objects.get(name=name)


def upload_and_run(actor, text, mode="skip"):
    job = imports.start_upload(actor=actor, file=ContentFile(text.encode(), name="leads.csv"))
    imports.configure_import(job=job, actor=actor, mapping=job.mapping, defaults={}, duplicate_mode=mode)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    return imports.run_import(job.pk)


@pytest.fixture
def counted():
    if not on_postgresql():
        pytest.skip("the counter triggers exist on PostgreSQL; SQLite counts the rows directly")


# --- every write keeps the counters exact (PostgreSQL: the triggers) ---------------------------


def test_service_writes_keep_counters_exact(counted, manager, sales, other_sales):
    lead = services.create_lead(
        actor=manager, first_name="Ada", email="ada@example.com", owner=sales, value=Decimal("120.50")
    )
    assert_exact()
    assert counter_rows()[(lead.stage_id, lead.source_id, sales.pk)] == (1, Decimal("120.50"))

    services.move_lead(lead=lead, stage=stage_named("In Progress"), actor=manager)
    assert_exact()
    services.reassign_lead(lead=lead, owner=other_sales, actor=manager)
    assert_exact()
    services.update_lead(lead=lead, actor=manager, value=Decimal("99"))
    assert_exact()
    services.reassign_lead(lead=lead, owner=None, actor=manager)
    assert_exact()
    services.claim_lead(lead=Lead.objects.get(pk=lead.pk), actor=sales)
    assert_exact()
    services.change_lead(
        lead=Lead.objects.get(pk=lead.pk), actor=manager, stage=stage_named("Won"), owner=other_sales
    )
    assert_exact()
    services.update_lead(lead=Lead.objects.get(pk=lead.pk), actor=manager, notes="only notes")
    assert_exact()

    services.delete_lead(lead=Lead.objects.get(pk=lead.pk), actor=manager)
    assert_exact()
    assert counter_rows() == {}
    services.restore_lead(lead=Lead.objects.get(pk=lead.pk), actor=manager)
    assert_exact()
    assert sum(n for n, _ in counter_rows().values()) == 1


def test_capture_keeps_counters_exact(counted):
    intake.capture_lead(
        first_name="Grace",
        last_name="Hopper",
        email="grace@example.com",
        phone="",
        company="Navy",
        message="Call me",
        consent=True,
    )
    assert_exact()
    assert sum(n for n, _ in counter_rows().values()) == 1


def test_merge_and_undo_keep_counters_exact(counted, manager, sales, other_sales):
    survivor = LeadFactory(owner=sales, value=10, email="a@example.com")
    duplicate = LeadFactory(owner=other_sales, value=20, email="b@example.com", stage=stage_named("Won"))
    assert_exact()
    merge = merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    assert_exact()
    assert sum(n for n, _ in counter_rows().values()) == 1
    merging.undo_merge(merge=merge, actor=manager)
    assert_exact()
    assert sum(n for n, _ in counter_rows().values()) == 2


def test_imports_create_update_and_revert_keep_counters_exact(counted, manager, settings):
    settings.IMPORT_BATCH_SIZE = 2  # several batches: several COPY / bulk statements
    LeadFactory(email="old@example.com", value=5)
    assert_exact()
    text = "Name,Email,Company,Value\n" + "".join(f"P {i},p{i}@example.com,Acme,{i}\n" for i in range(5))
    created = upload_and_run(manager, text)
    assert created.created_count == 5
    assert_exact()
    updated = upload_and_run(manager, "Name,Email,Value\nOld,old@example.com,700\n", mode="update")
    assert updated.updated_count == 1
    assert_exact()
    assert real_counts() and sum(v for _, v in counter_rows().values()) == Decimal(700 + sum(range(5)))
    imports.revert_import(job=updated, actor=manager)
    assert_exact()
    imports.revert_import(job=created, actor=manager)
    assert_exact()
    assert sum(n for n, _ in counter_rows().values()) == 1


def test_reassign_all_leads_keeps_counters_exact(counted, manager, sales, other_sales):
    LeadFactory.create_batch(3, owner=sales)
    LeadFactory(owner=other_sales)
    account_services.reassign_all_leads(actor=manager, from_user=sales, to_user=other_sales)
    assert_exact()
    account_services.reassign_all_leads(actor=manager, from_user=other_sales, to_user=None)
    assert_exact()
    assert list(counter_rows()) == [(stage_named("New Lead").pk, Source.objects.get(name="Manual").pk, None)]


def test_admin_bulk_actions_keep_counters_exact(counted, manager_client, other_sales):
    from leads.tests.test_admin import run_action

    leads = LeadFactory.create_batch(3)
    assert run_action(manager_client, "move_to_stage", leads, stage=stage_named("Won").pk).status_code == 302
    assert_exact()
    assert run_action(manager_client, "reassign_owner", leads, owner=other_sales.pk).status_code == 302
    assert_exact()
    assert run_action(manager_client, "soft_delete", leads).status_code == 302
    assert_exact()
    assert counter_rows() == {}
    assert run_action(manager_client, "restore", leads, query="?state=deleted").status_code == 302
    assert_exact()


def test_bulk_sql_and_a_rolled_back_write_keep_counters_exact(counted, sales):
    """What no service does but a maintenance script might: one UPDATE over many rows, a raw
    DELETE; and a write that fails leaves the counters as they were."""
    LeadFactory.create_batch(4, owner=sales, value=3)
    Lead.objects.filter(owner=sales).update(stage=stage_named("Lost"), value=7)
    assert_exact()
    Lead.objects.filter(pk__in=Lead.objects.order_by("pk").values("pk")[:2]).update(deleted_at=timezone.now())
    assert_exact()
    before = counter_rows()
    with pytest.raises(ValidationError):
        services.create_lead(actor=None, first_name="Nobody")  # no e-mail or phone: refused
    assert counter_rows() == before
    Lead.objects.all().delete()
    assert_exact()
    assert counter_rows() == {}


# --- drift and rebuild ------------------------------------------------------------------------


def test_drift_is_reported_and_rebuild_fixes_it(counted, sales, capsys):
    lead = LeadFactory(owner=sales, value=12)
    counts.compact_lead_counts()
    LeadCount.objects.filter(stage=lead.stage, owner=sales).update(count=5)
    LeadCount.objects.create(stage=stage_named("Won"), source=lead.source, owner=None, count=2, value_sum=1)
    drift = counts.counter_drift()
    assert {(d["stage_id"], d["owner_id"], d["counted"], d["actual"]) for d in drift} == {
        (lead.stage_id, sales.pk, 5, 1),
        (stage_named("Won").pk, None, 2, 0),
    }
    with pytest.raises(SystemExit):
        call_command("rebuild_lead_counts", "--check")
    call_command("rebuild_lead_counts")
    assert "2 had drifted" in capsys.readouterr().out
    assert_exact()
    call_command("rebuild_lead_counts", "--check")
    assert "exact" in capsys.readouterr().out


def test_rebuild_on_a_database_without_counters_changes_nothing(capsys):
    if on_postgresql():
        pytest.skip("SQLite behaviour")
    LeadFactory()
    assert counts.rebuild_lead_counts() == 0
    assert counts.counter_drift() == []
    call_command("rebuild_lead_counts")
    assert "counts leads directly" in capsys.readouterr().out


# --- reading: the same totals as the rows, on both databases ---------------------------------


@pytest.mark.parametrize("sharing", ["private", "read", "write"])
def test_totals_equal_a_real_count_for_each_role_and_filter(settings, sharing, manager, sales, other_sales):
    settings.LEAD_SHARING = sharing
    won, new = stage_named("Won"), stage_named("New Lead")
    web = Source.objects.get(name="Website")
    LeadFactory.create_batch(2, owner=sales, value=10)
    LeadFactory(owner=other_sales, stage=won, source=web, value=7)
    LeadFactory(owner=None, stage=won, value=1)
    services.delete_lead(lead=LeadFactory(owner=sales, value=100), actor=manager)
    inactive = UserFactory(is_active=False)

    for user in (manager, sales, other_sales, inactive):
        for filters in (
            {},
            {"stage": won},
            {"source": web},
            {"owner": "me"},
            {"owner": "unassigned"},
            {"owner": other_sales, "stage": won, "source": web},
            {"owner": sales, "stage": new},
            {"ordering": ["-value"]},
        ):
            q = counts.counter_q(user, filters)
            rows = visible_leads(user)
            if "stage" in filters:
                rows = rows.filter(stage=filters["stage"])
            if "source" in filters:
                rows = rows.filter(source=filters["source"])
            owner = filters.get("owner")
            if owner == "me":
                rows = rows.filter(owner=user)
            elif owner == "unassigned":
                rows = rows.filter(owner__isnull=True)
            elif owner is not None:
                rows = rows.filter(owner=owner)
            expected = rows.aggregate(n=Count("pk"), v=Sum("value"))
            assert counts.totals(q) == (expected["n"], expected["v"] or 0), (user, filters)
            by_stage = counts.totals_by_stage(q, Stage.objects.all())
            assert sum(n for n, _ in by_stage.values()) == expected["n"]


def test_filters_counters_cannot_answer_are_left_to_count(sales):
    assert counts.counter_q(sales, {"query": "ada"}) is None
    assert counts.counter_q(sales, {"created_after": timezone.now()}) is None
    assert counts.counter_q(sales, {"stage": stage_named("Won")}) is not None


# --- the board: column heads from the counters ------------------------------------------------


def columns_seen(columns):
    return [(c.stage.pk, c.count, Decimal(c.total_value), [lead.pk for lead in c.leads]) for c in columns]


@pytest.mark.parametrize("sharing", ["private", "read"])
def test_board_columns_from_counters_equal_the_rows(settings, sharing, manager, sales, other_sales):
    settings.LEAD_SHARING = sharing
    won = stage_named("Won")
    LeadFactory.create_batch(3, owner=sales, value=4)
    LeadFactory.create_batch(2, owner=other_sales, stage=won, value=9)
    LeadFactory(owner=None, stage=won, value=1)
    services.delete_lead(lead=LeadFactory(owner=sales, stage=won), actor=manager)
    stages = list(Stage.objects.filter(archived=False).order_by("position"))
    for user in (manager, sales):
        for filters in ({}, {"owner": "me"}, {"stage": won}, {"owner": "unassigned", "stage": won}):
            rows = visible_leads(user)
            if "stage" in filters:
                rows = rows.filter(stage=filters["stage"])
            if filters.get("owner") == "me":
                rows = rows.filter(owner=user)
            elif filters.get("owner") == "unassigned":
                rows = rows.filter(owner__isnull=True)
            q = counts.counter_q(user, filters)
            assert q is not None
            from_counters = selectors.board_columns(leads=rows, stages=stages, counted=q, page_size=2)
            from_rows = selectors.board_columns(leads=rows, stages=stages, page_size=2)
            assert columns_seen(from_counters) == columns_seen(from_rows), (user, filters)


@pytest.mark.parametrize("params", [{}, {"owner": "me", "source": "manual"}])
def test_board_queries_do_not_grow_with_leads(client, manager, params, django_assert_max_num_queries):
    client.force_login(manager)
    won = stage_named("Won")

    def board_queries(n):
        LeadFactory.create_batch(n, owner=manager)
        LeadFactory.create_batch(n, owner=manager, stage=won)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("leads:board"), params)
        assert response.status_code == 200
        # Read now: the next request empties the connection's query log.
        return [q["sql"] for q in captured.captured_queries]

    few, many = board_queries(3), board_queries(30)
    assert len(few) == len(many)
    if on_postgresql():
        # The column heads come from the counters: no aggregate over leads_lead.
        heads = [sql for sql in many if "COUNT(" in sql.upper() and 'FROM "leads_lead"' in sql]
        assert heads == [] and any('FROM "leads_leadcount"' in sql for sql in many)
    with django_assert_max_num_queries(17):  # as test_board's bound for the same page
        client.get(reverse("leads:board"), params)


# --- concurrent writers on the same counter rows ----------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_bulk_writes_on_the_same_counters_neither_deadlock_nor_drift(counted):
    """Two transactions move leads of the same owners in opposite orders, statement by statement
    (with row-per-key upserts this deadlocked): writers only add delta rows, so neither waits."""
    from django.db import transaction

    from leads.tests.concurrency import run_at_once

    owners = UserFactory.create_batch(4)
    won, new = stage_named("Won"), stage_named("New Lead")
    for owner in owners:
        LeadFactory.create_batch(4, owner=owner, stage=new, value=1)
    ids = list(Lead.objects.order_by("pk").values_list("pk", flat=True))
    halves = (ids[0::2], ids[1::2])  # every owner in both halves

    def mover(pks, reverse):
        def move():
            for _ in range(5):
                with transaction.atomic():
                    # Owners' rows in opposite orders in the two threads, several statements each.
                    for owner in sorted(owners, key=lambda o: o.pk, reverse=reverse):
                        Lead.objects.filter(pk__in=pks, owner=owner).update(stage=won)
                    Lead.objects.filter(pk__in=pks).update(stage=new, value=2)
            return True

        return move

    assert run_at_once(mover(halves[0], False), mover(halves[1], True), timeout=60) == [True, True]
    assert_exact()


def test_compaction_folds_deltas_into_one_row_per_key_and_keeps_the_sums(counted, manager, sales):
    lead = LeadFactory(owner=sales, value=5)
    for stage in ("Reached Out", "In Progress", "Won", "New Lead"):
        services.move_lead(lead=Lead.objects.get(pk=lead.pk), stage=stage_named(stage), actor=manager)
    LeadFactory.create_batch(3, owner=None, value=2)
    before = counter_rows()
    assert counts.compact_lead_counts() is True
    assert counter_rows() == before
    assert_exact()
    keys = list(LeadCount.objects.values_list("stage_id", "source_id", "owner_id"))
    assert len(keys) == len(set(keys)) == len(before)  # one row per key, none left at zero
