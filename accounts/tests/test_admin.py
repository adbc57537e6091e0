"""User admin: managers run their team, only admins create or touch admins, roles drive access."""

import pytest
from django.urls import reverse

from accounts.models import User
from accounts.roles import Role
from leads.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

USERS = reverse("admin:accounts_user_changelist")
ADD_USER = reverse("admin:accounts_user_add")
AUTOCOMPLETE = reverse("admin:autocomplete")


def change_url(user):
    return reverse("admin:accounts_user_change", args=[user.pk])


def new_user(**fields):
    return {"password1": "a-long-demo-passphrase", "password2": "a-long-demo-passphrase", **fields}


def change_data(user, **typed):
    data = {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": user.role,
        "is_active": "on" if user.is_active else "",
    }
    return {**data, **typed}


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def test_sales_users_do_not_get_in(client, sales):
    client.force_login(sales)
    response = client.get(USERS)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_user_list_shows_roles_and_searches_by_name(manager_client, sales):
    response = manager_client.get(USERS, {"q": sales.last_name})
    assert response.status_code == 200
    assert sales in response.context["cl"].result_list
    assert "Role" in response.content.decode()


def test_a_manager_is_not_offered_the_admin_role(manager_client):
    roles = [
        value for value, _ in manager_client.get(ADD_USER).context["adminform"].form.fields["role"].choices
    ]
    assert Role.ADMIN not in roles
    assert {Role.MANAGER, Role.SALES} <= set(roles)


def test_a_manager_cannot_create_an_admin(manager_client):
    response = manager_client.post(ADD_USER, new_user(email="boss@test.example", role=Role.ADMIN))
    assert response.status_code == 200
    assert "role" in response.context["adminform"].form.errors
    assert not User.objects.filter(email="boss@test.example").exists()


@pytest.mark.parametrize(
    ("role", "staff", "group"), [(Role.SALES, False, None), (Role.MANAGER, True, "Managers")]
)
def test_a_manager_adds_team_members_whose_access_follows_their_role(manager_client, role, staff, group):
    response = manager_client.post(
        ADD_USER, new_user(email="New.Person@Test.Example", first_name="New", last_name="Person", role=role)
    )
    assert response.status_code == 302
    user = User.objects.get(email="new.person@test.example")
    assert (user.role, user.is_staff, user.is_superuser) == (role, staff, False)
    assert list(user.groups.values_list("name", flat=True)) == ([group] if group else [])
    assert user.check_password("a-long-demo-passphrase")


def test_an_email_is_unique_whatever_its_case(manager_client, sales):
    response = manager_client.post(ADD_USER, new_user(email=sales.email.upper(), role=Role.SALES))
    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors


def test_a_manager_cannot_promote_anyone_to_admin(manager_client, sales):
    response = manager_client.post(change_url(sales), change_data(sales, role=Role.ADMIN))
    assert response.status_code == 200
    assert "role" in response.context["adminform"].form.errors
    assert User.objects.get(pk=sales.pk).role == Role.SALES


def test_a_manager_changes_a_sales_users_role_and_staff_follows(manager_client, sales):
    response = manager_client.post(change_url(sales), change_data(sales, role=Role.MANAGER))
    assert response.status_code == 302
    promoted = User.objects.get(pk=sales.pk)
    assert (promoted.role, promoted.is_staff) == (Role.MANAGER, True)


def test_a_manager_can_only_look_at_an_admin(manager_client, admin_user):
    page = manager_client.get(change_url(admin_user))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()

    response = manager_client.post(
        change_url(admin_user), change_data(admin_user, role=Role.SALES, is_active="")
    )
    assert response.status_code == 403
    assert (
        manager_client.get(reverse("admin:auth_user_password_change", args=[admin_user.pk])).status_code
        == 403
    )
    stored = User.objects.get(pk=admin_user.pk)
    assert (stored.role, stored.is_active) == (Role.ADMIN, True)


def test_an_admin_creates_and_edits_admins(admin_client_, manager):
    response = admin_client_.post(ADD_USER, new_user(email="second-admin@test.example", role=Role.ADMIN))
    assert response.status_code == 302
    created = User.objects.get(email="second-admin@test.example")
    assert (created.is_staff, created.is_superuser) == (True, True)

    response = admin_client_.post(change_url(manager), change_data(manager, role=Role.ADMIN))
    assert response.status_code == 302
    assert User.objects.get(pk=manager.pk).is_superuser


def test_the_owner_autocomplete_offers_active_users_only(manager_client):
    active = UserFactory(first_name="Zelda", last_name="Active")
    UserFactory(first_name="Zelda", last_name="Gone", is_active=False)
    response = manager_client.get(
        AUTOCOMPLETE, {"app_label": "leads", "model_name": "lead", "field_name": "owner", "term": "Zelda"}
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(active.pk)]


# --- invitations and deactivation in admin (through accounts.services) ----------------------


def test_adding_a_user_without_a_password_sends_an_invitation(
    manager_client, django_capture_on_commit_callbacks
):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(
            ADD_USER,
            {"email": "Invited@Test.Example", "first_name": "In", "last_name": "Vited", "role": Role.SALES},
        )
    assert response.status_code == 302
    user = User.objects.get(email="invited@test.example")
    assert (user.is_active, user.has_usable_password()) == (True, False)
    assert [m.to for m in mail.outbox] == [["invited@test.example"]]
    assert "/accounts/invite/" in mail.outbox[0].body


def test_one_password_field_alone_is_an_error(manager_client):
    response = manager_client.post(
        ADD_USER, {"email": "half@test.example", "role": Role.SALES, "password1": "a-long-demo-passphrase"}
    )
    assert response.status_code == 200
    assert "password2" in response.context["adminform"].form.errors
    assert not User.objects.filter(email="half@test.example").exists()


def act(client, action, *users):
    return client.post(USERS, {"action": action, "_selected_action": [u.pk for u in users]}, follow=True)


def test_the_deactivate_action_skips_yourself_and_admins(manager_client, manager, sales, admin_user):
    response = act(manager_client, "deactivate", manager, sales, admin_user)
    assert response.status_code == 200
    assert {u.pk: u.is_active for u in User.objects.all()} == {
        manager.pk: True,
        sales.pk: False,
        admin_user.pk: True,
    }
    text = " ".join(str(m) for m in response.context["messages"])
    assert "cannot deactivate yourself" in text and f"Deactivated {sales}" in text


def test_the_reactivate_and_invitation_actions(manager_client, sales, django_capture_on_commit_callbacks):
    from django.core import mail

    sales.is_active = False
    sales.save()
    act(manager_client, "reactivate", sales)
    assert User.objects.get(pk=sales.pk).is_active
    with django_capture_on_commit_callbacks(execute=True):
        act(manager_client, "send_invitation", sales)
    assert [m.to for m in mail.outbox] == [[sales.email]]


def test_active_is_not_a_checkbox_any_more(manager_client, sales):
    response = manager_client.post(change_url(sales), change_data(sales, is_active=""))
    assert response.status_code == 302
    assert User.objects.get(pk=sales.pk).is_active  # deactivating is the action's job
