"""Who may clear lockouts: the Unlock action needs the permission to delete access attempts, and
"Unlock logins" on users only unlocks people the actor may change (a manager never an admin)."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

ATTEMPTS = reverse("admin:axes_accessattempt_changelist")
USERS = reverse("admin:accounts_user_changelist")


def attempt(username, ip="203.0.113.1"):
    return AccessAttempt.objects.create(
        username=username, ip_address=ip, user_agent="test", failures_since_start=5
    )


@pytest.fixture
def viewer(manager):
    # A manager who may look at access attempts but not delete them.
    manager.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
    return User.objects.get(pk=manager.pk)


def test_without_the_delete_permission_unlock_is_neither_offered_nor_run(
    client, viewer, django_assert_max_num_queries
):
    row = attempt("sales@test.example")
    client.force_login(viewer)

    page = client.get(ATTEMPTS)
    assert page.status_code == 200
    assert 'value="unlock"' not in page.content.decode()
    with django_assert_max_num_queries(20):
        response = client.post(ATTEMPTS, {"action": "unlock", "_selected_action": [row.pk]})

    assert response.status_code in (200, 302)
    assert AccessAttempt.objects.filter(pk=row.pk).exists()


def test_with_the_delete_permission_unlock_is_offered_and_clears(client, viewer):
    viewer.user_permissions.add(Permission.objects.get(codename="delete_accessattempt"))
    row = attempt("sales@test.example")
    client.force_login(User.objects.get(pk=viewer.pk))

    assert 'value="unlock"' in client.get(ATTEMPTS).content.decode()
    response = client.post(ATTEMPTS, {"action": "unlock", "_selected_action": [row.pk]})

    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()


def test_a_manager_cannot_unlock_an_admin_from_the_user_admin(
    client, manager, admin_user, sales, django_assert_max_num_queries
):
    attempt(admin_user.email)
    attempt(sales.email)
    client.force_login(manager)

    with django_assert_max_num_queries(30):
        response = client.post(
            USERS, {"action": "unlock_logins", "_selected_action": [admin_user.pk, sales.pk]}, follow=True
        )

    assert list(AccessAttempt.objects.values_list("username", flat=True)) == [admin_user.email]
    page = response.content.decode()
    assert "You may not unlock" in page
    assert f"Unlocked logins of {sales}" in page


def test_an_admin_unlocks_an_admin(client, admin_user):
    other = User.objects.create_user("second-admin@test.example", "x", role="admin")
    attempt(other.email)
    client.force_login(admin_user)

    client.post(USERS, {"action": "unlock_logins", "_selected_action": [other.pk]})

    assert not AccessAttempt.objects.exists()
