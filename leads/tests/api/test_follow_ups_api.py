"""/api/follow-ups/: filters, idempotent create, reschedule, cancel, complete, and 404 for hidden ones."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leads import follow_ups
from leads.models import Activity, FollowUp
from leads.tests.api.contract import PAGE_KEYS, assert_error
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db
LIST = "/api/follow-ups/"


def detail(follow_up):
    return f"/api/follow-ups/{follow_up.pk}/"


def schedule(lead, actor, *, due_in=timedelta(days=1), **kwargs):
    return follow_ups.schedule_follow_up(
        lead=lead,
        actor=actor,
        kind="call",
        title=kwargs.pop("title", "Call"),
        due_at=timezone.now() + due_in,
        **kwargs,
    )


def in_an_hour():
    return (timezone.now() + timedelta(hours=1)).isoformat()


def test_create_returns_201_and_writes_through_the_service(as_sales, sales, lead):
    response = as_sales.post(
        LIST, {"lead": lead.pk, "title": "Intro call", "due_at": in_an_hour()}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (
        body["status"] == "open" and body["assigned_to"]["id"] == sales.pk and body["lead"]["id"] == lead.pk
    )
    assert response["Location"].endswith(f"/api/follow-ups/{body['id']}/")
    assert lead.activities.filter(kind=Activity.Kind.FOLLOW_UP_SCHEDULED).count() == 1


@pytest.mark.parametrize("how", ["header", "field"])
def test_an_idempotency_key_returns_the_first_follow_up_with_200(as_sales, lead, how):
    body = {"lead": lead.pk, "title": "Intro call", "due_at": in_an_hour()}
    headers = {}
    if how == "header":
        headers = {"HTTP_IDEMPOTENCY_KEY": "retry-1"}
    else:
        body["idempotency_key"] = "retry-1"
    first = as_sales.post(LIST, body, format="json", **headers)
    again = as_sales.post(LIST, body, format="json", **headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert FollowUp.objects.count() == 1


def test_create_errors_name_the_field(as_sales, lead, other_sales):
    response = as_sales.post(LIST, {"lead": lead.pk, "title": "", "due_at": "tomorrow"}, format="json")
    assert_error(response, 400, fields={"title", "due_at"})
    response = as_sales.post(
        LIST,
        {"lead": lead.pk, "title": "x", "due_at": in_an_hour(), "assigned_to": other_sales.pk},
        format="json",
    )
    assert_error(response, 403)


def test_list_filters(as_manager, manager, sales, lead, other_sales):
    other_lead = LeadFactory(owner=other_sales)
    late = schedule(lead, manager, assigned_to=sales, due_in=-timedelta(hours=2))
    later = schedule(other_lead, manager, assigned_to=other_sales, due_in=timedelta(days=3))
    done = schedule(lead, manager)
    follow_ups.complete_follow_up(follow_up=done, actor=manager, outcome="other")
    cancelled = schedule(lead, manager)
    follow_ups.cancel_follow_up(follow_up=cancelled, actor=manager)

    def ids(**params):
        response = as_manager.get(LIST, params)
        assert response.status_code == 200, response.content
        assert set(response.json()) == {"follow_ups", *PAGE_KEYS}
        return {row["id"] for row in response.json()["follow_ups"]}

    assert ids() == {late.pk, later.pk, done.pk, cancelled.pk}
    assert ids(assigned_to=sales.pk) == {late.pk}
    assert ids(assigned_to="me") == {done.pk, cancelled.pk}
    assert ids(lead=other_lead.pk) == {later.pk}
    assert ids(status="open") == {late.pk, later.pk}
    assert ids(status="overdue") == {late.pk}
    assert ids(status="done") == {done.pk}
    assert ids(status="cancelled") == {cancelled.pk}
    assert ids(due_after=(timezone.now() + timedelta(days=2)).isoformat()) == {later.pk}
    assert late.pk in ids(due_before=timezone.now().isoformat())
    assert_error(as_manager.get(LIST, {"status": "someday"}), 400)
    assert_error(as_manager.get(LIST, {"assigned_to": "nobody"}), 400)


def test_update_reschedules_and_patch_rewords(as_sales, sales, lead):
    follow_up = schedule(lead, sales)
    new_due = (timezone.now() + timedelta(days=4)).replace(microsecond=0)
    response = as_sales.put(
        detail(follow_up), {"title": "Moved", "due_at": new_due.isoformat()}, format="json"
    )
    assert response.status_code == 200, response.content
    follow_up.refresh_from_db()
    assert follow_up.title == "Moved" and follow_up.due_at == new_due
    response = as_sales.patch(detail(follow_up), {"notes": "Bring the contract"}, format="json")
    assert response.status_code == 200 and response.json()["notes"] == "Bring the contract"
    assert_error(as_sales.put(detail(follow_up), {"title": "No time"}, format="json"), 400, fields={"due_at"})


def test_delete_cancels(as_sales, sales, lead):
    follow_up = schedule(lead, sales)
    assert as_sales.delete(detail(follow_up)).status_code == 204
    follow_up.refresh_from_db()
    assert follow_up.cancelled_at is not None
    assert as_sales.get(detail(follow_up)).json()["status"] == "cancelled"
    assert_error(as_sales.delete(detail(follow_up)), 400)


def test_complete_endpoint(as_sales, sales, lead):
    follow_up = schedule(lead, sales)
    url = f"{detail(follow_up)}complete/"
    assert_error(as_sales.post(url, {"outcome": "maybe"}, format="json"), 400, fields={"outcome"})
    response = as_sales.post(
        url, {"outcome": "interested", "notes": "Send a quote", "duration_minutes": 15}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "done" and response.json()["outcome"] == "interested"
    activity = lead.activities.get(kind=Activity.Kind.FOLLOW_UP_DONE)
    assert activity.data["duration_minutes"] == 15 and activity.body == "Send a quote"
    assert_error(as_sales.post(url, {"outcome": "interested"}, format="json"), 400)


def test_invisible_follow_ups_are_404(as_sales, other_sales, settings):
    settings.LEAD_SHARING = "private"
    theirs = schedule(LeadFactory(owner=other_sales), other_sales)
    assert_error(as_sales.get(detail(theirs)), 404)
    assert_error(as_sales.patch(detail(theirs), {"title": "x"}, format="json"), 404)
    assert_error(as_sales.delete(detail(theirs)), 404)
    assert_error(as_sales.post(f"{detail(theirs)}complete/", {"outcome": "other"}, format="json"), 404)
    assert as_sales.get(LIST).json()["count"] == 0
    response = as_sales.post(
        LIST, {"lead": theirs.lead_id, "title": "x", "due_at": in_an_hour()}, format="json"
    )
    assert_error(response, 400, fields={"lead"})


@pytest.mark.parametrize("count", [3, 60])
def test_list_query_count_is_fixed(as_manager, manager, count, django_assert_max_num_queries):
    leads = LeadFactory.create_batch(4)
    for i in range(count):
        schedule(leads[i % 4], manager)
    # count, one page with lead and assignee joined.
    with django_assert_max_num_queries(2):
        response = as_manager.get(LIST, {"limit": 100})
    assert response.status_code == 200 and response.json()["count"] == count


def test_one_follow_up_is_one_query(as_manager, manager, lead, django_assert_max_num_queries):
    follow_up = schedule(lead, manager)
    with django_assert_max_num_queries(1):
        assert as_manager.get(detail(follow_up)).status_code == 200


def test_complete_query_count(as_sales, sales, lead, django_assert_max_num_queries):
    follow_up = schedule(lead, sales)
    with django_assert_max_num_queries(8):
        response = as_sales.post(f"{detail(follow_up)}complete/", {"outcome": "other"}, format="json")
    assert response.status_code == 200


def test_create_query_count(as_sales, lead, django_assert_max_num_queries):
    with django_assert_max_num_queries(9):
        response = as_sales.post(LIST, {"lead": lead.pk, "title": "x", "due_at": in_an_hour()}, format="json")
    assert response.status_code == 201
