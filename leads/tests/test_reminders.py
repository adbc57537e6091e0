"""send_reminders: the morning digest and the before-due reminder, each sent once, in local time."""

from datetime import datetime, timedelta
from functools import partial
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection

from leads.models import FollowUp, Notification, OutgoingEmail
from leads.tests.concurrency import run_at_once
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")
# A Monday morning, after the default digest hour (7).
MORNING = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def follow_up(user, due_at, title="Call", **fields):
    lead = fields.pop("lead", None) or LeadFactory(owner=user, first_name="Pat", last_name=title)
    return FollowUp.objects.create(lead=lead, title=title, assigned_to=user, due_at=due_at, **fields)


def run(now, *args):
    out = StringIO()
    call_command("send_reminders", "--now", now.isoformat(), *args, stdout=out)
    return out.getvalue()


def sent_to(user):
    return [m for m in mail.outbox if m.to == [user.email]]


@pytest.fixture(autouse=True)
def _quiet_hours(settings):
    settings.TIME_ZONE = "UTC"
    settings.REMINDER_DIGEST_HOUR = 7
    settings.REMINDER_MINUTES_BEFORE = 15
    settings.SITE_URL = "https://crm.example"


# --- the digest ---------------------------------------------------------------------------------


def test_the_digest_lists_overdue_and_todays_follow_ups_only(sales):
    follow_up(sales, MORNING - timedelta(days=2), "Overdue call")
    follow_up(sales, MORNING + timedelta(hours=6), "Afternoon meeting")
    follow_up(sales, MORNING + timedelta(days=1), "Tomorrow call")
    follow_up(sales, MORNING - timedelta(days=1), "Done call", done_at=MORNING - timedelta(days=1))
    follow_up(
        sales, MORNING + timedelta(hours=1), "Cancelled call", cancelled_at=MORNING - timedelta(hours=1)
    )

    output = run(MORNING)

    [digest] = [m for m in sent_to(sales) if "Your follow-ups" in m.subject]
    assert digest.subject == "Your follow-ups for Monday, 2 March: 1 overdue, 1 due today"
    assert "Overdue call" in digest.body and "Afternoon meeting" in digest.body
    assert "Tomorrow call" not in digest.body
    assert "Done call" not in digest.body and "Cancelled call" not in digest.body
    assert digest.body.index("OVERDUE") < digest.body.index("Overdue call") < digest.body.index("DUE TODAY")
    assert "https://crm.example/leads/" in digest.body
    html = digest.alternatives[0][0]
    assert "Overdue call" in html and "Tomorrow call" not in html
    assert f"Sent digest to {sales.email}: 1 overdue, 1 due today" in output
    assert OutgoingEmail.objects.filter(key=f"digest:{sales.pk}:2026-03-02", status="sent").count() == 1


def test_each_user_gets_their_own_digest_and_nobody_gets_an_empty_one(sales, other_sales, manager):
    follow_up(sales, MORNING + timedelta(hours=2), "Mine")
    follow_up(other_sales, MORNING + timedelta(hours=3), "Theirs")
    follow_up(manager, MORNING + timedelta(days=3), "Next week")

    run(MORNING)

    [mine] = sent_to(sales)
    [theirs] = sent_to(other_sales)
    assert "Mine" in mine.body and "Theirs" not in mine.body
    assert "Theirs" in theirs.body
    assert sent_to(manager) == []


def test_the_digest_goes_out_once_a_day(sales):
    follow_up(sales, MORNING + timedelta(hours=4), "Call")
    run(MORNING)
    output = run(MORNING + timedelta(hours=2))
    assert len(sent_to(sales)) == 1
    assert "Sent 0 digest(s)" in output

    run(MORNING + timedelta(days=1))
    assert len(sent_to(sales)) == 2


def test_no_digest_before_the_digest_hour(sales, settings):
    settings.REMINDER_DIGEST_HOUR = 9
    follow_up(sales, MORNING + timedelta(hours=4), "Call")
    run(MORNING)
    assert sent_to(sales) == []
    run(MORNING + timedelta(hours=1))
    assert len(sent_to(sales)) == 1


def test_inactive_users_and_deleted_leads_are_left_out(sales, other_sales):
    other_sales.is_active = False
    other_sales.save()
    follow_up(other_sales, MORNING + timedelta(hours=1), "Gone")
    follow_up(
        sales,
        MORNING + timedelta(hours=2),
        "On a deleted lead",
        lead=LeadFactory(owner=sales, deleted_at=MORNING),
    )
    run(MORNING)
    assert mail.outbox == []


def test_the_digest_day_is_the_local_day(sales, settings):
    settings.TIME_ZONE = "America/New_York"
    # 22:30 on Sunday 1 March in New York is 03:30 on Monday in UTC.
    evening = datetime(2026, 3, 2, 3, 30, tzinfo=UTC)
    follow_up(sales, datetime(2026, 3, 2, 2, 0, tzinfo=UTC), "Sunday 9pm call")  # earlier tonight
    follow_up(sales, datetime(2026, 3, 2, 15, 0, tzinfo=UTC), "Monday 10am call")  # tomorrow, locally

    run(evening)

    [digest] = sent_to(sales)
    assert digest.subject.startswith("Your follow-ups for Sunday, 1 March")
    assert "Sunday 9pm call" in digest.body and "21:00" in digest.body
    assert "Monday 10am call" not in digest.body
    assert OutgoingEmail.objects.filter(key=f"digest:{sales.pk}:2026-03-01").exists()


def test_the_digest_hour_is_local_too(sales, settings):
    settings.TIME_ZONE = "America/New_York"
    # 11:30 UTC is 06:30 in New York: too early.
    follow_up(sales, datetime(2026, 3, 2, 16, 0, tzinfo=UTC), "Call")
    run(datetime(2026, 3, 2, 11, 30, tzinfo=UTC))
    assert sent_to(sales) == []
    run(datetime(2026, 3, 2, 12, 30, tzinfo=UTC))
    assert len(sent_to(sales)) == 1


def test_a_dry_run_sends_nothing(sales):
    follow_up(sales, MORNING + timedelta(minutes=10), "Soon")
    output = run(MORNING, "--dry-run")
    assert f"Would send digest to {sales.email}" in output
    assert f"Would send reminder to {sales.email}: Soon" in output
    assert mail.outbox == [] and not OutgoingEmail.objects.exists() and not Notification.objects.exists()
    assert FollowUp.objects.get().reminder_sent_at is None


def test_a_bad_now_is_refused():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--now must be an ISO 8601"):
        call_command("send_reminders", "--now", "tomorrow-ish", stdout=StringIO())


# --- the reminder before a follow-up is due ---------------------------------------------------------


def test_a_reminder_goes_out_shortly_before_the_due_time_once(sales, settings):
    settings.REMINDER_DIGEST_HOUR = 23  # keep the digest out of this test
    soon = follow_up(sales, MORNING + timedelta(minutes=10), "Call about renewal", notes="Ask about seats")
    later = follow_up(sales, MORNING + timedelta(minutes=40), "Later call")

    output = run(MORNING)
    run(MORNING + timedelta(minutes=1))

    [reminder] = sent_to(sales)
    assert reminder.subject == "Due at 08:10: Call about renewal (Pat Call about renewal)"
    assert "is due at 08:10" in reminder.body and "Ask about seats" in reminder.body
    assert f"https://crm.example/leads/{soon.lead_id}/" in reminder.body
    assert f"Sent reminder to {sales.email}: Call about renewal" in output
    soon.refresh_from_db()
    later.refresh_from_db()
    assert soon.reminder_sent_at == MORNING and later.reminder_sent_at is None
    [notice] = Notification.objects.filter(user=sales)
    assert notice.kind == Notification.Kind.FOLLOW_UP_DUE
    assert notice.message == "Call about renewal on Pat Call about renewal is due at 08:10"
    assert notice.url == f"/leads/{soon.lead_id}/"

    run(MORNING + timedelta(minutes=30))
    assert [m.subject for m in sent_to(sales)][-1].startswith("Due at 08:40: Later call")
    assert len(sent_to(sales)) == 2


def test_long_overdue_follow_ups_get_no_late_reminder(sales, settings):
    settings.REMINDER_DIGEST_HOUR = 23
    follow_up(sales, MORNING - timedelta(hours=3), "Missed call")
    just_missed = follow_up(sales, MORNING - timedelta(minutes=5), "Just missed")
    run(MORNING)
    [reminder] = sent_to(sales)
    assert "Just missed" in reminder.subject and "was due at 07:55" in reminder.body
    just_missed.refresh_from_db()
    assert just_missed.reminder_sent_at is not None


def test_done_and_cancelled_follow_ups_get_no_reminder(sales, settings):
    settings.REMINDER_DIGEST_HOUR = 23
    follow_up(sales, MORNING + timedelta(minutes=5), "Done", done_at=MORNING)
    follow_up(sales, MORNING + timedelta(minutes=5), "Cancelled", cancelled_at=MORNING)
    run(MORNING)
    assert mail.outbox == [] and not Notification.objects.exists()


def test_the_reminder_time_is_local(sales, settings):
    settings.TIME_ZONE = "America/New_York"
    settings.REMINDER_DIGEST_HOUR = 23
    follow_up(sales, datetime(2026, 3, 2, 15, 0, tzinfo=UTC), "Morning call")
    run(datetime(2026, 3, 2, 14, 50, tzinfo=UTC))
    [reminder] = sent_to(sales)
    assert reminder.subject.startswith("Due at 10:00: Morning call")


@pytest.mark.parametrize("user_count", [1, 4])
def test_the_command_runs_a_fixed_number_of_queries_per_message(user_count, django_assert_max_num_queries):
    for i in range(user_count):
        user = UserFactory(email=f"rep{i}@test.example")
        for minutes in (5, 10):
            follow_up(user, MORNING + timedelta(minutes=minutes), f"Call {minutes}")
    # Three reads whatever the numbers (the digest's follow-ups, the reminders' candidates, the
    # outbox); then per digest 7 (queue: check, insert in a savepoint; delivery: claim, read,
    # finish) and per reminder 13 (the claim in a savepoint, the e-mail and the notice besides).
    with django_assert_max_num_queries(3 + user_count * (7 + 2 * 13)):
        run(MORNING)
    assert len(mail.outbox) == user_count * 3


# --- two machines at once ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_runs_send_each_email_once(settings):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    settings.REMINDER_DIGEST_HOUR = 7
    users = [UserFactory(email=f"rep{i}@test.example") for i in range(3)]
    for user in users:
        follow_up(user, MORNING - timedelta(days=1), "Overdue")
        for minutes in (3, 6, 9):
            follow_up(user, MORNING + timedelta(minutes=minutes), f"Call {minutes}")

    run_at_once(partial(run, MORNING), partial(run, MORNING))

    expected = 3 * (1 + 3)
    assert OutgoingEmail.objects.count() == expected
    assert OutgoingEmail.objects.filter(status="sent").count() == expected
    assert len(mail.outbox) == expected
    assert len({(m.to[0], m.subject) for m in mail.outbox}) == expected
    assert Notification.objects.filter(kind=Notification.Kind.FOLLOW_UP_DUE).count() == 9
    assert not FollowUp.objects.filter(reminder_sent_at__isnull=True, title__startswith="Call").exists()


# --- found in review -----------------------------------------------------------------------------


def test_no_reminder_goes_to_an_assignee_who_may_not_see_the_lead(sales, other_sales, settings):
    """A reminder quotes the lead's e-mail and phone: never to someone who may not see the lead
    (under "private" sharing, a lead someone else owns; e.g. after a reassignment by a bulk tool)."""
    settings.LEAD_SHARING = "private"
    theirs = LeadFactory(owner=other_sales, email="secret@prospect.example")
    follow_up(sales, MORNING - timedelta(hours=1), title="Overdue", lead=theirs)
    follow_up(sales, MORNING + timedelta(minutes=5), title="Soon", lead=theirs)
    run(MORNING)
    assert sent_to(sales) == []
    assert not Notification.objects.filter(user=sales).exists()


def test_a_rescheduled_follow_up_is_reminded_again(sales, settings):
    from leads import follow_ups

    due = follow_up(sales, MORNING + timedelta(minutes=5))
    run(MORNING)
    later = MORNING + timedelta(days=2)
    follow_ups.reschedule_follow_up(follow_up=due, actor=sales, due_at=later)
    run(later - timedelta(minutes=5))
    reminders = [m for m in mail.outbox if m.to == [sales.email] and "Call" in m.subject]
    assert len(reminders) == 2
    assert Notification.objects.filter(user=sales, kind=Notification.Kind.FOLLOW_UP_DUE).count() == 2
