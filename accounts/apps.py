"""Accounts app: users, roles and their admin groups."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        from accounts import security_log  # noqa: F401  (connects the security log's receivers)
        from accounts.groups import grant_role_permissions

        # Permissions for models added by later migrations reach the groups too.
        post_migrate.connect(grant_role_permissions, dispatch_uid="accounts.grant_role_permissions")
