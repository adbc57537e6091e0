"""The public capture form's services: a submission becomes a lead (or news on theirs), and its owner."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.roles import Role
from leads import attachments, policies, services
from leads.events import announce
from leads.exceptions import DuplicateLead
from leads.models import Activity, AssignmentRule, Lead, Source
from leads.normalization import normalize_email, normalize_phone

WEBSITE_SOURCE_NAME = "Website"
# What the form and the API accept; longer input is refused with the field named.
MAX_LENGTHS = {
    "first_name": 100,
    "last_name": 100,
    "email": 254,
    "phone": 40,
    "company": 200,
    "message": 5000,
}
CONSENT_REQUIRED = "Tick the box to let us store your details and contact you."


@dataclass(frozen=True)
class CaptureResult:
    """What a submission did. `created` is for staff and tests only: the prospect never learns it."""

    lead: Lead
    created: bool
    activity: Activity


# --- assignment --------------------------------------------------------------------------------


def assignment_rule(*, lock=False):
    """The one AssignmentRule row, created (round robin, nobody in it) when missing."""
    rules = AssignmentRule.objects.order_by("pk")
    if lock:
        rules = rules.select_for_update()
    rule = rules.first()
    if rule is None:
        # pk=1, so two first captures racing create one row: the loser's insert conflicts and it reads.
        rule, _ = rules.get_or_create(pk=1)
    return rule


def rotation_candidates():
    """Everyone who may be put in the rotation: active salespeople."""
    users = get_user_model().objects.filter(is_active=True, role=Role.SALES)
    return users.order_by("first_name", "last_name", "pk")


def rotation_members(rule):
    """Who takes new leads in turn: the rule's active salespeople, in a stable order."""
    return list(rule.members.filter(is_active=True, role=Role.SALES).order_by("pk"))


def member_after(members, last_id):
    """The member after `last_id` by id, wrapping around; the first when nobody had a turn yet."""
    if not members:
        return None
    return next((user for user in members if last_id is None or user.pk > last_id), members[0])


def next_in_turn(rule):
    """Who would get the next captured lead, without taking the turn (for the admin page)."""
    if rule.rule != AssignmentRule.Rule.ROUND_ROBIN:
        return None
    return member_after(rotation_members(rule), rule.last_assigned_id)


def next_owner():
    """The salesperson the next captured lead goes to, or None for the unassigned pool.

    Call it inside the transaction that creates the lead: it locks the rule row until that
    transaction ends, so concurrent captures take turns and nobody is skipped or given two
    in a row. Members after `last_assigned` by id come first, wrapping around to the start.
    """
    rule = assignment_rule(lock=True)
    if rule.rule != AssignmentRule.Rule.ROUND_ROBIN:
        return None
    chosen = member_after(rotation_members(rule), rule.last_assigned_id)
    if chosen is None:
        return None
    rule.last_assigned = chosen
    rule.save(update_fields=["last_assigned"])
    return chosen


def update_assignment_rule(*, actor, rule=None, members=None):
    """Change how captured leads are handed out (managers). None leaves that part as it is."""
    if not policies.is_manager(actor):
        raise PermissionDenied("Only managers can change how new leads are assigned.")
    errors = {}
    if rule is not None and rule not in AssignmentRule.Rule.values:
        errors["rule"] = [f"Choose one of: {', '.join(AssignmentRule.Rule.values)}."]
    members = list(members) if members is not None else None
    if members is not None:
        refused = [str(user) for user in members if not user.is_active or user.role != Role.SALES]
        if refused:
            errors["members"] = [f"Only active salespeople can take new leads: {', '.join(refused)}."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        current = assignment_rule(lock=True)
        if rule is not None and rule != current.rule:
            current.rule = rule
            current.save(update_fields=["rule"])
        if members is not None:
            current.members.set(members)
    return current


# --- capture -----------------------------------------------------------------------------------


def _clean_submission(fields, consent, resume):
    """Trimmed, normalised fields, or a ValidationError naming every bad field. Writes nothing."""
    values = {name: (value or "").strip() for name, value in fields.items()}
    errors = {}
    for name, limit in MAX_LENGTHS.items():
        if len(values[name]) > limit:
            errors[name] = [f"Keep this under {limit} characters (it has {len(values[name])})."]
    if not values["first_name"]:
        errors.setdefault("first_name", []).append("Tell us your first name.")
    if not values["email"]:
        errors.setdefault("email", []).append("Give us an e-mail address to reply to.")
    for name, normalize in (("email", normalize_email), ("phone", normalize_phone)):
        if name not in errors:
            try:
                values[name] = normalize(values[name])
            except ValidationError as exc:
                errors[name] = exc.messages
    if not consent:
        errors["consent"] = [CONSENT_REQUIRED]
    if resume is not None:
        try:
            attachments.validate_upload(resume)
        except ValidationError as exc:
            messages = exc.message_dict.get("file") if hasattr(exc, "error_dict") else None
            errors["resume"] = messages or exc.messages
    if errors:
        raise ValidationError(errors)
    return values


def _live_lead_with(email, phone):
    match = Q(pk__in=[])
    if email:
        match |= Q(email=email)
    if phone:
        match |= Q(phone=phone)
    return Lead.objects.live().filter(match).order_by("pk").first()


def _website_source():
    return Source.objects.get_or_create(name=WEBSITE_SOURCE_NAME)[0]


def _create_captured(values, message, consent_at, ip, resume):
    owner = next_owner()
    lead = services.create_lead(
        actor=None,
        owner=owner,
        first_name=values["first_name"],
        last_name=values["last_name"],
        email=values["email"],
        phone=values["phone"],
        company=values["company"],
        source=_website_source(),
        stage=services.default_stage(),
    )
    attachment = None
    if resume is not None:
        attachment = attachments.add_attachment(lead=lead, file=resume, actor=None)
    activity = services._record(
        lead=lead,
        actor=None,
        kind=Activity.Kind.CAPTURED,
        body=message,
        data={
            "consent_at": consent_at.isoformat(),
            "ip": ip,
            "resume": attachment.filename if attachment is not None else None,
            "attachment_id": attachment.pk if attachment is not None else None,
        },
        occurred_at=consent_at,
    )
    announce("lead.captured", lead=lead, actor=None)
    return CaptureResult(lead=lead, created=True, activity=activity)


def _record_resubmission(existing, values, message, consent_at, ip, resume):
    lead = services._locked(existing)
    attachment = None
    if resume is not None:
        # The submitted_again activity names the file, so the attachment writes no activity of its own.
        attachment = attachments.add_attachment(lead=lead, file=resume, actor=None, record=False)
    activity = services._record(
        lead=lead,
        actor=None,
        kind=Activity.Kind.SUBMITTED_AGAIN,
        body=message,
        data={
            "submitted": {name: values[name] for name in MAX_LENGTHS if name != "message"},
            "message": message,
            "consent_at": consent_at.isoformat(),
            "ip": ip,
            "resume": attachment.filename if attachment is not None else None,
            "attachment_id": attachment.pk if attachment is not None else None,
        },
        occurred_at=consent_at,
    )
    announce("lead.resubmitted", lead=lead, actor=None, activity_id=activity.pk)
    return CaptureResult(lead=lead, created=False, activity=activity)


def capture_lead(
    *, first_name, last_name, email, phone, company, message, consent, resume=None, ip=None
) -> CaptureResult:
    """A prospect's submission from the public form or endpoint, with actor None.

    A new e-mail and phone make a lead: Website source, the first open stage, an owner from the
    assignment rule, a `captured` activity with the message, consent time and IP, and the resume
    attached. An e-mail or phone a live lead already has adds a `submitted_again` activity (and
    the resume) to that lead instead. Either way the prospect is told the same thing, so the
    form reveals nothing about who is already a lead. The resume is checked before anything is
    written, so a bad file is a field error and nothing is created.
    """
    fields = dict(first_name=first_name, last_name=last_name, email=email, phone=phone, company=company)
    values = _clean_submission({**fields, "message": message}, consent, resume)
    message = values.pop("message")
    consent_at = timezone.now()
    with transaction.atomic():
        existing = _live_lead_with(values["email"], values["phone"])
        if existing is None:
            try:
                # A savepoint: if a concurrent submission created the lead first, the rotation's
                # turn taken here is given back along with the failed insert.
                with transaction.atomic():
                    return _create_captured(values, message, consent_at, ip, resume)
            except DuplicateLead as exc:
                existing = exc.existing
        return _record_resubmission(existing, values, message, consent_at, ip, resume)
