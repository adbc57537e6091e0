"""Roles: the single source of truth for who is staff and which admin groups a user is in."""

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    SALES = "sales", "Sales"


# Roles that run the team: they see and edit every lead and use Django admin.
MANAGING_ROLES = frozenset({Role.ADMIN, Role.MANAGER})

# The admin group each staff role belongs to; admins are also superusers.
ROLE_GROUPS = {Role.ADMIN: "Admins", Role.MANAGER: "Managers"}

# What the Managers group may do in Django admin, as (app_label, model, actions).
# "delete" is safe to grant: the admin routes it to the services, which soft-delete leads and
# archive stages and sources that leads still use.
MANAGER_PERMISSIONS = [
    ("leads", "lead", ("view", "add", "change", "delete")),
    ("leads", "stage", ("view", "add", "change", "delete")),
    ("leads", "source", ("view", "add", "change", "delete")),
    ("leads", "activity", ("view",)),
    ("accounts", "user", ("view", "add", "change")),
]
