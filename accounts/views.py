"""The users page (invite, resend, deactivate, reactivate, reassign leads) and the invitation link page."""

from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts import security_log, selectors, services
from accounts.forms import InviteForm, ReassignLeadsForm
from leads import policies
from leads.forms import apply_service_errors


def _require_user_manager(user):
    if not policies.can_manage_users(user):
        raise PermissionDenied("Only managers and admins can manage users.")


def _render_users(request, *, invite_form=None, reassign_form=None, status=200):
    team = list(selectors.team_with_live_lead_counts())
    for person in team:
        person.manageable = policies.can_manage_user(request.user, person)
        person.is_me = person.pk == request.user.pk
    needs_reassignment = []
    for person in team:
        if person.is_active or not person.live_leads:
            continue
        if reassign_form is not None and reassign_form.from_user.pk == person.pk:
            form = reassign_form
        else:
            form = ReassignLeadsForm(from_user=person, owners=team)
        needs_reassignment.append((person, form))
    return render(
        request,
        "accounts/users.html",
        {
            "team": team,
            "invite_form": invite_form or InviteForm(actor=request.user),
            "needs_reassignment": needs_reassignment,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def users(request):
    """The team list, with the invitation form (a POST here invites)."""
    _require_user_manager(request.user)
    if request.method == "GET":
        return _render_users(request)
    form = InviteForm(request.POST, actor=request.user)
    if form.is_valid():
        try:
            invited = services.invite_user(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        except PermissionDenied as exc:
            form.add_error("role", str(exc))
        else:
            messages.success(
                request, f"Invited {invited} ({invited.email}): the invitation e-mail is on its way."
            )
            return redirect("users")
    return _render_users(request, invite_form=form, status=400)


def _change_user(request, pk, change, done):
    _require_user_manager(request.user)
    person = get_object_or_404(get_user_model(), pk=pk)
    try:
        change(actor=request.user, user=person)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done.format(person=person))
    return redirect("users")


@login_required
@require_POST
def resend_invite(request, pk):
    return _change_user(request, pk, services.resend_invite, "Sent {person} a new invitation link.")


@login_required
@require_POST
def deactivate(request, pk):
    return _change_user(
        request, pk, services.deactivate_user, "Deactivated {person}: they can no longer log in."
    )


@login_required
@require_POST
def reactivate(request, pk):
    return _change_user(request, pk, services.reactivate_user, "Reactivated {person}: they can log in again.")


@login_required
@require_POST
def reassign_leads(request, pk):
    """Hand every live lead of a (deactivated) user to an active user or the unassigned pool."""
    _require_user_manager(request.user)
    person = get_object_or_404(get_user_model(), pk=pk)
    form = ReassignLeadsForm(request.POST, from_user=person, owners=selectors.active_users())
    if form.is_valid():
        to_user = form.new_owner()
        try:
            count = services.reassign_all_leads(actor=request.user, from_user=person, to_user=to_user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            target = to_user or "the unassigned pool"
            noun = "lead" if count == 1 else "leads"
            messages.success(request, f"Reassigned {count} {noun} from {person} to {target}.")
            return redirect("users")
    return _render_users(request, reassign_form=form, status=400)


class InviteAcceptView(auth_views.PasswordResetConfirmView):
    """The invitation link: choose a password (validators apply), then land on the board logged in."""

    template_name = "accounts/invite_accept.html"
    reset_url_token = "set-password"
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("leads:board")

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        # A deactivated person's old invitation must not let them back in.
        return user if user is not None and user.is_active else None

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, f"Welcome, {form.user}: your password is set and you are logged in.")
        return response


@login_required
@require_POST
def logout_everywhere(request):
    """The account menu's "Log out everywhere": every session and API token of this user ends."""
    stopped = services.log_out_everywhere(user=request.user)
    security_log.log_event("logout_everywhere", request=request, user=request.user, tokens=stopped)
    logout(request)
    tokens = f" and {stopped} API token{'s' if stopped != 1 else ''}" if stopped else ""
    messages.success(request, f"You are logged out on every device and browser{tokens}. Log in again here.")
    return redirect("login")
