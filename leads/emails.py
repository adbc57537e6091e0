"""Which lead events send which e-mail, to whom: receivers of leads.events.lead_changed."""

import logging

from django.contrib.auth import get_user_model

from accounts.roles import MANAGING_ROLES
from leads.mail import absolute_url, queue_email
from leads.models import Activity, Lead

logger = logging.getLogger(__name__)


def send_lead_emails(sender, *, event, lead_id, actor_id, payload, **kwargs):
    """The lead_changed receiver. Never raises: the change it reports has already committed."""
    build = MESSAGES.get(event)
    if build is None:
        return
    try:
        build(lead_id=lead_id, actor_id=actor_id, payload=payload or {})
    except Exception:
        logger.exception("E-mails for %s on lead %s were not queued", event, lead_id)


def _lead(lead_id):
    return Lead.objects.live().select_related("owner", "stage", "source").filter(pk=lead_id).first()


def _user(user_id, **filters):
    if user_id is None:
        return None
    return get_user_model().objects.filter(pk=user_id, **filters).first()


def _team_for(lead):
    """Who hears about a lead: its owner, or every active manager and admin while nobody owns it."""
    if lead.owner_id is not None and lead.owner.is_active:
        return [lead.owner]
    return list(get_user_model().objects.filter(is_active=True, role__in=MANAGING_ROLES).order_by("pk"))


def _details(lead):
    rows = [
        ("Name", lead.name),
        ("E-mail", lead.email),
        ("Phone", lead.phone),
        ("Company", lead.company),
        ("Job title", lead.title),
        ("Source", lead.source.name),
        ("Stage", lead.stage.name),
        ("Owner", str(lead.owner) if lead.owner_id else "Unassigned"),
        ("Notes", lead.notes),
    ]
    return [(label, value) for label, value in rows if value]


def _team_context(lead, recipient):
    return {
        "lead": lead,
        "recipient": recipient,
        "details": _details(lead),
        "lead_url": absolute_url(lead.get_absolute_url()),
        "unassigned": lead.owner_id is None,
    }


def lead_captured(*, lead_id, actor_id, payload):
    lead = _lead(lead_id)
    if lead is None:
        return
    # The prospect gets a plain thank-you: nothing internal, no links into the app.
    queue_email(
        key=f"lead.captured:{lead.pk}:prospect",
        to=lead.email,
        template="lead_captured_prospect",
        context={"lead": lead},
        lead=lead,
    )
    capture = (
        Activity.objects.filter(lead=lead, kind=Activity.Kind.CAPTURED)
        .order_by("-id")
        .only("body", "data")
        .first()
    )
    extra = _file_row(capture.data) if capture is not None else []
    for user in _team_for(lead):
        context = _team_context(lead, user)
        queue_email(
            key=f"lead.captured:{lead.pk}:user:{user.pk}",
            to=user.email,
            template="lead_captured_team",
            context={**context, "details": context["details"] + extra, "message": capture and capture.body},
            lead=lead,
        )


def _file_row(data):
    resume = data.get("resume") if isinstance(data, dict) else None
    return [("File", resume)] if resume else []


def _submitted_rows(data):
    """What a repeated submission carried, as (label, value) rows, from the activity's data."""
    submitted = data.get("submitted") or data.get("fields") or data
    if not isinstance(submitted, dict):
        return []
    rows = []
    for name, value in submitted.items():
        if isinstance(value, dict) and "to" in value:  # {"field": {"from": ..., "to": ...}}
            value = value["to"]
        if value in (None, "", [], {}) or isinstance(value, dict):
            continue
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        rows.append((str(name).replace("_", " ").capitalize(), value))
    return rows + _file_row(data)


def lead_resubmitted(*, lead_id, actor_id, payload):
    lead = _lead(lead_id)
    activity_id = payload.get("activity_id")
    if lead is None or activity_id is None:
        return
    activity = Activity.objects.filter(pk=activity_id, lead_id=lead.pk).first()
    data = activity.data if activity is not None and isinstance(activity.data, dict) else {}
    for user in _team_for(lead):
        queue_email(
            key=f"lead.resubmitted:{lead.pk}:{activity_id}:user:{user.pk}",
            to=user.email,
            template="lead_resubmitted",
            context={
                **_team_context(lead, user),
                "submitted": _submitted_rows(data),
                "message": activity.body if activity is not None else "",
            },
            lead=lead,
        )


def _reassignment_id(lead, payload):
    """What tells this reassignment from the next one to the same person: the owner_changed row
    services.record_owner_change() names in the event."""
    return payload.get("activity_id") or f"v{lead.version}"


def lead_reassigned(*, lead_id, actor_id, payload):
    to_owner = payload.get("to_owner")
    if to_owner is None or to_owner == actor_id:  # unassigned, or a claim: nobody to tell
        return
    lead, owner = _lead(lead_id), _user(to_owner, is_active=True)
    if lead is None or owner is None:
        return
    queue_email(
        key=f"lead.reassigned:{lead.pk}:{_reassignment_id(lead, payload)}:user:{owner.pk}",
        to=owner.email,
        template="lead_assigned",
        context={**_team_context(lead, owner), "actor": _user(actor_id)},
        lead=lead,
    )


MESSAGES = {
    "lead.captured": lead_captured,
    "lead.resubmitted": lead_resubmitted,
    "lead.reassigned": lead_reassigned,
}
