"""Roles are the source of truth: staff status, superuser status and admin groups follow them."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from accounts.models import User
from accounts.roles import MANAGER_PERMISSIONS, ROLE_GROUPS, Role
from leads.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# What each role makes a user: (is_staff, is_superuser, role groups).
ROLE_FLAGS = {
    Role.ADMIN: (True, True, {"Admins"}),
    Role.MANAGER: (True, False, {"Managers"}),
    Role.SALES: (False, False, set()),
}


def flags_in_db(user):
    stored = User.objects.get(pk=user.pk)
    groups = set(stored.groups.filter(name__in=ROLE_GROUPS.values()).values_list("name", flat=True))
    return stored.is_staff, stored.is_superuser, groups


@pytest.mark.parametrize("role", list(Role))
def test_a_new_user_gets_the_flags_and_groups_of_their_role(role):
    assert flags_in_db(UserFactory(role=role)) == ROLE_FLAGS[role]


@pytest.mark.parametrize("old", list(Role))
@pytest.mark.parametrize("new", list(Role))
def test_changing_the_role_keeps_staff_superuser_and_groups_in_step(old, new):
    user = UserFactory(role=old)
    user.role = new
    user.save()
    assert flags_in_db(user) == ROLE_FLAGS[new]


@pytest.mark.parametrize("old,new", [(Role.SALES, Role.MANAGER), (Role.ADMIN, Role.SALES)])
def test_saving_only_the_role_field_still_updates_staff_and_superuser(old, new):
    user = UserFactory(role=old)
    user.role = new
    user.save(update_fields=["role"])
    assert flags_in_db(user) == ROLE_FLAGS[new]


def test_flags_set_by_hand_are_overruled_by_the_role():
    user = UserFactory(role=Role.SALES)
    user.is_staff = user.is_superuser = True
    user.save()
    assert flags_in_db(user) == ROLE_FLAGS[Role.SALES]


def test_groups_that_are_not_role_groups_are_kept():
    marketing = Group.objects.create(name="Marketing")
    user = UserFactory(role=Role.SALES)
    user.groups.add(marketing)
    user.role = Role.MANAGER
    user.save()
    assert set(user.groups.values_list("name", flat=True)) == {"Managers", "Marketing"}


def test_create_superuser_makes_an_admin():
    user = User.objects.create_superuser("Root@Example.COM", "s3cret-pass", first_name="Ro", last_name="Ot")
    assert user.role == Role.ADMIN
    assert user.email == "root@example.com"
    assert user.check_password("s3cret-pass")
    assert flags_in_db(user) == ROLE_FLAGS[Role.ADMIN]


def test_create_superuser_cannot_be_talked_into_another_role():
    user = User.objects.create_superuser("root@example.com", "s3cret-pass", role=Role.SALES)
    assert user.role == Role.ADMIN


def test_the_createsuperuser_command_makes_an_admin(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "s3cret-pass")
    call_command(
        "createsuperuser", interactive=False, email="root@example.com", first_name="Ro", last_name="Ot",
        verbosity=0,
    )  # fmt: skip
    user = User.objects.get(email="root@example.com")
    assert user.role == Role.ADMIN
    assert flags_in_db(user) == ROLE_FLAGS[Role.ADMIN]


def test_create_user_defaults_to_sales():
    user = User.objects.create_user("Seller@Example.com", "s3cret-pass")
    assert (user.role, user.email) == (Role.SALES, "seller@example.com")
    assert flags_in_db(user) == ROLE_FLAGS[Role.SALES]


def expected_manager_permissions():
    return {
        (app_label, f"{action}_{model}")
        for app_label, model, actions in MANAGER_PERMISSIONS
        for action in actions
    }


def test_the_managers_group_has_exactly_the_manager_permissions_after_migrate():
    granted = {
        (perm.content_type.app_label, perm.codename)
        for perm in Group.objects.get(name="Managers").permissions.select_related("content_type")
    }
    assert granted == expected_manager_permissions()


def test_every_manager_permission_names_a_real_permission():
    existing = set(Permission.objects.values_list("content_type__app_label", "codename"))
    assert expected_manager_permissions() <= existing


def test_a_manager_has_the_admin_permissions_and_sales_has_none():
    manager, sales = UserFactory(role=Role.MANAGER), UserFactory(role=Role.SALES)
    for app_label, codename in expected_manager_permissions():
        assert manager.has_perm(f"{app_label}.{codename}")
        assert not sales.has_perm(f"{app_label}.{codename}")
    assert not manager.has_perm("leads.delete_activity")  # the timeline is append-only


@pytest.mark.parametrize(
    "role,active,expected",
    [
        (Role.ADMIN, True, True),
        (Role.MANAGER, True, True),
        (Role.SALES, True, False),
        (Role.MANAGER, False, False),
    ],
)
def test_is_manager(role, active, expected):
    assert UserFactory(role=role, is_active=active).is_manager is expected


@pytest.mark.parametrize("typed", ["Sales@Example.com", " sales@example.com ", "SALES@EXAMPLE.COM"])
def test_login_by_email_ignores_case_and_spaces_on_every_door(client, typed):
    from rest_framework.test import APIClient

    UserFactory(email="sales@example.com", role=Role.SALES)
    page = client.post("/accounts/login/", {"username": typed, "password": "correct-horse-battery"})
    assert page.status_code == 302 and page["Location"] == "/board/"
    token = APIClient().post(
        "/api/auth/token/", {"email": typed, "password": "correct-horse-battery"}, format="json"
    )
    assert token.status_code == 200 and set(token.json()) == {"access", "refresh"}
