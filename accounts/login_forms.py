"""The login forms of the login page and the admin: Django's, saying so when a lockout refused the login."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import lockout


class LockoutMessageMixin:
    # Set when the login was refused by the brute-force lockout; the template shows it instead
    # of "wrong e-mail or password" (which would send people to try again, and lock longer).
    lockout_message = ""

    def get_invalid_login_error(self):
        # django-axes flags the request when this attempt hit the limit or the client was already locked.
        if getattr(self.request, "axes_locked_out", False):
            self.lockout_message = lockout.lockout_message(
                self.request, {"username": self.cleaned_data.get("username")}
            )
            return ValidationError(self.lockout_message, code="locked_out")
        return super().get_invalid_login_error()


class LoginForm(LockoutMessageMixin, AuthenticationForm):
    pass


class AdminLoginForm(LockoutMessageMixin, AdminAuthenticationForm):
    pass
