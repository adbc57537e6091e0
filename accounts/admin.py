"""User admin: e-mail logins and roles; managers run their team but cannot create or touch admins."""

from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import forms as auth_forms

from accounts.models import User
from accounts.roles import Role

ROLE_HELP = "Admins and managers use Django admin; staff status and admin groups follow the role."


def manages_admins(user):
    """Only admins may create, promote or edit admins; a manager doing so would outrank themselves."""
    return user.is_active and user.role == Role.ADMIN


class EmailCleaningMixin:
    def clean_email(self):
        # Stored lower-case (User.save), so the unique check must compare lower-case too.
        return self.cleaned_data["email"].strip().lower()


class UserCreationForm(EmailCleaningMixin, auth_forms.BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "first_name", "last_name", "role")


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
    readonly_fields = ("last_login", "date_joined")
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
