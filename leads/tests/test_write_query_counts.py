"""Board and lead-page writes (and the confirm pages) run a fixed number of queries, whatever the lead count.

Each test runs with 5 and with 500 other leads in the table and holds both to the same bound,
then checks the write really happened, so a bound cannot pass on a refused request.

Bound comments: [ ... ] is the service's transaction (a savepoint and its release in tests),
(write) a write in its own savepoint (three queries), and msg the session save that stores the
flash message (savepoint, update, release).
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leads.models import Activity, Lead, Source, Stage
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

LEAD_COUNTS = [5, 500]


def url(name, lead):
    return reverse(f"leads:{name}", args=[lead.pk])


def make_leads(count, owner):
    """Many leads at once, straight to the table: a write's cost must not depend on them."""
    stages = list(Stage.objects.all())
    manual = Source.objects.get(name="Manual")
    Lead.objects.bulk_create(
        Lead(
            first_name=f"Bulk{i}",
            last_name="Lead",
            email=f"bulk{i}@example.com",
            phone=f"+1555{i:07d}",
            source=manual,
            owner=owner,
            stage=stages[i % len(stages)],
            lost_reason="Went elsewhere" if stages[i % len(stages)].is_lost else "",
            value=i,
        )
        for i in range(count)
    )


def make_activities(count, lead, actor):
    now = timezone.now()
    Activity.objects.bulk_create(
        Activity(
            lead=lead,
            actor=actor,
            kind=Activity.Kind.NOTE,
            body=f"Note {i}",
            occurred_at=now - timedelta(hours=i),
        )
        for i in range(count)
    )


def edit_data(lead, **changes):
    data = {
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "email": lead.email,
        "phone": lead.phone,
        "company": lead.company,
        "title": lead.title,
        "source": lead.source_id,
        "value": lead.value,
        "priority": lead.priority,
        "notes": lead.notes,
        "version": lead.version,
    }
    return data | changes


@pytest.fixture(params=LEAD_COUNTS, ids=lambda n: f"{n}-leads")
def many_leads(request, sales, lead):
    """`lead` (owned by `sales`) among 5 or 500 other leads `sales` can see."""
    make_leads(request.param, sales)
    return request.param


# --- the board -------------------------------------------------------------------------------


def test_quick_add(sales_client, sales, many_leads, django_assert_max_num_queries):
    manual = Source.objects.get(name="Manual")
    # session, user, sources, source, default stage, [dup check, insert lead, activity], msg
    with django_assert_max_num_queries(15):
        response = sales_client.post(
            reverse("leads:quick_add"),
            {"name": "Quinn Newlead", "email": "quinn@new.example", "source": manual.pk},
        )
    assert response.status_code == 302, response.content[:500]
    added = Lead.objects.get(email="quinn@new.example")
    assert added.owner == sales and added.activities.filter(kind=Activity.Kind.CREATED).exists()


def test_move_by_plain_post(sales_client, lead, many_leads, django_assert_max_num_queries):
    reached_out = Stage.objects.get(name="Reached Out")
    # session, user, lead, stage, [lock, update, reload, last stage entry, activity], msg
    with django_assert_max_num_queries(14):
        response = sales_client.post(url("move", lead), {"stage": reached_out.pk, "version": lead.version})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.stage == reached_out and lead.version == 2
    assert lead.activities.filter(kind=Activity.Kind.STAGE_CHANGED).exists()


def test_move_by_fetch_asking_for_json(sales_client, lead, many_leads, django_assert_max_num_queries):
    reached_out = Stage.objects.get(name="Reached Out")
    # session, user, lead, stage, [lock, update, reload, last stage entry, activity], live stages (card),
    # the card's follow-up and staleness badges
    with django_assert_max_num_queries(13):
        response = sales_client.post(
            url("move", lead),
            {"stage": reached_out.pk, "version": lead.version},
            HTTP_ACCEPT="application/json",
        )
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["lead"]["stage_id"] == reached_out.pk and body["card_html"]
    lead.refresh_from_db()
    assert lead.stage == reached_out and lead.version == 2


def test_move_confirm_page(sales_client, lead, many_leads, django_assert_max_num_queries):
    lost = Stage.objects.get(name="Lost")
    # session, user, lead, live stages twice (required <select> check, then options), the bell's count
    with django_assert_max_num_queries(5 + 1):
        response = sales_client.get(url("move", lead), {"stage": lost.pk})
    assert response.status_code == 200
    assert lead.name in response.content.decode()


# --- the lead page ---------------------------------------------------------------------------

LEAD_PAGE_QUERIES = {
    # session, user, lead, activity count, live stages (move form), timeline page,
    # sources twice (edit form: required <select> check, then the options), the bell's unread count,
    # the panels: open follow-ups, files, merges into this lead, possible duplicates;
    # the timeline's lookup of leads merged into this one
    "sales": 8 + 1 + 4 + 1,
    # the same, plus active users for the reassign form and for the follow-up assignee menu
    "manager": 9 + 1 + 4 + 1 + 1,
}


@pytest.mark.parametrize("viewer", ["sales", "manager"])
@pytest.mark.parametrize("activity_count", LEAD_COUNTS, ids=lambda n: f"{n}-activities")
def test_lead_page(
    client, request, viewer, lead, sales, many_leads, activity_count, django_assert_max_num_queries
):
    make_activities(activity_count, lead, sales)
    client.force_login(request.getfixturevalue(viewer))
    with django_assert_max_num_queries(LEAD_PAGE_QUERIES[viewer]):
        response = client.get(url("detail", lead))
    assert response.status_code == 200
    assert len(response.context["timeline"]) == min(activity_count, 50)
    assert lead.email in response.content.decode()


def test_edit(sales_client, lead, sales, many_leads, django_assert_max_num_queries):
    # session, user, lead, source, [lock, dup check, (update), reload, activity], msg
    with django_assert_max_num_queries(16):
        response = sales_client.post(url("edit", lead), edit_data(lead, company="Initech", value="2500"))
    assert response.status_code == 302, response.content[:500]
    lead.refresh_from_db()
    assert lead.company == "Initech" and lead.version == 2
    assert lead.activities.get(kind=Activity.Kind.UPDATED).actor == sales


def test_log_activity(sales_client, lead, many_leads, django_assert_max_num_queries):
    # session, user, lead, [lock, activity], msg
    with django_assert_max_num_queries(10):
        response = sales_client.post(url("log_activity", lead), {"kind": "note", "body": "Sent the deck"})
    assert response.status_code == 302, response.content[:500]
    assert lead.activities.filter(kind=Activity.Kind.NOTE, body="Sent the deck").exists()


def test_reassign(manager_client, lead, other_sales, many_leads, django_assert_max_num_queries):
    # session, user, lead, new owner, [lock, update, reload, follow-ups handed over, activity], msg
    with django_assert_max_num_queries(14):
        response = manager_client.post(
            url("reassign", lead), {"owner": other_sales.pk, "version": lead.version}
        )
    assert response.status_code == 302, response.content[:500]
    lead.refresh_from_db()
    assert lead.owner == other_sales and lead.version == 2
    assert lead.activities.filter(kind=Activity.Kind.OWNER_CHANGED).exists()


def test_claim(sales_client, sales, many_leads, django_assert_max_num_queries):
    pool = LeadFactory(owner=None, created_by=None)
    # session, user, lead, [lock, update, reload, activity], msg
    with django_assert_max_num_queries(12):
        response = sales_client.post(url("claim", pool), {"version": pool.version})
    # The claim view redirects whatever happened: the DB says whether it worked.
    assert response.status_code == 302
    pool.refresh_from_db()
    assert pool.owner == sales and pool.version == 2
    assert pool.activities.get(kind=Activity.Kind.OWNER_CHANGED).data["claimed"] is True


def test_delete(manager_client, lead, many_leads, django_assert_max_num_queries):
    # session, user, lead, [lock, update deleted_at, reload, activity], msg
    with django_assert_max_num_queries(12):
        response = manager_client.post(url("delete", lead), {"reason": "Duplicate"})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.deleted_at is not None
    assert lead.activities.filter(kind=Activity.Kind.DELETED).exists()


def test_delete_confirm_page(manager_client, lead, many_leads, django_assert_max_num_queries):
    # session, user, lead, the bell's unread count
    with django_assert_max_num_queries(3 + 1):
        response = manager_client.get(url("delete", lead))
    assert response.status_code == 200
    assert lead.name in response.content.decode()
    assert Lead.objects.get(pk=lead.pk).deleted_at is None
