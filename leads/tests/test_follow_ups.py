"""Follow-ups: the services, /follow-ups/ grouped by day, the lead page panel and the board's badges."""

import zoneinfo
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from leads import follow_ups, selectors, services
from leads.events import lead_changed
from leads.models import Activity, FollowUp, Lead, Stage
from leads.tests.concurrency import run_at_once
from leads.tests.factories import ActivityFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db
FOLLOW_UPS = reverse("leads:follow_ups")


def schedule(lead, actor, *, due_in=timedelta(days=1), title="Call back", **kwargs):
    return follow_ups.schedule_follow_up(
        lead=lead,
        actor=actor,
        kind=kwargs.pop("kind", "call"),
        title=title,
        due_at=timezone.now() + due_in,
        **kwargs,
    )


@pytest.fixture
def events():
    seen = []

    def receiver(sender, event, lead_id, actor_id, payload, **kwargs):
        seen.append((event, lead_id, payload))

    lead_changed.connect(receiver)
    yield seen
    lead_changed.disconnect(receiver)


# --- services ---------------------------------------------------------------------------------


def test_schedule_for_yourself_records_and_announces(lead, sales, events, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        follow_up = schedule(lead, sales, notes="Ask about budget")
    assert follow_up.assigned_to == sales and follow_up.created_by == sales and follow_up.is_open
    activity = lead.activities.get(kind=Activity.Kind.FOLLOW_UP_SCHEDULED)
    assert activity.actor == sales and activity.data["title"] == "Call back"
    assert events == [
        ("follow_up.scheduled", lead.pk, {"follow_up_id": follow_up.pk, "assigned_to": sales.pk})
    ]


def test_sales_cannot_schedule_for_someone_else_but_managers_can(lead, sales, other_sales, manager):
    with pytest.raises(PermissionDenied):
        schedule(lead, sales, assigned_to=other_sales)
    assert schedule(lead, manager, assigned_to=other_sales).assigned_to == other_sales


def test_schedule_needs_edit_rights_on_the_lead(other_sales, sales):
    theirs = LeadFactory(owner=other_sales)
    with pytest.raises(PermissionDenied):
        schedule(theirs, sales)
    assert not FollowUp.objects.exists()


def test_schedule_validates_title_due_time_and_assignee(lead, sales, manager):
    with pytest.raises(ValidationError) as exc:
        follow_ups.schedule_follow_up(lead=lead, actor=sales, kind="call", title="  ", due_at=None)
    assert set(exc.value.message_dict) == {"title", "due_at"}
    gone = UserFactory(is_active=False)
    with pytest.raises(ValidationError) as exc:
        schedule(lead, manager, assigned_to=gone)
    assert "deactivated" in exc.value.message_dict["assigned_to"][0]
    # A due time in the past is allowed: logging a call you meant to make earlier.
    assert schedule(lead, sales, due_in=-timedelta(hours=2)).due_at < timezone.now()


def test_assignee_must_be_able_to_see_the_lead(lead, manager, other_sales, settings):
    settings.LEAD_SHARING = "private"
    with pytest.raises(ValidationError) as exc:
        schedule(lead, manager, assigned_to=other_sales)
    assert "cannot see this lead" in exc.value.message_dict["assigned_to"][0]


def test_an_existing_idempotency_key_returns_the_first_follow_up(lead, sales):
    first = schedule(lead, sales, idempotency_key="abc-1")
    again = schedule(lead, sales, idempotency_key="abc-1", title="Different")
    assert again.pk == first.pk and first.just_created and not again.just_created
    assert FollowUp.objects.count() == 1
    assert lead.activities.filter(kind=Activity.Kind.FOLLOW_UP_SCHEDULED).count() == 1


def test_someone_elses_key_is_refused_not_handed_over(lead, sales, manager):
    schedule(lead, sales, idempotency_key="shared")
    with pytest.raises(ValidationError) as exc:
        schedule(lead, manager, idempotency_key="shared")
    assert "idempotency_key" in exc.value.message_dict


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_creation_with_one_key_makes_one_follow_up():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    owner = UserFactory(role=Role.SALES)
    lead = LeadFactory(owner=owner)

    def attempt():
        return schedule(lead, owner, idempotency_key="race-key").pk

    results = run_at_once(*[attempt] * 4)
    assert len(set(results)) == 1 and len(results) == 4
    assert FollowUp.objects.count() == 1
    assert Activity.objects.filter(kind=Activity.Kind.FOLLOW_UP_SCHEDULED).count() == 1


def test_complete_writes_the_activity_with_outcome_notes_and_duration(
    lead, sales, events, django_capture_on_commit_callbacks
):
    follow_up = schedule(lead, sales, title="Demo call", kind="meeting")
    with django_capture_on_commit_callbacks(execute=True):
        done = follow_ups.complete_follow_up(
            follow_up=follow_up, actor=sales, outcome="interested", notes="Wants a quote", duration_minutes=25
        )
    assert done.done_at is not None and done.outcome == "interested" and done.duration_minutes == 25
    activity = lead.activities.get(kind=Activity.Kind.FOLLOW_UP_DONE)
    assert activity.body == "Wants a quote"
    assert activity.data["outcome"] == "interested" and activity.data["duration_minutes"] == 25
    assert activity.data["title"] == "Demo call" and activity.data["follow_up_kind"] == "meeting"
    assert events[-1] == ("follow_up.completed", lead.pk, {"follow_up_id": done.pk, "assigned_to": sales.pk})


def test_complete_validates_and_refuses_twice_or_cancelled(lead, sales):
    follow_up = schedule(lead, sales)
    with pytest.raises(ValidationError) as exc:
        follow_ups.complete_follow_up(follow_up=follow_up, actor=sales, outcome="", duration_minutes=2000)
    assert set(exc.value.message_dict) == {"outcome", "duration_minutes"}
    follow_ups.complete_follow_up(follow_up=follow_up, actor=sales, outcome="no_answer")
    with pytest.raises(ValidationError, match="already done"):
        follow_ups.complete_follow_up(follow_up=follow_up, actor=sales, outcome="no_answer")
    other = schedule(lead, sales)
    follow_ups.cancel_follow_up(follow_up=other, actor=sales)
    with pytest.raises(ValidationError, match="cancelled"):
        follow_ups.complete_follow_up(follow_up=other, actor=sales, outcome="other")
    assert lead.activities.filter(kind=Activity.Kind.FOLLOW_UP_DONE).count() == 1


def test_cancel_records_and_announces(lead, sales, events, django_capture_on_commit_callbacks):
    follow_up = schedule(lead, sales)
    with django_capture_on_commit_callbacks(execute=True):
        follow_ups.cancel_follow_up(follow_up=follow_up, actor=sales)
    follow_up.refresh_from_db()
    assert follow_up.cancelled_at is not None
    assert lead.activities.filter(kind=Activity.Kind.FOLLOW_UP_CANCELLED, actor=sales).exists()
    assert events[-1][0] == "follow_up.cancelled"


def test_who_may_complete_cancel_or_reschedule(lead, sales, other_sales, manager, settings):
    # A manager gives other_sales a follow-up on sales's lead (read sharing: they can see it).
    follow_up = schedule(lead, manager, assigned_to=other_sales)
    stranger = UserFactory(role=Role.SALES)
    with pytest.raises(PermissionDenied):
        follow_ups.cancel_follow_up(follow_up=follow_up, actor=stranger)
    # The lead's owner may, the assignee may (though they cannot edit the lead), managers may.
    follow_ups.reschedule_follow_up(
        follow_up=follow_up, actor=sales, due_at=timezone.now() + timedelta(days=3)
    )
    follow_ups.reschedule_follow_up(follow_up=follow_up, actor=other_sales, title="Reworded")
    follow_ups.complete_follow_up(follow_up=follow_up, actor=other_sales, outcome="call_back")


def test_reschedule_records_changes_and_only_managers_reassign(
    lead, sales, other_sales, manager, events, django_capture_on_commit_callbacks
):
    follow_up = schedule(lead, sales)
    new_due = timezone.now() + timedelta(days=5)
    with django_capture_on_commit_callbacks(execute=True):
        moved = follow_ups.reschedule_follow_up(follow_up=follow_up, actor=sales, due_at=new_due)
    assert moved.due_at == new_due
    activity = lead.activities.filter(kind=Activity.Kind.FOLLOW_UP_SCHEDULED).first()
    assert activity.data["rescheduled"] is True and "due_at" in activity.data["changes"]
    assert events[-1][0] == "follow_up.rescheduled"
    with pytest.raises(PermissionDenied):
        follow_ups.reschedule_follow_up(follow_up=follow_up, actor=sales, assigned_to=other_sales)
    handed = follow_ups.reschedule_follow_up(follow_up=follow_up, actor=manager, assigned_to=other_sales)
    assert handed.assigned_to == other_sales


# --- selectors ------------------------------------------------------------------------------------


def test_my_follow_ups_groups_by_the_current_time_zone(lead, sales, settings):
    settings.TIME_ZONE = "America/New_York"
    zone = zoneinfo.ZoneInfo("America/New_York")
    now = datetime(2026, 3, 10, 22, 0, tzinfo=zone)  # 10 pm in New York: 03:00 UTC the next day

    def at(hour, day=10):
        return FollowUp.objects.create(
            lead=lead,
            assigned_to=sales,
            title=f"{day}@{hour}",
            due_at=datetime(2026, 3, day, hour, 0, tzinfo=zone),
        )

    overdue, later_today, tomorrow = at(9), at(23), at(8, day=11)
    done = at(7)
    FollowUp.objects.filter(pk=done.pk).update(done_at=now - timedelta(days=2), outcome="other")
    FollowUp.objects.create(
        lead=lead, assigned_to=sales, title="old", due_at=now, done_at=now - timedelta(days=40)
    )
    with timezone.override(zone):
        groups = selectors.my_follow_ups(sales, now=now)
    assert [f.pk for f in groups.overdue] == [overdue.pk]
    assert [f.pk for f in groups.today] == [later_today.pk]  # in UTC it would already be "tomorrow"
    assert [f.pk for f in groups.upcoming] == [tomorrow.pk]
    assert [f.pk for f in groups.done] == [done.pk]


def test_visible_follow_ups_follow_lead_visibility(lead, sales, other_sales, settings):
    theirs = LeadFactory(owner=other_sales)
    mine, hidden = schedule(lead, sales), schedule(theirs, other_sales)
    settings.LEAD_SHARING = "private"
    assert list(selectors.visible_follow_ups(sales)) == [mine]
    settings.LEAD_SHARING = "read"
    assert set(selectors.visible_follow_ups(sales)) == {mine, hidden}


# --- /follow-ups/ -------------------------------------------------------------------------------------


def test_follow_ups_page_groups_and_links_the_lead(sales_client, sales, lead):
    schedule(lead, sales, title="Late one", due_in=-timedelta(hours=3))
    schedule(lead, sales, title="Next week", due_in=timedelta(days=7))
    body = sales_client.get(FOLLOW_UPS).content.decode()
    overdue_part = body[body.index('id="group-overdue"') : body.index('id="group-today"')]
    assert "Late one" in overdue_part and "Overdue" in overdue_part
    upcoming_part = body[body.index('id="group-upcoming"') : body.index('id="group-done"')]
    assert "Next week" in upcoming_part
    assert reverse("leads:detail", args=[lead.pk]) in body
    assert 'href="/follow-ups/"' in body  # the nav link


def test_complete_in_place_without_javascript(sales_client, sales, lead):
    follow_up = schedule(lead, sales, due_in=-timedelta(hours=1))
    url = reverse("leads:complete_follow_up", args=[follow_up.pk])
    response = sales_client.post(
        url, {"outcome": "interested", "notes": "Booked a demo", "duration_minutes": "10", "next": FOLLOW_UPS}
    )
    assert response.status_code == 302 and response["Location"] == FOLLOW_UPS
    body = sales_client.get(FOLLOW_UPS).content.decode()
    done_part = body[body.index('id="group-done"') :]
    assert "Call back" in done_part and "Interested" in done_part
    assert lead.activities.filter(kind=Activity.Kind.FOLLOW_UP_DONE, body="Booked a demo").exists()


def test_complete_without_outcome_shows_the_error_inline(sales_client, sales, lead):
    follow_up = schedule(lead, sales)
    url = reverse("leads:complete_follow_up", args=[follow_up.pk])
    response = sales_client.post(url, {"outcome": "", "notes": "kept", "next": FOLLOW_UPS})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Choose how it went." in body and "kept" in body
    follow_up.refresh_from_db()
    assert follow_up.is_open


def test_managers_see_someone_elses_follow_ups_sales_do_not(client, manager, sales, other_sales, lead):
    schedule(lead, sales, title="Sales task")
    client.force_login(manager)
    assert "Sales task" in client.get(FOLLOW_UPS, {"user": sales.pk}).content.decode()
    client.force_login(other_sales)
    assert client.get(FOLLOW_UPS, {"user": sales.pk}).status_code == 403


def test_invisible_follow_ups_are_404(sales_client, other_sales, settings):
    settings.LEAD_SHARING = "private"
    theirs = LeadFactory(owner=other_sales)
    follow_up = schedule(theirs, other_sales)
    url = reverse("leads:complete_follow_up", args=[follow_up.pk])
    assert sales_client.post(url, {"outcome": "other"}).status_code == 404
    assert sales_client.post(reverse("leads:cancel_follow_up", args=[follow_up.pk])).status_code == 404


@pytest.mark.parametrize("count", [2, 40])
def test_follow_ups_page_query_count_is_fixed(sales_client, sales, count, django_assert_max_num_queries):
    leads = LeadFactory.create_batch(4, owner=sales)
    for i in range(count):
        schedule(leads[i % 4], sales, due_in=timedelta(hours=i - count // 2))
    # session + user, the header's unread-notification count, open follow-ups, recently done ones.
    with django_assert_max_num_queries(5):
        response = sales_client.get(FOLLOW_UPS)
    assert response.status_code == 200


# --- the lead page panel ------------------------------------------------------------------------------


def test_lead_page_panel_schedules_completes_and_cancels(sales_client, sales, lead):
    detail = reverse("leads:detail", args=[lead.pk])
    response = sales_client.post(
        reverse("leads:schedule_follow_up", args=[lead.pk]),
        {"kind": "call", "title": "Check pricing", "due_at": "2030-01-02T09:30", "notes": ""},
    )
    assert response.status_code == 302 and response["Location"] == detail
    follow_up = FollowUp.objects.get()
    assert follow_up.assigned_to == sales and timezone.localtime(follow_up.due_at).hour == 9
    body = sales_client.get(detail).content.decode()
    assert "Check pricing" in body and 'type="datetime-local"' in body and "Mark done" in body
    assert 'name="assigned_to"' not in body  # salespeople schedule for themselves
    response = sales_client.post(reverse("leads:cancel_follow_up", args=[follow_up.pk]), {"next": detail})
    assert response.status_code == 302
    assert "No open follow-ups." in sales_client.get(detail).content.decode()


def test_schedule_errors_show_inline_on_the_lead_page(sales_client, lead):
    response = sales_client.post(
        reverse("leads:schedule_follow_up", args=[lead.pk]), {"kind": "call", "title": "", "due_at": "soon"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "Say what the follow-up is for." in body and "Enter a valid date/time." in body


def test_managers_pick_the_assignee_on_the_lead_page(manager_client, lead, other_sales):
    detail = reverse("leads:detail", args=[lead.pk])
    assert 'name="assigned_to"' in manager_client.get(detail).content.decode()
    manager_client.post(
        reverse("leads:schedule_follow_up", args=[lead.pk]),
        {"kind": "meeting", "title": "Visit", "due_at": "2030-01-02T09:30", "assigned_to": other_sales.pk},
    )
    assert FollowUp.objects.get().assigned_to == other_sales


def test_lead_page_query_count_does_not_grow_with_follow_ups(manager_client, manager):
    lead = LeadFactory()
    schedule(lead, manager)
    detail = reverse("leads:detail", args=[lead.pk])

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert manager_client.get(detail).status_code == 200
        return len(captured)

    one = queries()
    for _ in range(30):
        schedule(lead, manager)
    # The panel costs two queries (open follow-ups; the assignee menu, for managers) however many.
    assert queries() == one


# --- board badges ------------------------------------------------------------------------------------


def card_html(body, lead):
    start = body.index(f'id="lead-{lead.pk}"')
    return body[start : body.index("</li>", start)]


def test_board_cards_show_next_follow_up_and_overdue(sales_client, sales):
    late, soon, none = LeadFactory.create_batch(3, owner=sales)
    schedule(late, sales, due_in=-timedelta(hours=2))
    schedule(late, sales, due_in=timedelta(days=2))
    schedule(soon, sales, due_in=timedelta(days=1))
    body = sales_client.get(reverse("leads:board")).content.decode()
    assert "Overdue" in card_html(body, late) and "Follow-up" in card_html(body, late)
    assert "Follow-up" in card_html(body, soon) and "Overdue" not in card_html(body, soon)
    assert "Follow-up" not in card_html(body, none)


def test_board_marks_open_leads_without_recent_activity_stale(sales_client, sales, settings):
    settings.STALE_LEAD_DAYS = 7
    quiet, busy, won = LeadFactory.create_batch(3, owner=sales)
    long_ago = timezone.now() - timedelta(days=10)
    Lead.objects.filter(pk__in=[quiet.pk, busy.pk, won.pk]).update(created_at=long_ago)
    Lead.objects.filter(pk=won.pk).update(stage=Stage.objects.get(name="Won"))
    ActivityFactory(lead=quiet, occurred_at=long_ago)
    ActivityFactory(lead=busy, occurred_at=timezone.now() - timedelta(days=1))
    body = sales_client.get(reverse("leads:board")).content.decode()
    assert "Stale" in card_html(body, quiet)
    assert "Stale" not in card_html(body, busy)
    assert "Stale" not in card_html(body, won)  # closed leads are not stale


def test_moved_card_keeps_its_badges(sales_client, sales):
    lead = LeadFactory(owner=sales)
    schedule(lead, sales, due_in=-timedelta(hours=1))
    response = sales_client.post(
        reverse("leads:move", args=[lead.pk]),
        {"stage": Stage.objects.get(name="In Progress").pk, "version": lead.version},
        HTTP_ACCEPT="application/json",
    )
    assert "Overdue" in response.json()["card_html"]


@pytest.mark.parametrize("count", [3, 60])
def test_board_query_count_stays_fixed_with_follow_ups(client, count, django_assert_max_num_queries):
    manager = UserFactory(role=Role.MANAGER)
    leads = LeadFactory.create_batch(count, owner=manager)
    for i, lead in enumerate(leads):
        schedule(lead, manager, due_in=timedelta(hours=i - count // 2))
    client.force_login(manager)
    with django_assert_max_num_queries(16):
        response = client.get(reverse("leads:board"))
    assert response.status_code == 200


def test_services_are_the_only_writers_of_the_lead_version(lead, sales):
    # Follow-ups do not change the lead itself, so they never make an open lead page stale.
    follow_up = schedule(lead, sales)
    follow_ups.complete_follow_up(follow_up=follow_up, actor=sales, outcome="other")
    lead.refresh_from_db()
    assert lead.version == 1 and services.EDITABLE_FIELDS


# --- seed_demo and admin ------------------------------------------------------------------------------


def test_seed_demo_adds_follow_ups_once(settings):
    settings.DEBUG = True
    call_command("seed_demo", "--leads", "60", stdout=StringIO(), stderr=StringIO())
    seller = User.objects.get(email="sales@example.com")
    groups = selectors.my_follow_ups(seller)
    assert groups.overdue and groups.upcoming and groups.done
    before = (FollowUp.objects.count(), Activity.objects.count())
    call_command("seed_demo", "--leads", "60", stdout=StringIO(), stderr=StringIO())
    assert (FollowUp.objects.count(), Activity.objects.count()) == before


def test_admin_lists_and_changes_through_the_service(
    client, admin_user, sales, lead, django_assert_max_num_queries
):
    follow_up = schedule(lead, sales, title="Admin me")
    client.force_login(admin_user)
    changelist = reverse("admin:leads_followup_changelist")
    with django_assert_max_num_queries(12):
        assert "Admin me" in client.get(changelist, {"status": "open"}).content.decode()
    change = reverse("admin:leads_followup_change", args=[follow_up.pk])
    due = timezone.localtime(follow_up.due_at) + timedelta(days=1)
    response = client.post(
        change,
        {
            "kind": "call",
            "title": "Renamed in admin",
            "assigned_to": sales.pk,
            "due_at_0": due.strftime("%Y-%m-%d"),
            "due_at_1": due.strftime("%H:%M:%S"),
            "notes": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    follow_up.refresh_from_db()
    assert follow_up.title == "Renamed in admin"
    assert lead.activities.filter(kind=Activity.Kind.FOLLOW_UP_SCHEDULED, actor=admin_user).exists()
    response = client.post(changelist, {"action": "cancel_selected", "_selected_action": [follow_up.pk]})
    assert response.status_code == 302
    follow_up.refresh_from_db()
    assert follow_up.cancelled_at is not None


# --- found in review -----------------------------------------------------------------------------


def test_a_due_time_beyond_any_sensible_horizon_is_refused(lead, sales, settings, sales_client):
    """Year 9999 local is year 10000 in UTC west of Greenwich: stored, it would break every page."""
    settings.TIME_ZONE = "America/New_York"
    response = sales_client.post(
        f"/leads/{lead.pk}/follow-ups/", {"kind": "call", "title": "Far", "due_at": "9999-12-31T23:59"}
    )
    assert response.status_code == 400
    assert not FollowUp.objects.exists()
    assert sales_client.get("/board/").status_code == 200


def test_reassigning_a_lead_hands_its_open_follow_ups_to_the_new_owner(lead, sales, other_sales, manager):
    mine = schedule(lead, sales)
    done = schedule(lead, sales, title="Done already")
    follow_ups.complete_follow_up(follow_up=done, actor=sales, outcome=FollowUp.Outcome.INTERESTED)
    services.reassign_lead(lead=lead, owner=other_sales, actor=manager)
    mine.refresh_from_db()
    done.refresh_from_db()
    assert mine.assigned_to == other_sales
    assert done.assigned_to == sales  # history stays as it happened
    change = lead.activities.filter(kind=Activity.Kind.OWNER_CHANGED).first()
    assert change.data["follow_ups_handed_over"] == 1
