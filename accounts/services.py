"""Every write to users: invitations, deactivation and reactivation, handing a person's leads on."""

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.identity import canonical_email
from accounts.roles import Role
from leads import mail, policies
from leads import services as lead_services
from leads.models import Lead


def invitation_path(user):
    """The set-password page of `user`'s invitation; valid until PASSWORD_RESET_TIMEOUT or first use."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("invite_accept", args=[uidb64, default_token_generator.make_token(user)])


def _send_invitation(*, user, actor):
    # One key per second: a double-clicked "resend" sends one e-mail, a later resend a fresh link.
    key = f"invite:{user.pk}:{int(timezone.now().timestamp())}"
    timeout = settings.PASSWORD_RESET_TIMEOUT
    return mail.queue_email(
        key=key,
        to=user.email,
        template="invite",
        context={
            "user": user,
            "invited_by": actor,
            "link": mail.absolute_url(invitation_path(user)),
            "login_url": mail.absolute_url(reverse("login")),
            "valid_days": max(1, round(timeout / 86400)),
            "valid_hours": max(1, round(timeout / 3600)),
        },
        lead=None,
    )


def _require_manager_of(actor, user):
    if not policies.can_manage_users(actor):
        raise PermissionDenied("Only managers and admins can manage users.")
    if not policies.can_manage_user(actor, user):
        raise PermissionDenied("Only admins can change an admin's account.")


def _cleaned_new_user(*, email, first_name, last_name, role):
    User = get_user_model()
    email = canonical_email(email)
    first_name, last_name = (first_name or "").strip(), (last_name or "").strip()
    errors = {}
    if not email:
        errors["email"] = ["Enter the e-mail address the invitation goes to."]
    else:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = ["Enter a valid e-mail address."]
        else:
            if User.objects.filter(email__iexact=email).exists():
                errors["email"] = [f"{email} already has an account."]
    if role not in Role.values:
        errors["role"] = ["Choose admin, manager or sales."]
    for field, value in (("first_name", first_name), ("last_name", last_name)):
        limit = User._meta.get_field(field).max_length
        if len(value) > limit:
            errors.setdefault(field, []).append(f"Keep it under {limit} characters.")
    if errors:
        raise ValidationError(errors)
    return User(email=email, first_name=first_name, last_name=last_name, role=role, is_active=True)


def _save_new_user(user):
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        # Someone added the same address between the check and the save.
        raise ValidationError({"email": [f"{user.email} already has an account."]}) from None


def _check_may_grant(actor, role):
    if not policies.can_manage_users(actor):
        raise PermissionDenied("Only managers and admins can add users.")
    if role in Role.values and role not in policies.grantable_roles(actor):
        raise PermissionDenied("Only admins can make someone an admin.")


def invite_user(*, actor, email, first_name, last_name, role):
    """Create an active user without a password and e-mail them a link to choose one."""
    _check_may_grant(actor, role)
    user = _cleaned_new_user(email=email, first_name=first_name, last_name=last_name, role=role)
    # Nobody can log in with a password until the invitee sets one through the link.
    user.set_unusable_password()
    with transaction.atomic():
        _save_new_user(user)
        _send_invitation(user=user, actor=actor)
    return user


def create_user_with_password(*, actor, email, first_name, last_name, role, password):
    """Create a user whose password the admin form set (no invitation); same rules as invite_user."""
    _check_may_grant(actor, role)
    user = _cleaned_new_user(email=email, first_name=first_name, last_name=last_name, role=role)
    # The admin form checks too; the service checks again so no door sets a weak password.
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    with transaction.atomic():
        _save_new_user(user)
    return user


def resend_invite(*, actor, user):
    """A fresh invitation link for someone who has not logged in yet."""
    _require_manager_of(actor, user)
    if not user.is_active:
        raise ValidationError({"user": [f"{user} is deactivated; reactivate them first."]})
    if user.last_login is not None:
        raise ValidationError(
            {"user": [f"{user} has already logged in; they can change their own password."]}
        )
    with transaction.atomic():
        return _send_invitation(user=user, actor=actor)


def deactivate_user(*, actor, user):
    """Stop `user` logging in. Their leads stay theirs until someone reassigns them."""
    _require_manager_of(actor, user)
    if actor.pk == user.pk:
        raise ValidationError({"user": ["You cannot deactivate yourself; ask another manager or an admin."]})
    if not user.is_active:
        raise ValidationError({"user": [f"{user} is already deactivated."]})
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user


def reactivate_user(*, actor, user):
    _require_manager_of(actor, user)
    if user.is_active:
        raise ValidationError({"user": [f"{user} is already active."]})
    user.is_active = True
    user.save(update_fields=["is_active"])
    return user


def reassign_all_leads(*, actor, from_user, to_user):
    """Give every live lead of `from_user` to `to_user` (None: the unassigned pool); returns the count.

    Each lead goes through leads.services.reassign_lead, so each records its own owner_changed
    activity and event; one transaction, so a refusal leaves every lead where it was.
    """
    if not policies.can_manage_users(actor):
        raise PermissionDenied("Only managers and admins can reassign leads.")
    if to_user is not None:
        if to_user.pk == from_user.pk:
            raise ValidationError({"to_user": [f"The leads already belong to {from_user}."]})
        if not to_user.is_active:
            raise ValidationError({"to_user": [f"{to_user} is deactivated and cannot own leads."]})
    with transaction.atomic():
        leads = list(Lead.objects.live().filter(owner=from_user).order_by("pk"))
        for lead in leads:
            lead_services.reassign_lead(lead=lead, owner=to_user, actor=actor)
    return len(leads)


def log_out_everywhere(*, user):
    """End every session of `user` and stop every refresh token they hold; returns the tokens stopped.

    Sessions: bumping User.session_epoch changes the session auth hash, so each session (and the
    live board's socket, told to reconnect by the User post_save) fails its next check; no scan
    of the session table. API: every outstanding refresh token is blacklisted, and access tokens
    carry the epoch (accounts.jwt), so they stop at once too.
    """
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    with transaction.atomic():
        user.session_epoch = F("session_epoch") + 1
        user.save(update_fields=["session_epoch"])
        user.refresh_from_db(fields=["session_epoch"])
        live = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now()).exclude(
            blacklistedtoken__isnull=False
        )
        stopped = BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in live], ignore_conflicts=True
        )
    return len(stopped)
