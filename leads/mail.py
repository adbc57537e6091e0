"""The e-mail outbox: queue_email renders a message once per key and hands it to the delivery job."""

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from leads.models import OutgoingEmail

logger = logging.getLogger(__name__)


def absolute_url(path):
    """A link for an e-mail: there is no request to take the host from, so SITE_URL gives it."""
    if path.startswith(("http://", "https://")):
        return path
    return f"{settings.SITE_URL}/{path.lstrip('/')}"


def render_email(template, context):
    """(subject, text, html) from templates/emails/<template>_subject.txt, .txt and .html."""
    context = {"site_url": settings.SITE_URL, **context}
    # A subject is one line however the template wraps it; headers cannot carry newlines.
    subject = " ".join(render_to_string(f"emails/{template}_subject.txt", context).split())
    body_text = render_to_string(f"emails/{template}.txt", context).strip() + "\n"
    body_html = render_to_string(f"emails/{template}.html", context)
    return subject[: OutgoingEmail._meta.get_field("subject").max_length], body_text, body_html


def queue_email(*, key, to, template, context, lead=None):
    """Write the message for `key` to the outbox and send it after commit; None if already queued.

    The key names the event and the recipient ("lead.captured:12:user:3"), so a redelivered
    event or a retried job never sends the same message twice: the unique constraint decides,
    even when two processes queue the same key at once. Empty addresses are skipped.
    """
    to = (to or "").strip()
    if not to:
        return None
    if OutgoingEmail.objects.filter(key=key).exists():
        return None
    subject, body_text, body_html = render_email(template, context)
    try:
        # A savepoint: losing the race for the key must not break the caller's transaction.
        with transaction.atomic():
            email = OutgoingEmail.objects.create(
                key=key, to=to, subject=subject, body_text=body_text, body_html=body_html, lead=lead
            )
    except IntegrityError:
        # Another process queued this key between our check and our insert.
        if OutgoingEmail.objects.filter(key=key).exists():
            return None
        raise
    email_id = email.pk
    transaction.on_commit(lambda: enqueue_delivery(email_id))
    return email


def enqueue_delivery(email_id, *, run_after=None):
    """Hand the message to the delivery job; never raises, since the outbox row is already safe.

    With run_after, only a backend that can defer is asked (True if it was); otherwise the row
    waits, pending, for `manage.py send_pending_emails`.
    """
    from leads.tasks import deliver_email

    try:
        job = deliver_email
        if run_after is not None:
            if not job.get_backend().supports_defer:
                return False
            job = job.using(run_after=run_after)
        job.enqueue(email_id)
        return True
    except Exception:
        logger.exception("Could not enqueue e-mail %s; send_pending_emails will pick it up", email_id)
        return False


def retry_emails(queryset):
    """Send the pending and failed messages among `queryset` now; returns the ids it took.

    A failed message starts a fresh round of attempts; a pending one just stops waiting. Sent
    messages, and those a worker is sending right now, are left alone.
    """
    retryable = queryset.filter(status__in=[OutgoingEmail.Status.PENDING, OutgoingEmail.Status.FAILED])
    ids = list(retryable.values_list("pk", flat=True))
    now = timezone.now()
    with transaction.atomic():
        OutgoingEmail.objects.filter(pk__in=ids, status=OutgoingEmail.Status.FAILED).update(
            status=OutgoingEmail.Status.PENDING, attempts=0, next_attempt_at=now
        )
        waiting = OutgoingEmail.objects.filter(pk__in=ids, status=OutgoingEmail.Status.PENDING)
        waiting.update(next_attempt_at=now)
        for email_id in ids:
            transaction.on_commit(lambda email_id=email_id: enqueue_delivery(email_id))
    return ids
