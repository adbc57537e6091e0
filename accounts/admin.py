"""User admin: e-mail logins and roles; managers run their team but cannot create or touch admins.

Adding a user sends an invitation (accounts.services.invite_user) unless a password is typed
in; deactivating and reactivating are actions, so they pass the same checks as the users page.
"""

from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import forms as auth_forms
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import services
from accounts.identity import canonical_email
from accounts.lockout_admin import unlock_logins
from accounts.models import User
from accounts.roles import Role

ROLE_HELP = "Admins and managers use Django admin; staff status and admin groups follow the role."


def manages_admins(user):
    """Only admins may create, promote or edit admins; a manager doing so would outrank themselves."""
    return user.is_active and user.role == Role.ADMIN


class EmailCleaningMixin:
    def clean_email(self):
        # Stored canonical (User.save), so the unique check must compare the canonical form too.
        return canonical_email(self.cleaned_data["email"])


class UserCreationForm(EmailCleaningMixin, auth_forms.BaseUserCreationForm):
    """E-mail, name and role; the password is optional: without one the person is invited by e-mail."""

    class Meta:
        model = User
        fields = ("email", "first_name", "last_name", "role")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("password1", "password2"):
            self.fields[name].required = False
        self.fields["password1"].help_text = (
            "Leave both password fields empty to e-mail an invitation: the person chooses their own "
            "password through its link. " + self.fields["password1"].help_text
        )

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("password1")) != bool(cleaned.get("password2")):
            self.add_error("password2", "Type the password twice, or leave both empty to send an invitation.")
        return cleaned


class UserChangeForm(EmailCleaningMixin, auth_forms.UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "password", "first_name", "last_name", "role", "is_active")


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    # Django's user add page talks about usernames; ours is the plain form, e-mail first.
    add_form_template = None
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Name", {"fields": ("first_name", "last_name")}),
        ("Access", {"fields": ("role", "is_active")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "first_name", "last_name", "role", "password1", "password2"),
            },
        ),
    )
    # Deactivating goes through the actions (the services refuse deactivating yourself).
    readonly_fields = ("last_login", "date_joined", "is_active")
    actions = ("send_invitation", "deactivate", "reactivate", unlock_logins)
    list_display = ("email", "first_name", "last_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active")
    # Also what the lead form's owner autocomplete searches.
    search_fields = ("email", "first_name", "last_name")
    ordering = ("first_name", "last_name", "email")
    filter_horizontal = ()

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role":
            kwargs["help_text"] = ROLE_HELP
            if not manages_admins(request.user):
                kwargs["choices"] = [(value, label) for value, label in Role.choices if value != Role.ADMIN]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.role == Role.ADMIN and not manages_admins(request.user):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.role == Role.ADMIN and not manages_admins(request.user):
            return False
        return super().has_delete_permission(request, obj)

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "autocomplete":
            # Autocomplete picks owners; a deactivated user cannot own leads.
            queryset = queryset.filter(is_active=True)
        return queryset, may_have_duplicates

    # Adding: the services create the user (and send the invitation) ----------------------------

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        fields = {name: form.cleaned_data[name] for name in ("email", "first_name", "last_name", "role")}
        password = form.cleaned_data.get("password1")
        if password:
            return services.create_user_with_password(actor=request.user, password=password, **fields)
        invited = services.invite_user(actor=request.user, **fields)
        messages.info(request, f"Sent {invited} an invitation to choose a password.")
        return invited

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        # A new user has no related rows yet: the service saved everything.
        if change:
            super().save_related(request, form, formsets, change)

    # Actions ------------------------------------------------------------------------------------

    @admin.action(description="Send the invitation again", permissions=["change"])
    def send_invitation(self, request, queryset):
        self._apply(request, queryset, services.resend_invite, "Sent a new invitation to")

    @admin.action(description="Deactivate (their leads stay theirs until reassigned)", permissions=["change"])
    def deactivate(self, request, queryset):
        self._apply(request, queryset, services.deactivate_user, "Deactivated")

    @admin.action(description="Reactivate", permissions=["change"])
    def reactivate(self, request, queryset):
        self._apply(request, queryset, services.reactivate_user, "Reactivated")

    def _apply(self, request, queryset, change, done):
        """Each user through the service; a refusal skips that user and says why."""
        changed = []
        for person in queryset:
            try:
                change(actor=request.user, user=person)
            except (ValidationError, PermissionDenied) as exc:
                reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                self.message_user(request, f"{person}: {reason}", messages.WARNING)
            else:
                changed.append(str(person))
        if changed:
            self.message_user(request, f"{done} {', '.join(changed)}.", messages.SUCCESS)
