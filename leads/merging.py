"""Possible duplicates of a lead, merging two leads into one, and undoing a merge within its window."""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import reduce
from operator import or_

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from leads import policies
from leads.events import announce
from leads.exceptions import DuplicateLead
from leads.models import Activity, Attachment, FollowUp, Lead, LeadMerge, Source
from leads.normalization import phone_digits
from leads.search import FoldedEndsWith, FoldedExact
from leads.selectors import visible_leads
from leads.services import (
    EDITABLE_FIELDS,
    _check_version,
    _display,
    _ensure_no_duplicate,
    _locked,
    _normalized_contact,
    _record,
    _require_active_owner,
    _save_guarding_duplicates,
    _validate_lead,
    record_owner_change,
)

# What a merge may take from the merged lead; the stage (and its history) stays the survivor's.
MERGE_FIELDS = (*EDITABLE_FIELDS, "owner")
KEEP_SURVIVOR, KEEP_MERGED = "survivor", "merged"
MAX_DUPLICATES = 10
# Phones match on their last digits: enough to name one number, few enough that a country or
# trunk prefix written one way on one lead and another way on the other does not matter.
PHONE_MATCH_DIGITS = 9


# --- possible duplicates -------------------------------------------------------------------------


@dataclass
class PossibleDuplicate:
    lead: Lead
    reasons: list = field(default_factory=list)


def _email_domain(email):
    return email.rpartition("@")[2].lower() if "@" in (email or "") else ""


def possible_duplicates(lead, *, user):
    """Live leads `user` may see that look like the same person as `lead`, each with why (one query)."""
    first, last, company = lead.first_name.strip(), lead.last_name.strip(), lead.company.strip()
    domain = _email_domain(lead.email)
    digits = phone_digits(lead.phone)[-PHONE_MATCH_DIGITS:]
    candidates = visible_leads(user).exclude(pk=lead.pk)
    rules = []
    # Folded lookups (leads/search.py) rather than iexact/iendswith: the trigram indexes serve
    # them, so this panel reads a few index entries instead of every lead on each lead page.
    if first and company:
        rules.append(
            Q(FoldedExact(F("first_name"), first))
            & Q(FoldedExact(F("last_name"), last))
            & Q(FoldedExact(F("company"), company))
        )
    if domain and last:
        rules.append(Q(FoldedEndsWith(F("email"), f"@{domain}")) & Q(FoldedExact(F("last_name"), last)))
    if len(digits) == PHONE_MATCH_DIGITS:
        # Every stored phone is E.164 (leads.normalization.normalize_phone), so its last digits
        # are its end: `phone LIKE '%digits'`, served by the phone's trigram index.
        rules.append(Q(phone__endswith=digits))
    if not rules:
        return []
    matches = candidates.filter(reduce(or_, rules)).order_by("-created_at", "-pk")[:MAX_DUPLICATES]
    return [PossibleDuplicate(lead=match, reasons=_why_alike(lead, match)) for match in matches]


def _why_alike(lead, other):
    def same(a, b):
        return a.strip().casefold() == b.strip().casefold()

    reasons = []
    if lead.company.strip() and all(
        same(getattr(lead, f), getattr(other, f)) for f in ("first_name", "last_name", "company")
    ):
        reasons.append("Same name and company")
    domain = _email_domain(lead.email)
    if (
        domain
        and lead.last_name.strip()
        and _email_domain(other.email) == domain
        and same(lead.last_name, other.last_name)
    ):
        reasons.append(f"Same e-mail domain ({domain}) and last name")
    digits = phone_digits(lead.phone)[-PHONE_MATCH_DIGITS:]
    if len(digits) == PHONE_MATCH_DIGITS and phone_digits(other.phone).endswith(digits):
        reasons.append("Same phone number, written differently")
    # The database's case folding differs from Python's at the edges; still say something true.
    return reasons or ["Similar name, e-mail or phone"]


def merges_into(lead):
    """Merges into `lead` that are not undone, newest first, with the merged lead and actor joined."""
    return LeadMerge.objects.filter(survivor=lead, undone_at__isnull=True).select_related("merged", "actor")


def undo_deadline(merge):
    return merge.created_at + timedelta(days=settings.MERGE_UNDO_DAYS)


def can_still_undo(merge, now=None):
    return merge.undone_at is None and (now or timezone.now()) <= undo_deadline(merge)


# --- merging -------------------------------------------------------------------------------------


def _stored(value):
    """A field value as LeadMerge.replaced keeps it: primary keys for rows, strings for decimals."""
    if hasattr(value, "pk"):
        return value.pk
    if isinstance(value, Decimal):
        return str(value)
    return value


def _shown(value):
    """A field value as the timeline shows it."""
    if isinstance(value, get_user_model()):
        return str(value)
    return _display(value)


def _checked_choices(field_choices):
    errors = {}
    for name, side in (field_choices or {}).items():
        if name not in MERGE_FIELDS:
            errors.setdefault(name, []).append(f"{name} cannot be chosen in a merge.")
        elif side not in (KEEP_SURVIVOR, KEEP_MERGED):
            errors.setdefault(name, []).append(
                f"Keep the surviving lead's value or the merged lead's, not {side!r}."
            )
    if errors:
        raise ValidationError(errors)
    return dict(field_choices or {})


def _lock_pair(first_pk, second_pk):
    # Always lock the lower id first, so two merges of the same pair cannot deadlock.
    locked = {pk: _locked(Lead(pk=pk)) for pk in sorted({first_pk, second_pk})}
    return locked[first_pk], locked[second_pk]


def _describe(changes):
    return "; ".join(
        f"{name.replace('_', ' ')}: “{_or_dash(change['from'])}” → “{_or_dash(change['to'])}”"
        for name, change in changes.items()
    )


def _or_dash(value):
    return "—" if value in (None, "") else value


def merge_leads(*, survivor, merged, actor, field_choices, expected_versions=None):
    """Merge `merged` into `survivor`: chosen fields, files and follow-ups go to the survivor.

    field_choices maps fields of MERGE_FIELDS to "survivor" or "merged" (unnamed fields keep
    the survivor's value). The merged lead is soft-deleted with merged_into set, and its
    append-only activities show on the survivor's timeline through that link. Returns the
    LeadMerge that undo_merge() takes. expected_versions ({lead pk: version}) refuses a merge
    decided on a page that is out of date.
    """
    if not policies.can_merge(actor):
        raise PermissionDenied("Only managers and admins can merge leads.")
    choices = _checked_choices(field_choices)
    if survivor.pk == merged.pk:
        raise ValidationError({"merged": ["A lead cannot be merged into itself."]})
    with transaction.atomic():
        survivor, merged = _lock_pair(survivor.pk, merged.pk)
        for lead in (survivor, merged):
            if lead.merged_into_id is not None:
                already = (
                    f"{lead.name} (lead #{lead.pk}) was already merged into lead #{lead.merged_into_id}."
                )
                raise ValidationError({"merged": [already]})
            if lead.is_deleted:
                raise ValidationError(
                    {"merged": [f"{lead.name} (lead #{lead.pk}) is deleted; restore it first."]}
                )
            _check_version(lead, (expected_versions or {}).get(lead.pk))

        errors = {}
        taken = {name: getattr(merged, name) for name, side in choices.items() if side == KEEP_MERGED}
        if "owner" in taken:
            try:
                _require_active_owner(taken["owner"])
            except ValidationError as exc:
                errors.update(exc.message_dict)
        before = {name: getattr(survivor, name) for name in MERGE_FIELDS}
        _normalized_contact(taken, errors)
        for name, value in taken.items():
            if name not in errors:
                setattr(survivor, name, value)
        # Validated as update_lead() validates, so a merge cannot leave a lead no form would accept.
        _validate_lead(survivor, errors)
        changed = [name for name in MERGE_FIELDS if getattr(survivor, name) != before[name]]
        replaced = {
            name: {"from": _stored(before[name]), "to": _stored(getattr(survivor, name))} for name in changed
        }
        shown = {
            name: {"from": _shown(before[name]), "to": _shown(getattr(survivor, name))} for name in changed
        }

        # The merged lead leaves the live leads first, so an e-mail or phone the survivor takes
        # from it does not collide with it under the unique-among-live-leads constraints.
        now = timezone.now()
        merged.deleted_at, merged.merged_into = now, survivor
        merged.version = F("version") + 1
        merged.save(update_fields=["deleted_at", "merged_into", "version", "updated_at"])
        merged.refresh_from_db(fields=["version", "updated_at"])

        _ensure_no_duplicate(email=survivor.email, phone=survivor.phone, actor=actor, exclude_pk=survivor.pk)
        survivor.version = F("version") + 1
        _save_guarding_duplicates(survivor, actor, update_fields=[*changed, "version", "updated_at"])
        survivor.refresh_from_db(fields=["version", "updated_at"])
        if "owner" in changed:
            # A new owner by merge is a reassignment like any other: timeline, follow-ups, inbox.
            record_owner_change(survivor, previous=before["owner"], actor=actor)

        moved = {
            "attachments": list(
                Attachment.objects.filter(lead=merged).order_by("pk").values_list("pk", flat=True)
            ),
            "follow_ups": list(
                FollowUp.objects.filter(lead=merged).order_by("pk").values_list("pk", flat=True)
            ),
        }
        Attachment.objects.filter(pk__in=moved["attachments"]).update(lead=survivor)
        FollowUp.objects.filter(pk__in=moved["follow_ups"]).update(lead=survivor)

        merge = LeadMerge.objects.create(
            survivor=survivor, merged=merged, actor=actor, created_at=now, replaced=replaced, moved=moved
        )
        body = f"Merged in {merged.name} (lead #{merged.pk}); its timeline shows here."
        if shown:
            body += f" Kept from it: {_describe(shown)}."
        if moved["attachments"] or moved["follow_ups"]:
            body += f" Moved {len(moved['attachments'])} file(s) and {len(moved['follow_ups'])} follow-up(s)."
        _record(
            lead=survivor,
            actor=actor,
            kind=Activity.Kind.MERGED,
            body=body,
            data={
                "merge_id": merge.pk,
                "merged_id": merged.pk,
                "merged_name": merged.name,
                "replaced": shown,
                "moved": moved,
            },
            occurred_at=now,
        )
        _record(
            lead=merged,
            actor=actor,
            kind=Activity.Kind.MERGED,
            body=f"Merged into {survivor.name} (lead #{survivor.pk}).",
            data={"merge_id": merge.pk, "merged_into": survivor.pk, "survivor_name": survivor.name},
            occurred_at=now,
        )
        announce("lead.merged", lead=survivor, actor=actor, merged_id=merged.pk, merge_id=merge.pk)
        announce("lead.deleted", lead=merged, actor=actor)
    return merge


# --- undoing a merge -----------------------------------------------------------------------------


def _from_stored(name, value):
    """The field value LeadMerge.replaced recorded, as the lead holds it."""
    if name == "value":
        return Decimal(value or 0)
    if name == "source":
        source = Source.objects.filter(pk=value).first()
        if source is None:
            raise ValidationError(
                {"source": ["The lead's former source no longer exists; the merge cannot be undone."]}
            )
        return source
    if name == "owner":
        return get_user_model().objects.filter(pk=value).first() if value is not None else None
    return value


def _refuse_taken(exc, whose):
    """A DuplicateLead, reworded to say it is what stops the undo."""
    raise ValidationError(
        {exc.field: [f"Cannot undo the merge: {' '.join(exc.messages)} ({whose})"]}
    ) from exc


def undo_merge(*, merge, actor):
    """Bring the merged lead back, with its files and follow-ups, and the survivor's replaced values."""
    if not policies.can_merge(actor):
        raise PermissionDenied("Only managers and admins can undo a merge.")
    with transaction.atomic():
        merge = LeadMerge.objects.select_for_update().get(pk=merge.pk)
        if merge.undone_at is not None:
            raise ValidationError({"merge": ["This merge has already been undone."]})
        now = timezone.now()
        if now > undo_deadline(merge):
            raise ValidationError(
                {"merge": [f"A merge can be undone for {settings.MERGE_UNDO_DAYS} days; this one was made on "
                           f"{timezone.localtime(merge.created_at):%Y-%m-%d}."]}
            )  # fmt: skip
        survivor, merged = _lock_pair(merge.survivor_id, merge.merged_id)
        if survivor.is_deleted:
            raise ValidationError(
                {"merge": [f"{survivor.name} (lead #{survivor.pk}) was deleted or merged since; "
                           "restore it or undo that merge first."]}
            )  # fmt: skip
        if not merged.is_deleted or merged.merged_into_id != survivor.pk:
            raise ValidationError(
                {"merge": [f"{merged.name} (lead #{merged.pk}) is no longer merged into this lead."]}
            )

        # The survivor gives back what it took first, so the merged lead's e-mail or phone is
        # free again unless a third lead has taken it since.
        restored, kept = {}, {}
        previous_owner = survivor.owner
        for name, change in merge.replaced.items():
            now_held = getattr(survivor, name)
            if _stored(now_held) != change["to"]:
                # Edited since the merge: that later edit is someone's decision, keep it.
                kept[name] = _shown(now_held)
                continue
            old = _from_stored(name, change["from"])
            if name == "owner" and old is not None and not old.is_active:
                kept[name] = _shown(now_held)  # the former owner has left; do not hand them a lead
                continue
            if now_held != old:
                restored[name] = {"from": _shown(now_held), "to": _shown(old)}
                setattr(survivor, name, old)
        try:
            _ensure_no_duplicate(
                email=survivor.email, phone=survivor.phone, actor=actor, exclude_pk=survivor.pk
            )
        except DuplicateLead as exc:
            _refuse_taken(exc, f"the value {survivor.name} had before the merge")
        survivor.version = F("version") + 1
        _save_guarding_duplicates(survivor, actor, update_fields=[*restored, "version", "updated_at"])
        survivor.refresh_from_db(fields=["version", "updated_at"])
        if "owner" in restored:
            record_owner_change(survivor, previous=previous_owner, actor=actor)

        try:
            _ensure_no_duplicate(email=merged.email, phone=merged.phone, actor=actor, exclude_pk=merged.pk)
        except DuplicateLead as exc:
            _refuse_taken(exc, f"{merged.name}'s own value")
        merged.deleted_at, merged.merged_into = None, None
        merged.version = F("version") + 1
        _save_guarding_duplicates(
            merged, actor, update_fields=["deleted_at", "merged_into", "version", "updated_at"]
        )
        merged.refresh_from_db(fields=["version", "updated_at"])

        moved = merge.moved or {}
        Attachment.objects.filter(pk__in=moved.get("attachments", []), lead=survivor).update(lead=merged)
        FollowUp.objects.filter(pk__in=moved.get("follow_ups", []), lead=survivor).update(lead=merged)

        merge.undone_at, merge.undone_by = now, actor
        merge.save(update_fields=["undone_at", "undone_by"])
        body = f"Undid the merge of {merged.name} (lead #{merged.pk}); it is a lead of its own again."
        if restored:
            body += f" Restored: {_describe(restored)}."
        if kept:
            since = ", ".join(f"{name} “{value}”" for name, value in kept.items())
            body += f" Kept as changed since the merge: {since}."
        _record(
            lead=survivor,
            actor=actor,
            kind=Activity.Kind.MERGE_UNDONE,
            body=body,
            data={"merge_id": merge.pk, "merged_id": merged.pk, "restored": restored, "kept": kept},
            occurred_at=now,
        )
        _record(
            lead=merged,
            actor=actor,
            kind=Activity.Kind.MERGE_UNDONE,
            body=f"Split back out of {survivor.name} (lead #{survivor.pk}).",
            data={"merge_id": merge.pk, "survivor_id": survivor.pk},
            occurred_at=now,
        )
        announce("lead.merge_undone", lead=survivor, actor=actor, merged_id=merged.pk, merge_id=merge.pk)
        announce("lead.restored", lead=merged, actor=actor)
    return merge
