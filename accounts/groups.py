"""Keeps the role groups' admin permissions in step with accounts.roles."""

from django.contrib.auth.models import Group, Permission

from accounts.roles import MANAGER_PERMISSIONS, ROLE_GROUPS, Role


def grant_role_permissions(**kwargs):
    """Create the role groups and give Managers exactly the permissions in MANAGER_PERMISSIONS."""
    for name in ROLE_GROUPS.values():
        Group.objects.get_or_create(name=name)
    managers = Group.objects.get(name=ROLE_GROUPS[Role.MANAGER])
    codenames = [
        (app_label, f"{action}_{model}")
        for app_label, model, actions in MANAGER_PERMISSIONS
        for action in actions
    ]
    wanted = [
        perm
        for perm in Permission.objects.select_related("content_type")
        if (perm.content_type.app_label, perm.codename) in codenames
    ]
    managers.permissions.set(wanted)
