"""The merge page (pick the lead that stays and each field's value) and the undo-merge action."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from leads import merging, policies, selectors
from leads.exceptions import StaleLead
from leads.models import Lead, LeadMerge

# Service errors on these keys are about the merge as a whole, not one field: shown above the table.
MERGE_LEVEL_ERRORS = ("merged", "merge", "lead", "version", "__all__")


def _shown(lead, name):
    if name == "source":
        return lead.source.name
    if name == "owner":
        return str(lead.owner) if lead.owner else "Unassigned"
    if name == "priority":
        return lead.get_priority_display()
    if name == "value":
        return f"${lead.value:,.2f}"
    return getattr(lead, name)


def _is_empty(lead, name):
    value = getattr(lead, f"{name}_id" if name in ("source", "owner") else name)
    return value in (None, "") or (name == "value" and not value)


def _merge_rows(lead, other, picked=None, errors=None):
    """One row per mergeable field: both values and which lead's value is picked.

    The default keeps this lead's value, or the other's where this lead has none.
    """
    picked, errors = picked or {}, errors or {}
    rows = []
    for name in merging.MERGE_FIELDS:
        default = other.pk if _is_empty(lead, name) and not _is_empty(other, name) else lead.pk
        rows.append(
            {
                "name": name,
                "label": "E-mail"
                if name == "email"
                else Lead._meta.get_field(name).verbose_name.capitalize(),
                "left": _shown(lead, name),
                "right": _shown(other, name),
                "same": _shown(lead, name) == _shown(other, name),
                "choice": picked.get(name, default),
                "errors": errors.get(name, []),
            }
        )
    return rows


def _parse_pk(value, allowed):
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return pk if pk in allowed else None


def _render(request, lead, other, *, picked=None, survivor_pk=None, errors=None, status=200):
    errors = errors or {}
    top = [message for key in MERGE_LEVEL_ERRORS for message in errors.get(key, [])]
    top += [
        f"{key.replace('_', ' ').capitalize()}: {message}"
        for key, found in errors.items()
        if key not in MERGE_LEVEL_ERRORS and key not in merging.MERGE_FIELDS
        for message in found
    ]
    context = {
        "lead": lead,
        "other": other,
        "rows": _merge_rows(lead, other, picked, errors),
        "survivor_pk": survivor_pk or lead.pk,
        "top_errors": top,
        "undo_days": settings.MERGE_UNDO_DAYS,
    }
    return render(request, "leads/merge.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def merge(request, pk, other_pk):
    lead = selectors.get_visible_lead(request.user, pk)
    other = selectors.get_visible_lead(request.user, other_pk)
    if not policies.can_merge(request.user):
        raise PermissionDenied("Only managers and admins can merge leads.")
    if lead.pk == other.pk:
        raise Http404("A lead cannot be merged with itself.")
    if request.method == "GET":
        return _render(request, lead, other)

    pair = {lead.pk, other.pk}
    errors = {}
    survivor_pk = _parse_pk(request.POST.get("survivor"), pair)
    if survivor_pk is None:
        errors["__all__"] = ["Choose which lead stays."]
    picked = {}
    for name in merging.MERGE_FIELDS:
        raw = request.POST.get(f"keep_{name}")
        if raw is None:
            continue
        chosen = _parse_pk(raw, pair)
        if chosen is None:
            errors[name] = ["Pick the value of one of the two leads."]
        else:
            picked[name] = chosen
    if errors:
        return _render(
            request, lead, other, picked=picked, survivor_pk=survivor_pk, errors=errors, status=400
        )

    survivor, merged = (lead, other) if survivor_pk == lead.pk else (other, lead)
    defaults = {row["name"]: row["choice"] for row in _merge_rows(lead, other)}
    field_choices = {
        name: merging.KEEP_SURVIVOR
        if picked.get(name, defaults[name]) == survivor.pk
        else merging.KEEP_MERGED
        for name in merging.MERGE_FIELDS
    }
    versions = {}
    for candidate in (lead, other):
        raw = request.POST.get(f"version_{candidate.pk}")
        if raw:
            versions[candidate.pk] = raw
    try:
        merging.merge_leads(
            survivor=survivor,
            merged=merged,
            actor=request.user,
            field_choices=field_choices,
            expected_versions=versions,
        )
    except StaleLead as exc:
        current = {exc.current.pk: exc.current}
        lead, other = current.get(lead.pk, lead), current.get(other.pk, other)
        return _render(
            request, lead, other, picked=picked, survivor_pk=survivor_pk,
            errors={"version": [f"{exc} (It is #{exc.current.pk}, {exc.current.name}.)"]}, status=409,
        )  # fmt: skip
    except ValidationError as exc:
        found = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return _render(request, lead, other, picked=picked, survivor_pk=survivor_pk, errors=found, status=400)
    messages.success(
        request,
        f"Merged {merged.name} into {survivor.name}. A manager can undo this from the lead page "
        f"for {settings.MERGE_UNDO_DAYS} days.",
    )
    return redirect(survivor)


@login_required
@require_POST
def undo(request, merge_id):
    merge = LeadMerge.objects.select_related("merged").filter(pk=merge_id).first()
    if merge is None:
        raise Http404("No such merge.")
    survivor = selectors.get_visible_lead(request.user, merge.survivor_id)
    if not policies.can_merge(request.user):
        raise PermissionDenied("Only managers and admins can undo a merge.")
    try:
        merging.undo_merge(merge=merge, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"Undid the merge: {merge.merged.name} (lead #{merge.merged_id}) is a lead of its own again.",
        )
    return redirect(survivor)
