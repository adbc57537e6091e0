"""Follow-up reminders: the morning digest per user and the e-mail shortly before each follow-up is due.

Both are safe to run again and on several machines at once: the digest's e-mail key names the
user and the local date, and each before-due reminder is claimed by one conditional UPDATE.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from leads import policies
from leads.mail import absolute_url, queue_email
from leads.models import FollowUp, Notification, OutgoingEmail
from leads.notifications import notify

# A reminder for something due a little while ago is still useful when a run was missed;
# anything older waits for the next digest, where it shows as overdue.
LATE_REMINDER_WINDOW = timedelta(hours=1)


@dataclass
class Sent:
    """One message send_reminders sent, or would send under --dry-run."""

    what: str  # "digest" or "reminder"
    to: str
    summary: str


def _open_follow_ups():
    return FollowUp.objects.filter(
        done_at__isnull=True,
        cancelled_at__isnull=True,
        assigned_to__is_active=True,
        lead__deleted_at__isnull=True,
    ).select_related("lead", "assigned_to")


def _assignee_may_see(follow_up):
    # A reminder quotes the lead's name, e-mail and phone: never to someone who may no longer see
    # it (reassigned away under "private" sharing). Decided in memory, no query.
    return policies.can_view(follow_up.assigned_to, follow_up.lead)


def _local_day_bounds(local_date):
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(local_date, time.min), tz)
    end = timezone.make_aware(datetime.combine(local_date + timedelta(days=1), time.min), tz)
    return start, end


def _item(follow_up):
    return {
        "title": follow_up.title,
        "kind": follow_up.get_kind_display(),
        "lead": follow_up.lead,
        "due_at": follow_up.due_at,
        "url": absolute_url(follow_up.lead.get_absolute_url()),
    }


def reminder_key(follow_up):
    # The due time is part of the key: a rescheduled follow-up is reminded again, a rerun is not.
    return f"reminder:{follow_up.pk}:{follow_up.due_at:%Y%m%dT%H%M}"


def digest_key(user_id, local_date):
    return f"digest:{user_id}:{local_date.isoformat()}"


def send_digests(*, now, dry_run=False):
    """E-mail each user their overdue and today's open follow-ups, once per local date.

    Nothing before REMINDER_DIGEST_HOUR (local time), and nothing for someone with nothing due.
    """
    local_now = timezone.localtime(now)
    if local_now.hour < settings.REMINDER_DIGEST_HOUR:
        return []
    local_date = local_now.date()
    _, end_of_today = _local_day_bounds(local_date)
    by_user = {}
    for follow_up in (
        _open_follow_ups().filter(due_at__lt=end_of_today).order_by("assigned_to_id", "due_at", "id")
    ):
        if not _assignee_may_see(follow_up):
            continue
        by_user.setdefault(follow_up.assigned_to_id, []).append(follow_up)
    sent = []
    for follow_ups in by_user.values():
        user = follow_ups[0].assigned_to
        key = digest_key(user.pk, local_date)
        overdue = [_item(f) for f in follow_ups if f.due_at < now]
        today = [_item(f) for f in follow_ups if f.due_at >= now]
        summary = f"{len(overdue)} overdue, {len(today)} due today"
        if dry_run:
            if not OutgoingEmail.objects.filter(key=key).exists():
                sent.append(Sent("digest", user.email, summary))
            continue
        context = {
            "recipient": user,
            "date": local_date,
            "overdue": overdue,
            "today": today,
            "board_url": absolute_url(reverse("leads:board")),
        }
        if queue_email(key=key, to=user.email, template="follow_up_digest", context=context) is not None:
            sent.append(Sent("digest", user.email, summary))
    return sent


def send_due_reminders(*, now, dry_run=False):
    """E-mail and notify the assignee of each follow-up due within REMINDER_MINUTES_BEFORE minutes, once.

    The conditional UPDATE on reminder_sent_at is the claim: of two runs at once, only one
    updates the row, and only that one queues the messages, in the same transaction.
    """
    due_by = now + timedelta(minutes=settings.REMINDER_MINUTES_BEFORE)
    candidates = _open_follow_ups().filter(
        reminder_sent_at__isnull=True, due_at__lte=due_by, due_at__gt=now - LATE_REMINDER_WINDOW
    )
    sent = []
    for follow_up in candidates.order_by("due_at", "id"):
        if not _assignee_may_see(follow_up):
            continue
        user = follow_up.assigned_to
        local_due = timezone.localtime(follow_up.due_at)
        summary = f"{follow_up.title} on {follow_up.lead} (due {local_due:%Y-%m-%d %H:%M})"
        if dry_run:
            sent.append(Sent("reminder", user.email, summary))
            continue
        with transaction.atomic():
            claimed = FollowUp.objects.filter(pk=follow_up.pk, reminder_sent_at__isnull=True).update(
                reminder_sent_at=now
            )
            if not claimed:
                continue
            _queue_reminder(follow_up, now=now)
        sent.append(Sent("reminder", user.email, summary))
    return sent


def _queue_reminder(follow_up, *, now):
    user, lead = follow_up.assigned_to, follow_up.lead
    is_late = follow_up.due_at < now
    context = {
        "recipient": user,
        "title": follow_up.title,
        "kind": follow_up.get_kind_display(),
        "notes": follow_up.notes,
        "lead": lead,
        "due_at": follow_up.due_at,
        "is_late": is_late,
        "lead_url": absolute_url(lead.get_absolute_url()),
    }
    queue_email(
        key=reminder_key(follow_up),
        to=user.email,
        template="follow_up_reminder",
        context=context,
        lead=lead,
    )
    when = f"{timezone.localtime(follow_up.due_at):%H:%M}"
    notify(
        user=user,
        kind=Notification.Kind.FOLLOW_UP_DUE,
        message=f"{follow_up.title} on {lead} {'was' if is_late else 'is'} due at {when}",
        lead=lead,
        url=lead.get_absolute_url(),
        key=reminder_key(follow_up),
    )
