"""Every write to follow-ups: schedule, reschedule, complete, cancel; each checked, recorded, announced."""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from leads import policies
from leads.events import announce
from leads.models import Activity, FollowUp
from leads.services import _locked, _record

MAX_DURATION_MINUTES = 24 * 60
_UNSET = object()


DUE_WINDOW_PAST = timedelta(days=5 * 365)
DUE_WINDOW_FUTURE = timedelta(days=10 * 365)


def _clean_title(title, errors):
    title = (title or "").strip()
    if not title:
        errors.setdefault("title", []).append("Say what the follow-up is for.")
    elif len(title) > FollowUp._meta.get_field("title").max_length:
        errors.setdefault("title", []).append("Keep the title under 200 characters.")
    return title


def _check_due(due_at, errors):
    if due_at is None:
        errors.setdefault("due_at", []).append("Choose when the follow-up is due.")
    elif timezone.is_naive(due_at):
        errors.setdefault("due_at", []).append("Give the due time with its time zone.")
    else:
        # Bounded: a date near year 9999 in a zone west of UTC is stored as year 10000, which
        # the database driver cannot read back, and every page showing the lead would fail.
        now = timezone.now()
        if not now - DUE_WINDOW_PAST <= due_at <= now + DUE_WINDOW_FUTURE:
            errors.setdefault("due_at", []).append(
                "Choose a due time within the next ten years (or the last five, to record a past one)."
            )


def _check_assignee(assignee, lead, errors):
    """The assignee must be an active person who can see the lead (else the task is unreachable)."""
    if assignee is None:
        errors.setdefault("assigned_to", []).append("Choose who does the follow-up.")
    elif not assignee.is_active:
        errors.setdefault("assigned_to", []).append(f"{assignee} is deactivated and cannot take follow-ups.")
    elif not policies.can_view(assignee, lead):
        errors.setdefault("assigned_to", []).append(f"{assignee} cannot see this lead.")


def _announce(event, follow_up, actor):
    announce(
        event,
        lead=follow_up.lead,
        actor=actor,
        follow_up_id=follow_up.pk,
        assigned_to=follow_up.assigned_to_id,
    )


def _locked_follow_up(follow_up):
    return (
        FollowUp.objects.select_for_update(of=("self",))
        .select_related("lead", "assigned_to")
        .get(pk=follow_up.pk)
    )


def _existing_for_key(key, *, lead, actor):
    """The follow-up already made with this key by this person on this lead, or a refusal."""
    existing = FollowUp.objects.select_related("lead", "assigned_to").filter(idempotency_key=key).first()
    if existing is None:
        return None
    if existing.created_by_id != getattr(actor, "pk", None) or existing.lead_id != lead.pk:
        # Never hand someone else's follow-up back because they sent the same key.
        raise ValidationError(
            {"idempotency_key": ["This key was already used for another follow-up; send a new key."]}
        )
    existing.just_created = False
    return existing


def schedule_follow_up(
    *, lead, actor, kind=FollowUp.Kind.CALL, title, due_at, assigned_to=None, notes="", idempotency_key=None
):
    """Schedule a call, meeting, e-mail or to-do on a lead; `assigned_to` defaults to the actor.

    With an idempotency key already used by this actor on this lead, returns that follow-up
    and writes nothing (`just_created` is False on it); the unique constraint settles races.
    """
    assigned_to = assigned_to or actor
    key = (idempotency_key or "").strip() or None
    if key is not None:
        if len(key) > 255 or "\x00" in key:
            raise ValidationError(
                {"idempotency_key": ["Send a key of 1 to 255 characters, none of them NUL."]}
            )
        existing = _existing_for_key(key, lead=lead, actor=actor)
        if existing is not None:
            return existing
    if not policies.can_edit(actor, lead):
        raise PermissionDenied("You cannot schedule follow-ups on this lead.")
    if not policies.can_schedule_for(actor, lead, assigned_to):
        raise PermissionDenied("Only managers can schedule follow-ups for someone else.")
    errors = {}
    title = _clean_title(title, errors)
    _check_due(due_at, errors)
    _check_assignee(assigned_to, lead, errors)
    if kind not in FollowUp.Kind.values:
        errors.setdefault("kind", []).append(f"Choose one of: {', '.join(FollowUp.Kind.values)}.")
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        current = _locked(lead)
        if not policies.can_schedule_for(actor, current, assigned_to):
            raise PermissionDenied("You cannot schedule follow-ups on this lead.")
        follow_up = FollowUp(
            lead=current,
            kind=kind,
            title=title,
            assigned_to=assigned_to,
            due_at=due_at,
            notes=(notes or "").strip(),
            idempotency_key=key,
            created_by=actor,
        )
        try:
            with transaction.atomic():
                follow_up.save()
        except IntegrityError:
            # A concurrent request with the same key won the race: answer with its follow-up.
            existing = _existing_for_key(key, lead=lead, actor=actor) if key else None
            if existing is None:
                raise
            return existing
        _record(
            lead=current,
            actor=actor,
            kind=Activity.Kind.FOLLOW_UP_SCHEDULED,
            body=follow_up.notes,
            data=_describe(follow_up),
        )
        _announce("follow_up.scheduled", follow_up, actor)
    follow_up.just_created = True
    return follow_up


def _describe(follow_up):
    return {
        "follow_up_id": follow_up.pk,
        "title": follow_up.title,
        "follow_up_kind": follow_up.kind,
        "due_at": follow_up.due_at.isoformat(),
        "assigned_to": str(follow_up.assigned_to),
        "assigned_to_id": follow_up.assigned_to_id,
    }


def _require_open(follow_up, verb):
    if follow_up.done_at is not None:
        raise ValidationError({"follow_up": [f"This follow-up is already done; it cannot be {verb}."]})
    if follow_up.cancelled_at is not None:
        raise ValidationError({"follow_up": [f"This follow-up was cancelled; it cannot be {verb}."]})


def reschedule_follow_up(
    *, follow_up, actor, due_at=_UNSET, assigned_to=_UNSET, title=_UNSET, notes=_UNSET, kind=_UNSET
):
    """Move an open follow-up to another time, hand it to someone else, or reword it."""
    with transaction.atomic():
        current = _locked_follow_up(follow_up)
        if not policies.can_manage_follow_up(actor, current):
            raise PermissionDenied("You cannot change this follow-up.")
        _require_open(current, "changed")
        errors = {}
        before = {
            name: getattr(current, name) for name in ("due_at", "assigned_to", "title", "notes", "kind")
        }
        if due_at is not _UNSET:
            _check_due(due_at, errors)
            current.due_at = due_at
        if assigned_to is not _UNSET:
            if assigned_to is not None and assigned_to.pk != current.assigned_to_id:
                if not policies.can_schedule_for(actor, current.lead, assigned_to):
                    raise PermissionDenied("Only managers can give a follow-up to someone else.")
            _check_assignee(assigned_to, current.lead, errors)
            current.assigned_to = assigned_to
        if title is not _UNSET:
            current.title = _clean_title(title, errors)
        if notes is not _UNSET:
            current.notes = (notes or "").strip()
        if kind is not _UNSET:
            if kind not in FollowUp.Kind.values:
                errors.setdefault("kind", []).append(f"Choose one of: {', '.join(FollowUp.Kind.values)}.")
            current.kind = kind
        if errors:
            raise ValidationError(errors)
        changes = {
            name: {"from": _shown(old), "to": _shown(getattr(current, name))}
            for name, old in before.items()
            if getattr(current, name) != old
        }
        if not changes:
            return current
        if "due_at" in changes:
            # A new due time deserves its own reminder.
            current.reminder_sent_at = None
        current.save()
        _record(
            lead=current.lead,
            actor=actor,
            kind=Activity.Kind.FOLLOW_UP_SCHEDULED,
            data={**_describe(current), "rescheduled": True, "changes": changes},
        )
        _announce("follow_up.rescheduled", current, actor)
    return current


def _shown(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _clean_duration(duration_minutes, errors):
    if duration_minutes in (None, ""):
        return None
    try:
        duration = int(duration_minutes)
    except (TypeError, ValueError):
        duration = -1
    if not 0 <= duration <= MAX_DURATION_MINUTES:
        errors["duration_minutes"] = ["Enter the duration in minutes, between 0 and 1440."]
        return None
    return duration


def complete_follow_up(*, follow_up, actor, outcome, notes="", duration_minutes=None):
    """Mark a follow-up done with how it went; the lead's timeline gets a follow_up_done entry."""
    errors = {}
    if outcome not in FollowUp.Outcome.values:
        errors["outcome"] = ["Choose how it went."]
    duration = _clean_duration(duration_minutes, errors)
    notes = (notes or "").strip()
    with transaction.atomic():
        current = _locked_follow_up(follow_up)
        if not policies.can_manage_follow_up(actor, current):
            raise PermissionDenied("You cannot complete this follow-up.")
        _require_open(current, "completed")
        if errors:
            raise ValidationError(errors)
        now = timezone.now()
        current.done_at = now
        current.outcome = outcome
        current.duration_minutes = duration
        if notes:
            current.notes = notes
        current.save(update_fields=["done_at", "outcome", "duration_minutes", "notes", "updated_at"])
        _record(
            lead=current.lead,
            actor=actor,
            kind=Activity.Kind.FOLLOW_UP_DONE,
            body=notes,
            data={
                **_describe(current),
                "outcome": outcome,
                "duration_minutes": duration,
            },
            occurred_at=now,
        )
        _announce("follow_up.completed", current, actor)
    return current


def cancel_follow_up(*, follow_up, actor):
    """Call off an open follow-up; it stays on record as cancelled."""
    with transaction.atomic():
        current = _locked_follow_up(follow_up)
        if not policies.can_manage_follow_up(actor, current):
            raise PermissionDenied("You cannot cancel this follow-up.")
        _require_open(current, "cancelled")
        current.cancelled_at = timezone.now()
        current.save(update_fields=["cancelled_at", "updated_at"])
        _record(
            lead=current.lead,
            actor=actor,
            kind=Activity.Kind.FOLLOW_UP_CANCELLED,
            data=_describe(current),
            occurred_at=current.cancelled_at,
        )
        _announce("follow_up.cancelled", current, actor)
    return current
