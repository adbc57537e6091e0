"""Background jobs (the Django tasks API): delivering the e-mail outbox, with retries and back-off."""

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q
from django.utils import timezone
from django_tasks import task

from leads.models import OutgoingEmail

logger = logging.getLogger(__name__)

# A message still "sending" after this long belongs to a worker that died mid-send: it is due again.
STUCK_SENDING_AFTER = timedelta(minutes=10)
MAX_ERROR_LENGTH = 2000


def due_emails_q(now):
    """Messages a sender may claim at `now`: pending and due, or abandoned while sending."""
    pending = Q(status=OutgoingEmail.Status.PENDING, next_attempt_at__lte=now)
    stuck = Q(status=OutgoingEmail.Status.SENDING, next_attempt_at__lte=now - STUCK_SENDING_AFTER)
    return pending | stuck


def retry_delay(failed_attempts):
    """How long to wait after the n-th failed attempt: base, 4 × base, 16 × base, ..."""
    return timedelta(seconds=settings.EMAIL_RETRY_BASE_SECONDS * 4 ** (failed_attempts - 1))


def _claim(email_id, now):
    """Take the message for this worker alone, or None when it is not due or another worker has it.

    One conditional UPDATE decides: of two workers claiming at once, the database lets one
    match the row; the other matches nothing. While sending, next_attempt_at holds the claim
    time, so a claim abandoned by a dead worker can be taken again after STUCK_SENDING_AFTER.
    """
    claimed = OutgoingEmail.objects.filter(due_emails_q(now), pk=email_id).update(
        status=OutgoingEmail.Status.SENDING, next_attempt_at=now, attempts=F("attempts") + 1
    )
    return OutgoingEmail.objects.filter(pk=email_id).first() if claimed else None


def _send(email):
    message = EmailMultiAlternatives(
        subject=email.subject, body=email.body_text, from_email=settings.DEFAULT_FROM_EMAIL, to=[email.to]
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    message.send()


def _finish(email, **fields):
    # Only our own claim is finished: if it was taken over as stuck meanwhile, the new owner decides.
    OutgoingEmail.objects.filter(
        pk=email.pk, status=OutgoingEmail.Status.SENDING, attempts=email.attempts
    ).update(**fields)


def deliver_one(email_id):
    """Send one message if it is due; returns "sent", "retry", "failed" or "skipped" (not due / taken)."""
    now = timezone.now()
    email = _claim(email_id, now)
    if email is None:
        return "skipped"
    if email.attempts > settings.EMAIL_MAX_ATTEMPTS:
        # Its last attempt was cut off mid-send; we cannot know whether it went out, so stop here.
        _finish(email, status=OutgoingEmail.Status.FAILED)
        logger.error("E-mail %s (%s) given up after %s attempts", email.pk, email.key, email.attempts - 1)
        return "failed"
    try:
        _send(email)
    except Exception as exc:
        return _record_failure(email, exc)
    _finish(email, status=OutgoingEmail.Status.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def _record_failure(email, exc):
    from leads.mail import enqueue_delivery

    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
    if email.attempts >= settings.EMAIL_MAX_ATTEMPTS:
        _finish(email, status=OutgoingEmail.Status.FAILED, last_error=error)
        logger.error(
            "E-mail %s to %s failed for good after %s attempts: %s", email.pk, email.to, email.attempts, error
        )
        return "failed"
    next_attempt_at = timezone.now() + retry_delay(email.attempts)
    _finish(email, status=OutgoingEmail.Status.PENDING, last_error=error, next_attempt_at=next_attempt_at)
    logger.warning(
        "E-mail %s to %s failed (attempt %s of %s), retrying at %s: %s",
        email.pk, email.to, email.attempts, settings.EMAIL_MAX_ATTEMPTS, next_attempt_at.isoformat(), error,
    )  # fmt: skip
    # A backend that cannot defer (the in-process default) leaves it to send_pending_emails.
    enqueue_delivery(email.pk, run_after=next_attempt_at)
    return "retry"


@task()
def deliver_email(email_id):
    """The job queue_email enqueues. Never raises: a broken mail server must not fail anyone's request."""
    try:
        return deliver_one(email_id)
    except Exception:
        logger.exception("Delivering e-mail %s failed unexpectedly; send_pending_emails retries it", email_id)
        return "error"


def deliver_due_emails(*, limit=None, now=None):
    """Send every message due now (pending, or stuck while sending); a Counter of the outcomes.

    Safe to run on several machines at once: each message is claimed before it is sent.
    """
    now = now or timezone.now()
    due = (
        OutgoingEmail.objects.filter(due_emails_q(now))
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)
    )
    outcomes = Counter()
    for email_id in list(due[:limit] if limit else due):
        try:
            outcomes[deliver_one(email_id)] += 1
        except Exception:
            logger.exception("Delivering e-mail %s failed unexpectedly", email_id)
            outcomes["error"] += 1
    return outcomes


@task()
def run_import_task(job_id):
    """The job queue_import enqueues (import engine): imports the CSV batch by batch, resumable."""
    from leads.imports import run_import

    job = run_import(job_id)
    return job.status
