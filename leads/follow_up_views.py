"""Follow-up pages: the lead page's panel, scheduling, completing and cancelling, and /follow-ups/."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from leads import follow_ups, policies, selectors
from leads.follow_up_forms import CompleteFollowUpForm, ScheduleFollowUpForm
from leads.forms import apply_service_errors


def follow_up_panel(request, lead, *, can_edit, follow_up_form=None, complete_forms=None, **_other_forms):
    """What the lead page's follow-ups panel shows: open follow-ups with their forms, and the
    schedule form for people who may schedule. One query (two for managers' assignee menu)."""
    user = request.user
    complete_forms = complete_forms or {}
    rows, now = [], timezone.now()
    for follow_up in selectors.open_follow_ups(lead):
        manageable = policies.can_manage_follow_up(user, follow_up)
        form = complete_forms.get(follow_up.pk) or CompleteFollowUpForm(follow_up=follow_up)
        rows.append(
            {"follow_up": follow_up, "form": form if manageable else None, "overdue": follow_up.due_at < now}
        )
    schedule_form = None
    if can_edit:
        schedule_form = follow_up_form or ScheduleFollowUpForm(can_assign=policies.is_manager(user))
    return {"open": rows, "schedule_form": schedule_form}


def _next_url(request, default):
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _render_lead(request, lead, **forms):
    from leads.views import _render_detail  # the lead page's views import this module

    return _render_detail(request, lead, status=400, **forms)


@login_required
@require_POST
def schedule(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    if not policies.can_edit(request.user, lead):
        raise PermissionDenied("You can see this lead but not schedule follow-ups on it.")
    form = ScheduleFollowUpForm(request.POST, can_assign=policies.is_manager(request.user))
    if form.is_valid():
        data = form.cleaned_data
        try:
            follow_up = follow_ups.schedule_follow_up(
                lead=lead,
                actor=request.user,
                assigned_to=data.get("assigned_to") or request.user,
                kind=data["kind"],
                title=data["title"],
                due_at=data["due_at"],
                notes=data["notes"],
            )
        except (ValidationError, PermissionDenied) as exc:
            apply_service_errors(form, exc if isinstance(exc, ValidationError) else ValidationError(str(exc)))
        else:
            messages.success(request, f"Scheduled “{follow_up.title}” for {follow_up.assigned_to}.")
            return redirect(lead)
    return _render_lead(request, lead, follow_up_form=form)


@login_required
@require_POST
def complete(request, pk):
    follow_up = selectors.get_visible_follow_up(request.user, pk)
    back = _next_url(request, follow_up.lead.get_absolute_url())
    form = CompleteFollowUpForm(request.POST, follow_up=follow_up)
    if form.is_valid():
        data = form.cleaned_data
        try:
            done = follow_ups.complete_follow_up(
                follow_up=follow_up,
                actor=request.user,
                outcome=data["outcome"],
                notes=data["notes"],
                duration_minutes=data["duration_minutes"],
            )
        except ValidationError as exc:
            if "follow_up" in getattr(exc, "message_dict", {}):
                # Done or cancelled meanwhile (another tab, a colleague): nothing left to fill in.
                messages.error(request, " ".join(exc.message_dict["follow_up"]))
                return redirect(back)
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Done: “{done.title}” ({done.get_outcome_display()}).")
            return redirect(back)
    if back.startswith(reverse("leads:follow_ups")):
        # Show the list the form came from: the assignee's, when a manager was looking at theirs.
        person = follow_up.assigned_to if policies.is_manager(request.user) else request.user
        return _render_follow_ups(
            request, person=person, back_url=back, complete_forms={follow_up.pk: form}, status=400
        )
    return _render_lead(request, follow_up.lead, complete_forms={follow_up.pk: form})


@login_required
@require_POST
def cancel(request, pk):
    follow_up = selectors.get_visible_follow_up(request.user, pk)
    back = _next_url(request, follow_up.lead.get_absolute_url())
    try:
        follow_ups.cancel_follow_up(follow_up=follow_up, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Cancelled “{follow_up.title}”.")
    return redirect(back)


@login_required
@require_GET
def follow_up_list(request):
    return _render_follow_ups(request)


def _whose(request):
    """The person whose follow-ups are shown: yourself, or (managers) ?user=<id>."""
    raw = request.GET.get("user", "")
    if raw in ("", str(request.user.pk)):
        return request.user
    if not policies.is_manager(request.user):
        raise PermissionDenied("Only managers can see someone else's follow-ups.")
    if not raw.isdecimal() or len(raw) > 18:
        raise Http404("No such user.")
    person = get_user_model().objects.filter(pk=int(raw)).first()
    if person is None:
        raise Http404("No such user.")
    return person


def _render_follow_ups(request, *, person=None, back_url=None, complete_forms=None, status=200):
    person = person or _whose(request)
    complete_forms = complete_forms or {}
    groups = selectors.my_follow_ups(person, viewer=request.user)
    shown = []
    for key, label, items in groups:
        rows = []
        for follow_up in items:
            form = None
            if follow_up.is_open and policies.can_manage_follow_up(request.user, follow_up):
                form = complete_forms.get(follow_up.pk) or CompleteFollowUpForm(follow_up=follow_up)
            rows.append({"follow_up": follow_up, "form": form})
        shown.append({"key": key, "label": label, "rows": rows})
    context = {
        "groups": shown,
        "person": person,
        "is_mine": person.pk == request.user.pk,
        "team": selectors.assignable_owners() if policies.is_manager(request.user) else None,
        "back_url": back_url or request.get_full_path(),
    }
    return render(request, "leads/follow_ups.html", context, status=status)
