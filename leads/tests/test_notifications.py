"""In-app notifications: who hears about which change, once, the bell in the header and the inbox page."""

import re
from datetime import timedelta

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from leads import notifications, services
from leads.events import announce
from leads.models import Activity, FollowUp, Notification
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db
INBOX = reverse("leads:notifications")
UNREAD = reverse("leads:notifications_unread")
READ_ALL = reverse("leads:notifications_read_all")


def open_url(notification):
    return reverse("leads:notification_open", args=[notification.pk])


def notices(user):
    return list(Notification.objects.filter(user=user).order_by("id"))


def bell_text(body):
    """The bell link's accessible name: its text, as a screen reader reads it."""
    start = body.index('id="notification-bell"')
    link = body[start : body.index("</a>", start)]
    return re.sub(r"<[^>]+>", "", link.split(">", 1)[1]).strip()


def give(user, count=1, **fields):
    return [
        notifications.notify(
            user=user, kind=Notification.Kind.LEAD_ASSIGNED, message=f"Notice {i}", key=f"test:{i}", **fields
        )
        for i in range(count)
    ]


# --- notify ---------------------------------------------------------------------------------


def test_notify_writes_one_notice_per_user_and_key(sales, other_sales, lead):
    first = notifications.notify(
        user=sales, kind=Notification.Kind.LEAD_ASSIGNED, message="Hi", lead=lead, url="/x/", key="k"
    )
    again = notifications.notify(user=sales, kind=Notification.Kind.LEAD_ASSIGNED, message="Hi", key="k")
    other = notifications.notify(
        user=other_sales, kind=Notification.Kind.LEAD_ASSIGNED, message="Hi", key="k"
    )

    assert first is not None and again is None and other is not None
    assert [(n.message, n.url, n.lead) for n in notices(sales)] == [("Hi", "/x/", lead)]
    assert len(notices(other_sales)) == 1


def test_a_duplicate_does_not_break_the_callers_transaction(sales):
    give(sales)
    with transaction.atomic():
        assert give(sales) == [None]
        # Still usable: the IntegrityError stayed inside notify's savepoint.
        assert Notification.objects.filter(user=sales).count() == 1


def test_inactive_and_missing_users_get_nothing(sales):
    sales.is_active = False
    sales.save()
    assert give(sales) == [None]
    assert notifications.notify(user=None, kind=Notification.Kind.LEAD_ASSIGNED, message="x", key="k") is None
    assert not Notification.objects.exists()


def test_long_messages_are_shortened_not_refused(sales):
    notice = notifications.notify(
        user=sales, kind=Notification.Kind.LEAD_ASSIGNED, message="x" * 500, key="k"
    )
    assert len(notice.message) == 300 and notice.message.endswith("…")


# --- receivers --------------------------------------------------------------------------------


def test_the_new_owner_hears_of_a_reassignment(
    manager, sales, other_sales, lead, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_lead(lead=lead, owner=other_sales, actor=manager)

    [notice] = notices(other_sales)
    assert notice.kind == Notification.Kind.LEAD_ASSIGNED
    assert notice.message.startswith(f"Lead {lead.name} was assigned to you")
    assert notice.url == reverse("leads:detail", args=[lead.pk]) and notice.lead == lead
    assert notices(sales) == [] and notices(manager) == []


def test_reassigning_back_and_forth_notifies_each_time(
    manager, sales, other_sales, lead, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_lead(lead=lead, owner=other_sales, actor=manager)
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_lead(lead=lead, owner=sales, actor=manager)
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_lead(lead=lead, owner=other_sales, actor=manager)

    assert len(notices(other_sales)) == 2
    assert len(notices(sales)) == 1


def test_taking_a_lead_yourself_is_not_news(manager, django_capture_on_commit_callbacks):
    lead = LeadFactory(owner=None)
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_lead(lead=lead, owner=manager, actor=manager)
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_lead(lead=lead, owner=None, actor=manager)
    assert not Notification.objects.exists()


def test_an_event_delivered_twice_notifies_once(
    manager, other_sales, lead, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.reassign_lead(lead=lead, owner=other_sales, actor=manager)
    for callback in callbacks * 2:
        callback()
    assert len(notices(other_sales)) == 1


def test_the_owner_hears_of_activity_someone_else_logged(
    manager, sales, lead, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.log_activity(lead=lead, actor=manager, kind=Activity.Kind.NOTE, body="Spoke to their CFO")
    with django_capture_on_commit_callbacks(execute=True):
        services.log_activity(lead=lead, actor=sales, kind=Activity.Kind.NOTE, body="My own note")

    [notice] = notices(sales)
    assert notice.kind == Notification.Kind.ACTIVITY_LOGGED
    assert notice.message == f"{manager} logged a note on {lead.name}"
    assert notices(manager) == []


def test_a_captured_lead_goes_to_its_owner(sales, manager, django_capture_on_commit_callbacks):
    lead = LeadFactory(owner=sales, first_name="Web", last_name="Visitor")
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.captured", lead=lead, actor=None)

    assert [n.message for n in notices(sales)] == ["New lead from the website: Web Visitor"]
    assert notices(manager) == []


def test_an_unassigned_captured_lead_goes_to_every_active_manager(
    manager, admin_user, sales, django_capture_on_commit_callbacks
):
    retired = UserFactory(role="manager", is_active=False)
    lead = LeadFactory(owner=None, first_name="Web", last_name="Visitor")
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.captured", lead=lead, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        announce("lead.captured", lead=lead, actor=None)

    for user in (manager, admin_user):
        assert [n.kind for n in notices(user)] == [Notification.Kind.LEAD_CAPTURED]
    assert notices(sales) == [] and notices(retired) == []


def test_a_resubmission_goes_to_the_owner_once_per_submission(sales, django_capture_on_commit_callbacks):
    lead = LeadFactory(owner=sales)
    for activity_id in (11, 11, 12):
        with django_capture_on_commit_callbacks(execute=True):
            announce("lead.resubmitted", lead=lead, actor=None, activity_id=activity_id)
    assert [n.kind for n in notices(sales)] == [Notification.Kind.LEAD_RESUBMITTED] * 2


def test_a_follow_up_scheduled_for_someone_else_tells_them(
    manager, sales, lead, django_capture_on_commit_callbacks
):
    follow_up = FollowUp.objects.create(
        lead=lead,
        title="Call back about pricing",
        assigned_to=sales,
        due_at=timezone.now() + timedelta(days=1),
    )
    with django_capture_on_commit_callbacks(execute=True):
        announce(
            "follow_up.scheduled", lead=lead, actor=manager, follow_up_id=follow_up.pk, assigned_to=sales.pk
        )
    with django_capture_on_commit_callbacks(execute=True):
        announce(
            "follow_up.scheduled", lead=lead, actor=sales, follow_up_id=follow_up.pk + 1, assigned_to=sales.pk
        )

    [notice] = notices(sales)
    assert notice.kind == Notification.Kind.FOLLOW_UP_ASSIGNED
    assert notice.message.startswith(f"{manager} scheduled a follow-up for you")
    assert "Call back about pricing" in notice.message


def test_scheduling_through_the_service_notifies_the_assignee(
    manager, sales, lead, django_capture_on_commit_callbacks
):
    from leads.follow_ups import schedule_follow_up

    with django_capture_on_commit_callbacks(execute=True):
        schedule_follow_up(
            lead=lead,
            actor=manager,
            title="Demo",
            due_at=timezone.now() + timedelta(days=2),
            assigned_to=sales,
        )
    assert [n.kind for n in notices(sales)] == [Notification.Kind.FOLLOW_UP_ASSIGNED]


def test_a_failing_receiver_never_reaches_the_request(
    manager, other_sales, lead, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def broken(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(notifications, "notify", broken)
    with django_capture_on_commit_callbacks(execute=True):
        services.reassign_lead(lead=lead, owner=other_sales, actor=manager)
    assert "Could not write notifications for lead.reassigned" in caplog.text


# --- the bell -------------------------------------------------------------------------------


def test_the_bell_shows_the_unread_count(sales_client, sales, other_sales):
    give(sales, 3)
    give(other_sales, 2)
    notifications.mark_read(user=sales, notification=Notification.objects.filter(user=sales).first())

    body = sales_client.get(reverse("leads:board")).content.decode()
    assert 'id="notification-bell" class="bell has-unread"' in body
    assert bell_text(body) == "Notifications, 2 unread"
    assert '<span class="bell-count" data-unread-count>2</span>' in body


def test_the_bell_count_hides_at_zero(sales_client):
    body = sales_client.get(reverse("leads:board")).content.decode()
    assert 'id="notification-bell" class="bell"' in body
    assert bell_text(body) == "Notifications, 0 unread"


def test_signed_out_pages_have_no_bell_and_no_count_query(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        body = client.get(reverse("login")).content.decode()
    assert "notification-bell" not in body


def test_the_bell_costs_exactly_one_query(sales_client, sales, django_assert_num_queries):
    from django.template import RequestContext, Template
    from django.test import RequestFactory

    give(sales, 2)
    request = RequestFactory().get("/")
    request.user = sales
    template = Template("{{ unread_notifications }} {{ unread_notifications }}")
    with django_assert_num_queries(1):
        assert template.render(RequestContext(request)) == "2 2"
    with django_assert_num_queries(0):
        Template("no bell here").render(RequestContext(request))


# --- the notifications page -------------------------------------------------------------------


def test_the_inbox_lists_my_notices_newest_first_with_unread_marked(sales_client, sales, other_sales):
    old, new = give(sales, 2)
    Notification.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    notifications.mark_read(user=sales, notification=old)
    give(other_sales)
    Notification.objects.filter(user=other_sales).update(message="Someone else's")

    body = sales_client.get(INBOX).content.decode()
    assert body.index("Notice 1") < body.index("Notice 0")
    assert body.count("notification-unread") == 1
    assert "Someone else&#x27;s" not in body and "Someone else's" not in body
    assert "Mark all read" in body


def test_the_inbox_is_paged(sales_client, sales):
    give(sales, 30)
    first = sales_client.get(INBOX).content.decode()
    second = sales_client.get(INBOX, {"page": 2}).content.decode()
    assert first.count('class="notification ') + first.count('class="notification"') == 25
    assert "Page 1 of 2" in first and "Page 2 of 2" in second


def test_opening_a_notice_marks_it_read_and_goes_to_its_page(sales_client, sales, lead):
    [notice] = give(sales, lead=lead, url=lead.get_absolute_url())
    response = sales_client.post(open_url(notice))
    assert response.status_code == 302 and response["Location"] == lead.get_absolute_url()
    notice.refresh_from_db()
    assert notice.read_at is not None
    first_read = notice.read_at

    sales_client.post(open_url(notice))
    notice.refresh_from_db()
    assert notice.read_at == first_read


def test_opening_never_redirects_off_site(sales_client, sales):
    [notice] = give(sales, url="https://evil.example/phish")
    response = sales_client.post(open_url(notice))
    assert response["Location"] == INBOX


def test_opening_needs_a_post(sales_client, sales):
    [notice] = give(sales)
    assert sales_client.get(open_url(notice)).status_code == 405
    notice.refresh_from_db()
    assert notice.read_at is None


def test_someone_elses_notice_is_a_404(sales_client, other_sales):
    [notice] = give(other_sales)
    assert sales_client.post(open_url(notice)).status_code == 404
    assert sales_client.post(reverse("leads:notification_open", args=[999999])).status_code == 404
    notice.refresh_from_db()
    assert notice.read_at is None


def test_mark_all_read_reads_only_mine(sales_client, sales, other_sales):
    give(sales, 3)
    give(other_sales, 2)
    response = sales_client.post(READ_ALL, follow=True)
    assert "Marked 3 notifications read." in response.content.decode()
    assert notifications.unread_count(sales) == 0
    assert notifications.unread_count(other_sales) == 2
    assert bell_text(response.content.decode()) == "Notifications, 0 unread"


def test_the_page_needs_a_login(client):
    response = client.get(INBOX)
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert client.post(READ_ALL).status_code == 302


def test_unread_json(sales_client, sales, client):
    give(sales, 4)
    response = sales_client.get(UNREAD)
    assert response.json() == {"unread": 4}
    assert response["Cache-Control"] == "no-store"


def test_unread_json_signed_out_is_a_401(client):
    response = client.get(UNREAD)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


# --- query counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 60])
def test_the_inbox_runs_a_fixed_number_of_queries(sales_client, sales, count, django_assert_max_num_queries):
    give(sales, count, lead=LeadFactory(owner=sales))
    # session, user, paginator count, the page, the bell's count.
    with django_assert_max_num_queries(5):
        assert sales_client.get(INBOX).status_code == 200


def test_opening_runs_a_fixed_number_of_queries(sales_client, sales, django_assert_max_num_queries):
    [notice] = give(sales, url="/board/")
    # session, user, the notice, the conditional update.
    with django_assert_max_num_queries(4):
        sales_client.post(open_url(notice))


def test_mark_all_read_runs_a_fixed_number_of_queries(sales_client, sales, django_assert_max_num_queries):
    give(sales, 40)
    # session, user, one update, and the flash message saved to the session (in a savepoint).
    with django_assert_max_num_queries(6):
        sales_client.post(READ_ALL)


def test_unread_json_is_one_query_after_the_session(sales_client, sales, django_assert_max_num_queries):
    give(sales, 40)
    with django_assert_max_num_queries(3):
        sales_client.get(UNREAD)
