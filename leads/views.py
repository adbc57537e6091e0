"""The board and lead pages: parse the request, call a selector or a service, render or redirect."""

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leads import counts, policies, selectors, services
from leads.exceptions import StaleLead
from leads.filters import LeadFilter
from leads.follow_up_views import follow_up_panel
from leads.forms import (
    ActivityForm,
    LeadEditForm,
    MoveForm,
    QuickAddForm,
    ReassignForm,
    VersionForm,
    apply_service_errors,
    form_value,
)
from leads.models import Activity, Lead
from leads.services import EDITABLE_FIELDS

TIMELINE_PAGE_SIZE = 50
# dashboard: created_after/created_before, so each dashboard number opens the leads behind it.
BOARD_FILTER_PARAMS = (
    "query",
    "source",
    "owner",
    "stage",
    "created_after",
    "created_before",
    # The dashboard links "won in this range" to the leads moved into a won stage in it.
    "stage_changed_after",
    "stage_changed_before",
)


# --- small helpers ---------------------------------------------------------------------------


def _wants_json(request):
    return "application/json" in request.headers.get("Accept", "")


def _back_to_board(request):
    """Where to return after a board action: the board URL it came from, filters included."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return reverse("leads:board")


def _column_pages(params):
    """?page_<stage id>=N for each column's own paging."""
    pages = {}
    for key, value in params.items():
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        if key.startswith("page_") and key[5:].isdecimal() and value.isdecimal() and len(value) < 10:
            pages[int(key[5:])] = min(int(value), 100_000)
    return pages


# --- the board -------------------------------------------------------------------------------


@login_required
@require_GET
def board(request):
    return _render_board(request, quick_add=QuickAddForm())


def filtered_board(request):
    """The board's filters applied as the page applies them (the live board's card endpoint too):
    (filter_data, filterset, matching leads, all board stages, the stages shown as columns)."""
    filter_data = {k: request.GET[k] for k in BOARD_FILTER_PARAMS if request.GET.get(k)}
    filterset = LeadFilter(
        filter_data or None, queryset=selectors.visible_leads(request.user), request=request
    )
    leads = filterset.qs
    if filterset.errors:
        # An unfiltered board under a filter error reads as filtered results; show none instead.
        leads = leads.none()
    stages = selectors.board_stages()
    chosen_stage = filterset.active_filters().get("stage")
    shown = [s for s in stages if chosen_stage is None or s.pk == chosen_stage.pk]
    return filter_data, filterset, leads, stages, shown


def counted_board(request, filterset):
    """The board's filters as lead counters select them (counts.counter_q), or None: a search
    (or a filter error) needs the leads themselves."""
    return None if filterset.errors else counts.counter_q(request.user, filterset.active_filters())


def _render_board(request, *, quick_add, status=200):
    filter_data, filterset, leads, stages, shown = filtered_board(request)
    chosen_stage = filterset.active_filters().get("stage")
    archived_stage = chosen_stage if chosen_stage is not None and chosen_stage.archived else None
    columns = selectors.board_columns(
        leads=leads,
        stages=shown,
        column_pages=_column_pages(request.GET),
        counted=counted_board(request, filterset),
    )
    for column in columns:
        _prepare_cards(request.user, column.leads, stages)
    return render(
        request,
        "leads/board.html",
        {
            "columns": columns,
            "stages": stages,
            "filterset": filterset,
            # The quick-add form posts with the filters, so a refused add re-renders the same board.
            "filter_query": urlencode(filter_data),
            "is_filtered": bool(filter_data),
            "quick_add": quick_add,
            "board_url": request.get_full_path(),
            "archived_stage": archived_stage,
        },
        status=status,
    )


@login_required
@require_POST
def quick_add(request):
    form = QuickAddForm(request.POST)
    if form.is_valid():
        try:
            lead = services.create_lead(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Added {lead.name} to {lead.stage}.", extra_tags=f"lead:{lead.pk}")
            return redirect(_back_to_board(request))
    return _render_board(request, quick_add=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def move(request, pk):
    """Move a card. A plain form post (no JavaScript) or fetch() asking for JSON."""
    lead = selectors.get_visible_lead(request.user, pk)
    if request.method == "GET":
        # The no-JavaScript way to give a lost reason: a page with the full move form.
        form = MoveForm(initial={"stage": request.GET.get("stage"), "version": lead.version})
        return render(
            request, "leads/move.html", {"lead": lead, "form": form, "next": _back_to_board(request)}
        )

    form = MoveForm(request.POST)
    status, error = 400, None
    if form.is_valid():
        data = form.cleaned_data
        try:
            lead = services.move_lead(
                lead=lead,
                stage=data["stage"],
                actor=request.user,
                expected_version=data["version"],
                lost_reason=data["lost_reason"],
            )
        except StaleLead as exc:
            status, error, lead = 409, str(exc), exc.current
        except PermissionDenied as exc:
            status, error = 403, str(exc)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return _moved(request, lead)
    if _wants_json(request):
        return _json_error(request, error, form, status, lead)
    if error is None and "lost_reason" in form.errors:
        return render(
            request,
            "leads/move.html",
            {"lead": lead, "form": form, "next": _back_to_board(request)},
            status=400,
        )
    messages.error(request, error or " ".join(m for ms in form.errors.values() for m in ms))
    return redirect(_back_to_board(request))


def _prepare_cards(user, leads, stages, *, badges=True):
    """Cards offer a move form and dragging only to people the policy lets move them, and
    their stage menu starts at the next stage, so "Move" alone moves a lead forward."""
    following = {stage.pk: nxt.pk for stage, nxt in zip(stages, stages[1:])}
    if len(stages) > 1:
        following[stages[-1].pk] = stages[-2].pk
    if badges:
        _fill_card_badges(leads)
    now = timezone.now()
    menus = {}
    for lead in leads:
        lead.movable = policies.can_edit(user, lead)
        lead.suggested_stage_id = following.get(lead.stage_id)
        if lead.movable:
            if lead.stage_id not in menus:
                menus[lead.stage_id] = _move_menu(stages, lead.stage_id, lead.suggested_stage_id)
            lead.move_menu = menus[lead.stage_id]
        if badges:
            lead.follow_up_overdue, lead.is_stale = selectors.card_badges(lead, now)


def _move_menu(stages, current_stage_id, suggested_stage_id):
    """A card's stage <option>s. Every card of a column has the same menu, so it is built once
    per stage rather than by each of the board's 150 cards looping over the stages in the
    template (a third of the board's rendering time at a million leads)."""
    return format_html_join(
        "",
        '<option value="{}" data-kind="{}"{}>{}</option>',
        (
            (stage.pk, stage.kind, " selected" if stage.pk == suggested_stage_id else "", stage.name)
            for stage in stages
            if stage.pk != current_stage_id
        ),
    )


def _fill_card_badges(leads):
    """Board pages come annotated (selectors.with_card_badges); a lone card, after a move, is
    read here in one query so it keeps its follow-up and stale badges."""
    missing = [lead for lead in leads if not hasattr(lead, "next_follow_up_at")]
    if not missing:
        return
    found = selectors.with_card_badges(Lead.objects.filter(pk__in=[lead.pk for lead in missing])).values(
        "pk", "next_follow_up_at", "last_activity_at"
    )
    badges = {row["pk"]: row for row in found}
    for lead in missing:
        row = badges.get(lead.pk, {})
        lead.next_follow_up_at = row.get("next_follow_up_at")
        lead.last_activity_at = row.get("last_activity_at")


def _card_html(request, lead, stages=None, board_url=None):
    stages = selectors.board_stages() if stages is None else stages
    _prepare_cards(request.user, [lead], stages)
    context = {"lead": lead, "stages": stages, "board_url": board_url or _back_to_board(request)}
    return render_to_string("leads/_card.html", context, request=request)


def _moved(request, lead):
    if _wants_json(request):
        return JsonResponse({"ok": True, "lead": _lead_state(lead), "card_html": _card_html(request, lead)})
    messages.success(request, f"Moved {lead.name} to {lead.stage}.", extra_tags=f"lead:{lead.pk}")
    return redirect(_back_to_board(request))


def _lead_state(lead):
    return {
        "id": lead.pk,
        "version": lead.version,
        "stage_id": lead.stage_id,
        "stage": lead.stage.name,
        "owner": str(lead.owner) if lead.owner else None,
        "value": str(lead.value),
    }


def _json_error(request, error, form, status, lead):
    fields = {name: [str(m) for m in msgs] for name, msgs in form.errors.items()}
    message = error or " ".join(m for msgs in fields.values() for m in msgs) or "The lead was not moved."
    body = {"ok": False, "error": message, "fields": fields, "lead": _lead_state(lead)}
    if status == 409:
        # The card as it is now, with its current version, so the next move is not stale too.
        body["card_html"] = _card_html(request, lead)
    return JsonResponse(body, status=status)


# --- the lead page ---------------------------------------------------------------------------


@login_required
@require_GET
def detail(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    return _render_detail(request, lead)


def _render_detail(request, lead, *, status=200, **forms):
    user = request.user
    can_edit = policies.can_edit(user, lead)
    timeline = Paginator(selectors.lead_timeline(lead), TIMELINE_PAGE_SIZE).get_page(request.GET.get("page"))
    stages = selectors.board_stages()
    _prepare_cards(user, [lead], stages, badges=False)  # the move menu starts at the next stage
    context = {
        "lead": lead,
        "stages": stages,
        "timeline": timeline,
        "can_edit": can_edit,
        "can_reassign": policies.can_reassign(user, lead),
        "can_claim": policies.can_claim(user, lead),
        "can_delete": policies.can_delete(user, lead),
        "edit_form": forms.get("edit_form") or (LeadEditForm(lead=lead) if can_edit else None),
        "reassign_form": forms.get("reassign_form")
        or ReassignForm(initial={"owner": lead.owner_id, "version": lead.version}),
        "activity_form": forms.get("activity_form") or ActivityForm(initial={"kind": Activity.Kind.NOTE}),
        "conflict": forms.get("conflict"),
        "follow_ups": follow_up_panel(request, lead, can_edit=can_edit, **forms),
    }
    return render(request, "leads/detail.html", context, status=status)


@login_required
@require_POST
def edit(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    if not policies.can_edit(request.user, lead):
        raise PermissionDenied("You can see this lead but not edit it.")
    form = LeadEditForm(request.POST, lead=lead)
    if not form.is_valid():
        return _render_detail(request, lead, edit_form=form, status=400)
    try:
        services.update_lead(
            lead=lead, actor=request.user, expected_version=form.cleaned_data["version"], **form.changes()
        )
    except StaleLead as exc:
        # Keep what they typed, but against the current version, beside what changed meanwhile.
        data = request.POST.copy()
        data["version"] = exc.current.version
        for name in EDITABLE_FIELDS:  # from now on, "started from" is the current lead
            data[form.add_initial_prefix(name)] = form_value(exc.current, name)
        conflict = {"message": str(exc), "changes": _conflicting_fields(form, exc.current)}
        return _render_detail(
            request,
            exc.current,
            edit_form=LeadEditForm(data, lead=exc.current),
            conflict=conflict,
            status=409,
        )
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return _render_detail(request, lead, edit_form=form, status=400)
    messages.success(request, "Saved.")
    return redirect(lead)


def _conflicting_fields(form, current):
    """The fields someone else changed since the person loaded the form, with their new values."""
    changed = []
    for name in EDITABLE_FIELDS:
        started = form.started_from(name)
        if started is None or _same_value(name, started, form_value(current, name)):
            continue
        label = form[name].label
        shown = {"source": current.source.name, "priority": current.get_priority_display()}.get(name)
        changed.append({"field": label, "now": shown if shown is not None else getattr(current, name)})
    return changed


def _same_value(name, started, now):
    if name == "value":
        try:
            return Decimal(started) == Decimal(now)
        except InvalidOperation:
            return False
    return started.strip() == now.strip()


@login_required
@require_POST
def log_activity(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    form = ActivityForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            activity = services.log_activity(
                lead=lead,
                actor=request.user,
                kind=data["kind"],
                body=data["body"],
                outcome=data["outcome"],
                duration_minutes=data["duration_minutes"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"{activity.get_kind_display()} logged.")
            return redirect(lead)
    return _render_detail(request, lead, activity_form=form, status=400)


@login_required
@require_POST
def reassign(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    form = ReassignForm(request.POST)
    if form.is_valid():
        try:
            lead = services.reassign_lead(
                lead=lead,
                owner=form.cleaned_data["owner"],
                actor=request.user,
                expected_version=form.cleaned_data["version"],
            )
        except StaleLead as exc:
            messages.error(request, str(exc))
            return redirect(lead)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request, f"{lead.name} is now {'with ' + str(lead.owner) if lead.owner else 'unassigned'}."
            )
            return redirect(lead)
    return _render_detail(request, lead, reassign_form=form, status=400)


@login_required
@require_POST
def claim(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    form = VersionForm(request.POST)
    form.is_valid()
    try:
        lead = services.claim_lead(
            lead=lead, actor=request.user, expected_version=form.cleaned_data.get("version")
        )
    except (StaleLead, ValidationError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"{lead.name} is yours now.")
    return redirect(lead)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    if not policies.can_delete(request.user, lead):
        raise PermissionDenied("Only managers and admins can delete leads.")
    if request.method == "GET":
        return render(request, "leads/delete.html", {"lead": lead})
    services.delete_lead(lead=lead, actor=request.user, reason=request.POST.get("reason", "")[:2000])
    messages.success(request, f"Deleted {lead.name}. An admin can restore it from Django admin.")
    return redirect("leads:board")


@login_required
def home(request):
    return redirect("leads:board")
