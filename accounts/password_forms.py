"""Password change for the account page and the admin: the current password is checked through the lockout.

Django's PasswordChangeForm checks the current password with check_password(), which django-axes
never sees: someone holding a signed-in session could guess a colleague's password there without
limit. These forms check it with authenticate() instead, so each wrong guess counts against the
account's e-mail and the client IP like a failed login, and a lockout refuses it with the login
page's message (the AXES_LOCKOUT_CALLABLE then answers 429 with the re-rendered page).
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminPasswordChangeForm as DjangoAdminPasswordChangeForm
from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm as DjangoPasswordChangeForm
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.urls import reverse

from accounts import lockout


class LockoutCountedOldPasswordMixin:
    lockout_message = ""

    def __init__(self, user, *args, request=None, **kwargs):
        if request is None:
            # Without the request django-axes cannot count the guess; refuse loudly, never skip it.
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs the request (see LockoutCountedPasswordChangeView)."
            )
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        checked = authenticate(self.request, username=self.user.email, password=old_password)
        if checked is not None and checked.pk == self.user.pk:
            return old_password
        # django-axes flags the request when this guess reached the limit or the client was already locked.
        if getattr(self.request, "axes_locked_out", False):
            self.lockout_message = lockout.lockout_message(self.request, {"username": self.user.email})
            raise ValidationError(self.lockout_message, code="locked_out")
        raise ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")


class PasswordChangeForm(LockoutCountedOldPasswordMixin, DjangoPasswordChangeForm):
    pass


class AdminPasswordChangeForm(LockoutCountedOldPasswordMixin, DjangoAdminPasswordChangeForm):
    pass


class LockoutCountedPasswordChangeView(auth_views.PasswordChangeView):
    """Django's view, handing the request to the form so the current-password check can be counted."""

    form_class = PasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


def admin_password_change(request, extra_context=None):
    """AdminSite.password_change (Django 5.2) with the counted form: the admin hard-codes its form."""
    site = admin.site
    defaults = {
        "form_class": AdminPasswordChangeForm,
        "success_url": reverse("admin:password_change_done", current_app=site.name),
        "extra_context": {**site.each_context(request), **(extra_context or {})},
    }
    if site.password_change_template is not None:
        defaults["template_name"] = site.password_change_template
    request.current_app = site.name
    return LockoutCountedPasswordChangeView.as_view(**defaults)(request)
