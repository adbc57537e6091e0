"""Admin for login lockouts: the admin login shows the lockout message; admins see and clear lockouts.

Clearing a lockout deletes the failed-attempt rows that caused it (django-axes counts nothing
else): the "Unlock" action on Access attempts, deleting a row, or "Unlock logins" on users.
"""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages

from accounts.login_forms import AdminLoginForm
from accounts.password_forms import admin_password_change
from accounts.security_log import describe_attempted, log_event

# The admin login refuses a locked-out login like the login page, with the same message.
admin.site.login_form = AdminLoginForm
# The admin's own password change counts wrong current passwords like failed logins (the site's
# URLs wrap this attribute when config/urls.py reads admin.site.urls, after this module loads).
admin.site.password_change = admin_password_change


class LockoutAttemptAdmin(AccessAttemptAdmin):
    actions = ["unlock", *AccessAttemptAdmin.actions]

    # Unlocking deletes the rows, so it needs the permission to delete them.
    @admin.action(
        description="Unlock: forget these failed attempts (the e-mail or IP may log in again)",
        permissions=["delete"],
    )
    def unlock(self, request, queryset):
        targets = sorted(
            {f"{describe_attempted(row.username)} from {row.ip_address or '-'}" for row in queryset}
        )
        count, _ = queryset.delete()
        for target in targets:
            log_event("login_unlocked", request=request, user=request.user, reason=f"cleared {target}")
        self.message_user(request, f"Unlocked {', '.join(targets) or 'nothing'}.", messages.SUCCESS)


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, LockoutAttemptAdmin)


@admin.action(description="Unlock logins (clear failed attempts for their e-mail)", permissions=["change"])
def unlock_logins(modeladmin, request, queryset):
    """The user admin's action: clear the failed logins counted against these people's e-mails.

    Only for people the actor may change: the action sees the whole selection, but a manager
    may not touch an admin (UserAdmin.has_change_permission), so neither may they unlock one.
    """
    names, refused = [], []
    for person in queryset:
        if not modeladmin.has_change_permission(request, person):
            refused.append(str(person))
            continue
        cleared, _ = AccessAttempt.objects.filter(username=person.email).delete()
        if cleared:
            names.append(str(person))
            log_event("login_unlocked", request=request, user=request.user, reason=f"cleared {person.email}")
    if refused:
        modeladmin.message_user(
            request, f"You may not unlock {', '.join(refused)}: ask an admin.", messages.WARNING
        )
    if names:
        modeladmin.message_user(request, f"Unlocked logins of {', '.join(names)}.", messages.SUCCESS)
    elif not refused:
        modeladmin.message_user(request, "None of them had failed logins to clear.", messages.INFO)
