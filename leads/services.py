"""Every write to leads and their timeline: permission, validation, one transaction, an activity, an event.

Each function takes keyword-only arguments including `actor` (None for the public form and
system jobs), checks leads.policies, validates, writes the Activity that records what
happened, bumps Lead.version when the lead itself changed, and announces the change after
commit. Views, serializers, admin actions and imports call these and nothing else.
"""

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from leads import policies
from leads.events import announce
from leads.exceptions import DuplicateLead, StaleLead
from leads.models import Activity, FollowUp, Lead, Source, Stage
from leads.normalization import normalize_email, normalize_phone, split_full_name

# Fields update_lead() may change; stage and owner have services of their own.
EDITABLE_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "title",
    "source",
    "value",
    "priority",
    "notes",
)
DEFAULT_SOURCE_NAME = "Manual"
_UNSET = object()


# --- helpers shared by the services ------------------------------------------------------


def _locked(lead):
    """The lead as it is in the database now, locked until the transaction ends."""
    joined = Lead.objects.select_for_update(of=("self",)).select_related("stage", "source", "owner")
    try:
        return joined.get(pk=lead.pk)
    except Lead.DoesNotExist:
        # After waiting for a concurrent writer, PostgreSQL re-checks the locked row against the
        # stage/source/owner rows it read before waiting: if that writer changed the stage or
        # owner, the join no longer matches and the lead seems gone. Lock the row alone, then
        # read it afresh; a lead that really does not exist still raises DoesNotExist.
        if not Lead.objects.select_for_update().filter(pk=lead.pk).exists():
            raise
        return Lead.objects.select_related("stage", "source", "owner").get(pk=lead.pk)


def _check_version(current, expected_version):
    if expected_version in (None, ""):
        return
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        raise ValidationError({"version": ["The version must be a whole number."]}) from None
    if expected != current.version:
        # Notes, calls and meetings do not change the lead, so they do not make a page stale.
        last = current.activities.exclude(kind__in=Activity.LOGGABLE_KINDS).select_related("actor").first()
        raise StaleLead(
            current=current,
            changed_by=last.actor if last else None,
            changed_at=last.occurred_at if last else current.updated_at,
        )


def _ensure_no_duplicate(*, email, phone, actor, exclude_pk=None):
    for field, value in (("email", email), ("phone", phone)):
        if not value:
            continue
        others = Lead.objects.live().filter(**{field: value})
        if exclude_pk is not None:
            others = others.exclude(pk=exclude_pk)
        existing = others.order_by("pk").first()
        if existing is not None:
            # Name the lead only to someone who may see it ("private" sharing hides others').
            visible = actor is not None and policies.can_view(actor, existing)
            raise DuplicateLead(field=field, existing=existing, visible=visible)


def _save_guarding_duplicates(lead, actor, **save_kwargs):
    """Save; if a concurrent writer took the e-mail or phone first, say which lead has it."""
    try:
        with transaction.atomic():
            lead.save(**save_kwargs)
    except IntegrityError:
        _ensure_no_duplicate(email=lead.email, phone=lead.phone, actor=actor, exclude_pk=lead.pk)
        raise


def _normalized_contact(values, errors):
    """Normalise name, e-mail, phone and value in `values` in place, collecting field errors."""
    for field, normalize in (("email", normalize_email), ("phone", normalize_phone)):
        if field in values:
            try:
                values[field] = normalize(values[field])
            except ValidationError as exc:
                errors.setdefault(field, []).extend(exc.messages)
    for field in ("first_name", "last_name", "company", "title", "notes"):
        if field in values:
            values[field] = (values[field] or "").strip()
    if "value" in values:
        try:
            values["value"] = Decimal(str(values["value"] if values["value"] not in (None, "") else 0))
            if not values["value"].is_finite():
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors.setdefault("value", []).append("Enter the expected value as a number.")
        else:
            if values["value"] < 0:
                errors.setdefault("value", []).append("The expected value cannot be negative.")


def _validate_lead(lead, errors):
    """Model-level checks (lengths, choices) plus the rules a lead must always satisfy."""
    if not lead.first_name and not lead.last_name:
        errors.setdefault("first_name", []).append("A lead needs a name.")
    elif not lead.first_name:
        # A lone surname still names someone; keep it as the first name.
        lead.first_name, lead.last_name = lead.last_name, ""
    if not lead.email and not lead.phone and "email" not in errors and "phone" not in errors:
        message = "Give at least an e-mail address or a phone number."
        errors.setdefault("email", []).append(message)
        errors.setdefault("phone", []).append(message)
    try:
        lead.full_clean(
            exclude=[*errors.keys(), "owner", "stage", "source", "created_by"],
            validate_unique=False,
            validate_constraints=False,
        )
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def _require_active_owner(owner):
    if owner is not None and not owner.is_active:
        raise ValidationError({"owner": [f"{owner} is deactivated and cannot own leads."]})


def _display(value):
    """A JSON-friendly form of a field value for the timeline's from/to record."""
    if value is None:
        return None
    if isinstance(value, (Source, Stage)):
        return value.name
    if isinstance(value, Decimal):
        return str(value)
    return value


def _record(*, lead, actor, kind, body="", data=None, occurred_at=None):
    return Activity.objects.create(
        lead=lead,
        actor=actor,
        kind=kind,
        body=body,
        data=data or {},
        occurred_at=occurred_at or timezone.now(),
    )


def _bump(lead, *fields):
    lead.version = F("version") + 1
    lead.save(update_fields=[*fields, "version", "updated_at"])
    lead.refresh_from_db(fields=["version", "updated_at"])


def default_stage():
    stage = Stage.objects.filter(archived=False, kind=Stage.Kind.OPEN).order_by("position", "id").first()
    if stage is None:
        raise ValidationError({"stage": ["There is no open stage to put new leads in."]})
    return stage


# --- leads -------------------------------------------------------------------------------


def create_lead(
    *,
    actor,
    first_name="",
    last_name="",
    name=None,
    email="",
    phone="",
    company="",
    title="",
    source=None,
    owner=_UNSET,
    stage=None,
    value=0,
    priority=Lead.Priority.NORMAL,
    notes="",
    lost_reason="",
):
    """Create a lead. `name` (a full name) may stand in for first_name/last_name.

    The owner defaults to the actor (a person adding a lead works it), or the unassigned
    pool when there is no actor.
    """
    if not policies.can_create(actor):
        raise PermissionDenied("You cannot create leads.")
    if owner is _UNSET:
        owner = actor
    if not policies.can_assign_on_create(actor, owner):
        raise PermissionDenied("Only managers can create leads for someone else.")
    if name is not None and not (first_name or last_name):
        first_name, last_name = split_full_name(name)

    values = dict(
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=phone,
        company=company,
        title=title,
        value=value,
        notes=notes,
    )
    errors = {}
    _normalized_contact(values, errors)
    try:
        _require_active_owner(owner)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    stage = stage or default_stage()
    if stage.archived:
        errors.setdefault("stage", []).append(f"The stage {stage} is archived.")
    if stage.is_lost and not (lost_reason or "").strip():
        errors.setdefault("lost_reason", []).append("Say why the lead was lost.")
    source = source or Source.objects.get_or_create(name=DEFAULT_SOURCE_NAME)[0]
    # Archiving a source stops people choosing it; a prospect's own form (actor None) must
    # still land, so the capture form keeps its source even when a manager archived it.
    if source.archived and actor is not None:
        errors.setdefault("source", []).append(f"The source {source} is archived; choose another.")

    now = timezone.now()
    lead = Lead(
        **values,
        source=source,
        owner=owner,
        stage=stage,
        priority=priority,
        lost_reason=(lost_reason or "").strip() if stage.is_lost else "",
        created_by=actor,
        created_at=now,
        stage_changed_at=now,
    )
    _validate_lead(lead, errors)

    with transaction.atomic():
        _ensure_no_duplicate(email=lead.email, phone=lead.phone, actor=actor)
        _save_guarding_duplicates(lead, actor)
        _record(
            lead=lead,
            actor=actor,
            kind=Activity.Kind.CREATED,
            data={
                "source": source.name,
                "stage": stage.name,
                "owner": str(owner) if owner else None,
                # Ids as well as names: manage.py check_integrity compares them with the lead, and
                # names change (a renamed stage, a user's new surname).
                "stage_id": stage.pk,
                "owner_id": owner.pk if owner else None,
            },
            occurred_at=now,
        )
        announce("lead.created", lead=lead, actor=actor)
    return lead


def update_lead(*, lead, actor, expected_version=None, **changes):
    """Change a lead's own fields; the activity records each field's old and new value."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"update_lead() cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        current = _locked(lead)
        if not policies.can_edit(actor, current):
            raise PermissionDenied("You cannot edit this lead.")
        _check_version(current, expected_version)

        errors = {}
        _normalized_contact(changes, errors)
        if "source" in changes and changes["source"] is None:
            errors.setdefault("source", []).append("Choose a source.")
        before = {field: getattr(current, field) for field in EDITABLE_FIELDS}
        for field, new in changes.items():
            if field not in errors:
                setattr(current, field, new)
        # Validation may itself change fields (a lone surname becomes the first name), so the
        # diff is taken afterwards: what is saved and recorded is what the lead now holds.
        _validate_lead(current, errors)
        diff = {
            field: {"from": _display(old), "to": _display(getattr(current, field))}
            for field, old in before.items()
            if getattr(current, field) != old
        }
        if not diff:
            return current
        _ensure_no_duplicate(email=current.email, phone=current.phone, actor=actor, exclude_pk=current.pk)
        current.version = F("version") + 1
        _save_guarding_duplicates(current, actor, update_fields=[*diff, "version", "updated_at"])
        current.refresh_from_db(fields=["version", "updated_at"])
        _record(lead=current, actor=actor, kind=Activity.Kind.UPDATED, data={"changes": diff})
        announce("lead.updated", lead=current, actor=actor, fields=sorted(diff))
    return current


def move_lead(*, lead, stage, actor, expected_version=None, lost_reason=""):
    """Move a lead to another stage; a lost stage needs a reason."""
    with transaction.atomic():
        current = _locked(lead)
        if not policies.can_edit(actor, current):
            raise PermissionDenied("You cannot move this lead.")
        _check_version(current, expected_version)
        if stage.pk == current.stage_id:
            raise ValidationError({"stage": [f"The lead is already in {stage}."]})
        if stage.archived:
            raise ValidationError({"stage": [f"The stage {stage} is archived."]})
        lost_reason = (lost_reason or "").strip()
        if stage.is_lost and not lost_reason:
            raise ValidationError(
                {"lost_reason": [f"Say why the lead was lost before moving it to {stage}."]}
            )
        if len(lost_reason) > Lead._meta.get_field("lost_reason").max_length:
            raise ValidationError({"lost_reason": ["Keep the reason under 500 characters."]})

        previous = current.stage
        now = timezone.now()
        current.stage = stage
        current.stage_changed_at = now
        current.lost_reason = lost_reason if stage.is_lost else ""
        _bump(current, "stage", "stage_changed_at", "lost_reason")
        data = {
            "from": previous.name,
            "to": stage.name,
            "from_id": previous.pk,
            "to_id": stage.pk,
            # How long the lead sat in the stage it left, for time-in-stage reports.
            "seconds_in_previous": int((now - lead_stage_entered(current, previous, now)).total_seconds()),
        }
        if lost_reason and stage.is_lost:
            data["lost_reason"] = lost_reason
        _record(lead=current, actor=actor, kind=Activity.Kind.STAGE_CHANGED, data=data, occurred_at=now)
        announce("lead.moved", lead=current, actor=actor, from_stage=previous.pk, to_stage=stage.pk)
    return current


def lead_stage_entered(lead, stage, now):
    """When the lead entered `stage`: the time of the move into it, or its creation."""
    moved_in = (
        lead.activities.filter(kind=Activity.Kind.STAGE_CHANGED, data__to_id=stage.pk)
        .order_by("-occurred_at", "-id")
        .values_list("occurred_at", flat=True)
        .first()
    )
    return moved_in or lead.created_at or now


def reassign_lead(*, lead, owner, actor, expected_version=None):
    """Give a lead to another user, or to the unassigned pool (owner=None). Managers only."""
    with transaction.atomic():
        current = _locked(lead)
        if not policies.can_reassign(actor, current):
            raise PermissionDenied("Only managers and admins can reassign leads.")
        _check_version(current, expected_version)
        _require_active_owner(owner)
        if (owner.pk if owner else None) == current.owner_id:
            where = f"with {owner}" if owner else "unassigned"
            raise ValidationError({"owner": [f"The lead is already {where}."]})
        return _change_owner(current, owner=owner, actor=actor, claimed=False)


def claim_lead(*, lead, actor, expected_version=None):
    """Take an unassigned lead for yourself."""
    with transaction.atomic():
        current = _locked(lead)
        if not policies.can_view(actor, current):
            raise PermissionDenied("You cannot see this lead.")
        if current.owner_id is not None:
            raise ValidationError({"owner": [f"{current.owner} already owns this lead."]})
        if not policies.can_claim(actor, current):
            raise PermissionDenied("You cannot claim this lead.")
        _check_version(current, expected_version)
        return _change_owner(current, owner=actor, actor=actor, claimed=True)


def _change_owner(current, *, owner, actor, claimed):
    previous = current.owner
    current.owner = owner
    _bump(current, "owner")
    record_owner_change(current, previous=previous, actor=actor, claimed=claimed)
    return current


def record_owner_change(lead, *, previous, actor, claimed=False):
    """Everything that follows a new owner, once lead.owner is saved: follow-ups, timeline, event.

    Every service that changes an owner calls this (reassign, claim, merge), so each change is
    on the timeline and reaches the new owner's bell, inbox and board the same way.
    """
    owner = lead.owner
    data = {
        "from": str(previous) if previous else None,
        "to": str(owner) if owner else None,
        "from_id": previous.pk if previous else None,
        "to_id": owner.pk if owner else None,
        "claimed": claimed,
    }
    if owner is not None and previous is not None:
        # The previous owner's open calls on this lead are the new owner's to make: left behind,
        # they would remind someone who (under "private" sharing) may no longer see the lead.
        handed_over = FollowUp.objects.filter(
            lead=lead, assigned_to=previous, done_at__isnull=True, cancelled_at__isnull=True
        ).update(assigned_to=owner, updated_at=timezone.now())
        if handed_over:
            data["follow_ups_handed_over"] = handed_over
    activity = _record(lead=lead, actor=actor, kind=Activity.Kind.OWNER_CHANGED, data=data)
    announce(
        "lead.reassigned",
        lead=lead,
        actor=actor,
        from_owner=previous.pk if previous else None,
        to_owner=owner.pk if owner else None,
        activity_id=activity.pk,
    )


def delete_lead(*, lead, actor, reason=""):
    """Soft-delete: the lead leaves every list but nothing is lost; admin can restore it."""
    with transaction.atomic():
        current = _locked(lead)
        if not policies.can_delete(actor, current):
            raise PermissionDenied("Only managers and admins can delete leads.")
        if current.is_deleted:
            raise ValidationError({"lead": ["This lead is already deleted."]})
        current.deleted_at = timezone.now()
        _bump(current, "deleted_at")
        _record(lead=current, actor=actor, kind=Activity.Kind.DELETED, body=(reason or "").strip())
        announce("lead.deleted", lead=current, actor=actor)
    return current


def restore_lead(*, lead, actor):
    """Bring a soft-deleted lead back, unless a live lead has taken its e-mail or phone since."""
    with transaction.atomic():
        current = _locked(lead)
        if not policies.can_restore(actor, current):
            raise PermissionDenied("Only managers and admins can restore leads.")
        if not current.is_deleted:
            raise ValidationError({"lead": ["This lead is not deleted."]})
        if current.merged_into_id is not None:
            # Its history and files live on in the survivor; only undoing the merge gives them back.
            raise ValidationError(
                {"lead": [f"This lead was merged into lead #{current.merged_into_id}; undo the merge there."]}
            )
        _ensure_no_duplicate(email=current.email, phone=current.phone, actor=actor, exclude_pk=current.pk)
        current.deleted_at = None
        _bump(current, "deleted_at")
        _record(lead=current, actor=actor, kind=Activity.Kind.RESTORED)
        announce("lead.restored", lead=current, actor=actor)
    return current


def log_activity(*, lead, actor, kind, body="", outcome="", duration_minutes=None, occurred_at=None):
    """Log a note, call or meeting on the lead's timeline."""
    if kind not in Activity.LOGGABLE_KINDS:
        raise ValidationError({"kind": [f"Only {', '.join(Activity.LOGGABLE_KINDS)} can be logged by hand."]})
    if not policies.can_edit(actor, lead):
        raise PermissionDenied("You cannot log activities on this lead.")
    body = (body or "").strip()
    errors = {}
    data = {}
    if kind == Activity.Kind.NOTE and not body:
        errors["body"] = ["Write something in the note."]
    if kind == Activity.Kind.CALL:
        if outcome not in Activity.CallOutcome.values:
            errors["outcome"] = ["Choose how the call went."]
        else:
            data["outcome"] = outcome
    if duration_minutes not in (None, ""):
        try:
            duration = int(duration_minutes)
        except (TypeError, ValueError):
            duration = -1
        if not 0 <= duration <= 24 * 60:
            errors["duration_minutes"] = ["Enter the duration in minutes, between 0 and 1440."]
        else:
            data["duration_minutes"] = duration
    if occurred_at is not None and occurred_at > timezone.now() + timedelta(minutes=5):
        errors["occurred_at"] = ["An activity cannot happen in the future; schedule a follow-up instead."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        # Judge the lead as it is now, not as the caller last read it (deleted or reassigned since?).
        current = _locked(lead)
        if not policies.can_edit(actor, current):
            raise PermissionDenied("You cannot log activities on this lead.")
        activity = _record(
            lead=current, actor=actor, kind=kind, body=body, data=data, occurred_at=occurred_at
        )
        announce("activity.logged", lead=current, actor=actor, activity_id=activity.pk, kind=kind)
    return activity


# --- stages ---------------------------------------------------------------------------------


def change_lead(*, lead, actor, expected_version=None, stage=None, lost_reason="", owner=_UNSET, **changes):
    """Edit fields, stage and owner together (an API PUT/PATCH, an admin form): all or nothing.

    Each part is recorded by its own service (updated, stage_changed, owner_changed), so
    the timeline reads the same whichever door the change came through.
    """
    with transaction.atomic():
        current = _locked(lead)
        if not (policies.can_edit(actor, current) or policies.can_reassign(actor, current)):
            raise PermissionDenied("You cannot edit this lead.")
        _check_version(current, expected_version)
        if changes:
            current = update_lead(lead=current, actor=actor, **changes)
        if stage is not None and stage.pk != current.stage_id:
            current = move_lead(lead=current, stage=stage, actor=actor, lost_reason=lost_reason)
        elif (lost_reason or "").strip() not in ("", current.lost_reason):
            # Never drop input silently: a reason is recorded by the move that loses the lead.
            raise ValidationError({"lost_reason": ["A lost reason goes with a move to a lost stage."]})
        if owner is not _UNSET and (owner.pk if owner else None) != current.owner_id:
            current = reassign_lead(lead=current, owner=owner, actor=actor)
    return current


# --- stages and sources (managers and admins) ---------------------------------------------------


def _require_manager(actor):
    if not policies.is_manager(actor):
        raise PermissionDenied("Only managers and admins can change stages and sources.")


def _save_named(instance, fields):
    errors = {}
    try:
        instance.full_clean()
    except ValidationError as exc:
        errors = exc.message_dict
    # The API and the filters find stages and sources by name in any case, so "won" beside
    # "Won" would make that lookup ambiguous.
    same_name = type(instance).objects.filter(name__iexact=instance.name).exclude(pk=instance.pk)
    if "name" not in errors and same_name.exists():
        errors["name"] = [f"“{same_name.first().name}” already exists; names must differ by more than case."]
    if errors:
        raise ValidationError(errors)
    instance.save()
    return instance


def save_stage(*, actor, stage=None, **fields):
    """Create a stage (stage=None) or change one's name, position, kind or archived flag."""
    _require_manager(actor)
    stage = stage or Stage()
    for name, value in fields.items():
        setattr(stage, name, value)
    if stage.archived and stage.pk and not Stage.objects.filter(archived=False).exclude(pk=stage.pk).exists():
        raise ValidationError({"archived": ["The board needs at least one stage that is not archived."]})
    return _save_named(stage, fields)


def save_source(*, actor, source=None, **fields):
    _require_manager(actor)
    source = source or Source()
    for name, value in fields.items():
        setattr(source, name, value)
    return _save_named(source, fields)


def retire_stage(*, stage, actor):
    """Delete a stage nobody uses; archive one that leads still sit in. Returns what it did."""
    _require_manager(actor)
    if not stage.archived and not Stage.objects.filter(archived=False).exclude(pk=stage.pk).exists():
        raise ValidationError({"archived": ["The board needs at least one stage that is not archived."]})
    return _delete_or_archive(stage)


def retire_source(*, source, actor):
    """Delete a source nobody uses; archive one that leads came from. Returns what it did."""
    _require_manager(actor)
    return _delete_or_archive(source)


def _delete_or_archive(row):
    # Leads point at stages and sources with PROTECT: a used row is archived, so history keeps it.
    with transaction.atomic():
        if row.leads.exists():
            if not row.archived:
                row.archived = True
                row.save(update_fields=["archived"])
            return "archived"
        row.delete()
        return "deleted"
