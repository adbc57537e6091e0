"""In-app notifications: writing them once per event, reading the inbox, and the lead_changed receivers."""

import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from leads import policies
from leads.models import Activity, FollowUp, Lead, Notification

logger = logging.getLogger("leadboard.notifications")

MESSAGE_MAX = Notification._meta.get_field("message").max_length
URL_MAX = Notification._meta.get_field("url").max_length
KEY_MAX = Notification._meta.get_field("dedupe_key").max_length


# --- writes ---------------------------------------------------------------------------------


def notify(*, user, kind, message, lead=None, url="", key):
    """Give `user` a notice once per `key`; None when it exists already or the user cannot receive it.

    Events may be delivered more than once (retries, several workers); the unique
    (user, dedupe_key) constraint decides, inside a savepoint so the caller's transaction survives
    the loser's IntegrityError.
    """
    if user is None or not user.is_active:
        return None
    if len(message) > MESSAGE_MAX:
        message = message[: MESSAGE_MAX - 1] + "…"
    try:
        with transaction.atomic():
            return Notification.objects.create(
                user=user, kind=kind, lead=lead, message=message, url=url[:URL_MAX], dedupe_key=key[:KEY_MAX]
            )
    except IntegrityError:
        return None


def mark_read(*, user, notification):
    """Mark one of the user's own notices read; reading it again keeps the first time."""
    if not policies.can_read_notification(user, notification):
        raise PermissionDenied("This notification is not yours.")
    now = timezone.now()
    if Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now):
        notification.read_at = now
    return notification


def mark_all_read(*, user):
    """Mark every unread notice of the user read; returns how many changed."""
    if not policies.can_read_notifications(user):
        raise PermissionDenied("Log in to read notifications.")
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())


# --- reads ----------------------------------------------------------------------------------


def unread_count(user):
    """One COUNT on the partial index of unread notices."""
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def inbox(user):
    """The user's notices, newest first."""
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


# --- receivers of leads.events.lead_changed ---------------------------------------------------


def _active_user(pk):
    if pk is None:
        return None
    return get_user_model().objects.filter(pk=pk, is_active=True).first()


def _managers():
    return list(get_user_model().objects.filter(is_active=True, role__in=["admin", "manager"]))


def _owner_or_managers(lead):
    """Who hears about a lead nobody may have seen yet: its owner, or the managers for the pool."""
    if lead.owner_id is not None and lead.owner.is_active:
        return [lead.owner]
    return _managers()


def _on_reassigned(lead, actor, payload):
    to_owner = payload.get("to_owner")
    if to_owner is None or to_owner == getattr(actor, "pk", None):
        return
    # The owner_changed row the event names tells this reassignment from the next one.
    activity_id = payload.get("activity_id")
    by = f" by {actor}" if actor else ""
    notify(
        user=_active_user(to_owner),
        kind=Notification.Kind.LEAD_ASSIGNED,
        message=f"Lead {lead} was assigned to you{by}",
        lead=lead,
        url=lead.get_absolute_url(),
        key=f"assigned:{lead.pk}:{activity_id or lead.version}",
    )


def _on_captured(lead, actor, payload):
    for user in _owner_or_managers(lead):
        notify(
            user=user,
            kind=Notification.Kind.LEAD_CAPTURED,
            message=f"New lead from the website: {lead}",
            lead=lead,
            url=lead.get_absolute_url(),
            key=f"captured:{lead.pk}",
        )


def _on_resubmitted(lead, actor, payload):
    for user in _owner_or_managers(lead):
        notify(
            user=user,
            kind=Notification.Kind.LEAD_RESUBMITTED,
            message=f"{lead} sent the website form again",
            lead=lead,
            url=lead.get_absolute_url(),
            key=f"resubmitted:{payload.get('activity_id') or lead.version}",
        )


def _on_activity_logged(lead, actor, payload):
    owner = lead.owner
    if owner is None or actor is None or owner.pk == actor.pk:
        return
    try:
        what = Activity.Kind(payload.get("kind")).label.lower()
    except ValueError:
        what = "an activity"
    notify(
        user=owner,
        kind=Notification.Kind.ACTIVITY_LOGGED,
        message=f"{actor} logged a {what} on {lead}",
        lead=lead,
        url=lead.get_absolute_url(),
        key=f"activity:{payload.get('activity_id')}",
    )


def _on_follow_up_scheduled(lead, actor, payload):
    assigned_to = payload.get("assigned_to")
    if assigned_to is None or assigned_to == getattr(actor, "pk", None):
        return
    follow_up = FollowUp.objects.filter(pk=payload.get("follow_up_id")).first()
    what = f": {follow_up.title}" if follow_up else ""
    who = str(actor) if actor else "Someone"
    notify(
        user=_active_user(assigned_to),
        kind=Notification.Kind.FOLLOW_UP_ASSIGNED,
        message=f"{who} scheduled a follow-up for you on {lead}{what}",
        lead=lead,
        url=lead.get_absolute_url(),
        key=f"follow_up.scheduled:{payload.get('follow_up_id')}",
    )


HANDLERS = {
    "lead.reassigned": _on_reassigned,
    "lead.captured": _on_captured,
    "lead.resubmitted": _on_resubmitted,
    "activity.logged": _on_activity_logged,
    "follow_up.scheduled": _on_follow_up_scheduled,
}


def on_lead_changed(sender, *, event, lead_id, actor_id, payload, **kwargs):
    """Turn a committed lead change into notices; never raises into the request that made it."""
    handler = HANDLERS.get(event)
    if handler is None:
        return
    try:
        lead = Lead.objects.select_related("owner").filter(pk=lead_id, deleted_at__isnull=True).first()
        if lead is None:
            return
        actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
        handler(lead, actor, payload or {})
    except Exception:
        logger.exception("Could not write notifications for %s on lead %s", event, lead_id)
