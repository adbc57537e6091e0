"""Invitations: who may invite whom, the e-mail and its set-password link, and the user services."""

import re

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from accounts import services
from accounts.models import User
from accounts.roles import Role
from leads.models import Activity, Lead, OutgoingEmail
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-new-passphrase"
LINK = re.compile(r"https?://[^\s\"<>]+/accounts/invite/[^\s\"<>]+/")


def invite(actor, **fields):
    values = {
        "email": "new.person@test.example",
        "first_name": "New",
        "last_name": "Person",
        "role": Role.SALES,
    }
    return services.invite_user(actor=actor, **{**values, **fields})


def invitation_path(message):
    """The set-password link of an invitation e-mail, as a path the test client can open."""
    link = LINK.search(message.body).group(0)
    return re.sub(r"^https?://[^/]+", "", link)


@pytest.fixture
def invited(manager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return invite(manager)


# --- invite_user ----------------------------------------------------------------------------


@pytest.mark.parametrize("actor_fixture", ["manager", "admin_user"])
def test_managers_and_admins_invite_an_active_user_without_a_usable_password(
    request, actor_fixture, django_capture_on_commit_callbacks
):
    actor = request.getfixturevalue(actor_fixture)
    with django_capture_on_commit_callbacks(execute=True):
        user = invite(actor, email=" New.Person@Test.Example ", role=Role.MANAGER)
    stored = User.objects.get(pk=user.pk)
    assert (stored.email, stored.first_name, stored.role, stored.is_active) == (
        "new.person@test.example",
        "New",
        Role.MANAGER,
        True,
    )
    assert not stored.has_usable_password()
    assert stored.is_staff  # the role still decides staff status
    [message] = mail.outbox
    assert message.to == ["new.person@test.example"]
    assert str(actor) in message.subject
    assert "Choose your password" in message.alternatives[0][0]
    assert invitation_path(message).startswith("/accounts/invite/")
    assert OutgoingEmail.objects.get(to="new.person@test.example").key.startswith(f"invite:{user.pk}:")


def test_an_admin_invites_an_admin(admin_user):
    assert invite(admin_user, role=Role.ADMIN).is_superuser


def test_a_manager_cannot_invite_an_admin(manager):
    with pytest.raises(PermissionDenied):
        invite(manager, role=Role.ADMIN)
    assert not User.objects.filter(email="new.person@test.example").exists()
    assert not OutgoingEmail.objects.exists()


@pytest.mark.parametrize("actor_fixture", ["sales", None])
def test_sales_and_nobody_cannot_invite(request, actor_fixture):
    actor = request.getfixturevalue(actor_fixture) if actor_fixture else None
    with pytest.raises(PermissionDenied):
        invite(actor)


def test_a_deactivated_manager_cannot_invite():
    with pytest.raises(PermissionDenied):
        invite(UserFactory(role=Role.MANAGER, is_active=False))


def test_a_taken_email_is_a_field_error_whatever_its_case(manager, sales):
    with pytest.raises(ValidationError) as caught:
        invite(manager, email=sales.email.upper())
    assert "already has an account" in caught.value.message_dict["email"][0]


def test_a_bad_email_a_long_name_and_a_bad_role_are_field_errors(manager):
    with pytest.raises(ValidationError) as caught:
        invite(manager, email="not-an-email", first_name="x" * 151, role="boss")
    assert set(caught.value.message_dict) == {"email", "first_name", "role"}


# --- the link -------------------------------------------------------------------------------


def test_the_invitation_link_sets_a_password_and_logs_the_person_in(client, invited):
    path = invitation_path(mail.outbox[0])
    page = client.get(path, follow=True)
    assert page.status_code == 200
    assert "Choose your password" in page.content.decode()
    assert invited.email in page.content.decode()

    done = client.post(
        page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert done.redirect_chain[-1][0] == reverse("leads:board")
    assert "your password is set" in done.content.decode()
    assert done.context["user"] == invited
    assert User.objects.get(pk=invited.pk).check_password(NEW_PASSWORD)

    client.logout()
    login = client.post(reverse("login"), {"username": invited.email, "password": NEW_PASSWORD})
    assert login.status_code == 302 and login["Location"] == reverse("leads:board")


def test_password_validators_apply_and_errors_show_inline(client, invited):
    page = client.get(invitation_path(mail.outbox[0]), follow=True)
    response = client.post(page.redirect_chain[-1][0], {"new_password1": "short", "new_password2": "short"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not User.objects.get(pk=invited.pk).has_usable_password()


def test_a_used_link_is_refused_and_says_what_to_do(client, invited):
    path = invitation_path(mail.outbox[0])
    page = client.get(path, follow=True)
    client.post(page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    client.logout()

    again = client.get(path, follow=True)
    body = again.content.decode()
    assert "expired or has already been used" in body
    assert "log in" in body and "new invitation" in body
    assert "new_password1" not in body


def test_an_expired_link_is_refused(client, invited, settings):
    path = invitation_path(mail.outbox[0])
    # Tokens carry their creation time in seconds; a negative timeout makes that already too old.
    settings.PASSWORD_RESET_TIMEOUT = -1
    page = client.get(path, follow=True)
    assert "expired or has already been used" in page.content.decode()


def test_a_deactivated_persons_link_is_refused(client, invited, manager):
    services.deactivate_user(actor=manager, user=invited)
    page = client.get(invitation_path(mail.outbox[0]), follow=True)
    assert "expired or has already been used" in page.content.decode()


def test_the_set_password_page_reads_a_fixed_number_of_queries(
    client, invited, django_assert_max_num_queries
):
    path = invitation_path(mail.outbox[0])
    # Two requests (the link, then the page it redirects to): the user and the session, each twice.
    with django_assert_max_num_queries(8):
        response = client.get(path, follow=True)
    assert response.status_code == 200


def test_nobody_can_sign_up_with_a_role(client):
    for path in ("/accounts/signup/", "/accounts/register/"):
        assert client.get(path).status_code == 404


# --- resend, deactivate, reactivate ---------------------------------------------------------


def test_resend_sends_a_fresh_working_link(client, manager, invited, django_capture_on_commit_callbacks):
    OutgoingEmail.objects.update(key="invite:old")  # as if the first went out a while ago
    with django_capture_on_commit_callbacks(execute=True):
        services.resend_invite(actor=manager, user=invited)
    assert len(mail.outbox) == 2
    page = client.get(invitation_path(mail.outbox[1]), follow=True)
    assert "Choose your password" in page.content.decode()


def test_resend_is_refused_once_the_person_has_logged_in(manager, sales):
    sales.last_login = sales.date_joined
    sales.save()
    with pytest.raises(ValidationError, match="already logged in"):
        services.resend_invite(actor=manager, user=sales)


def test_deactivate_keeps_the_leads_and_reactivate_lets_the_person_back(manager, sales, lead):
    services.deactivate_user(actor=manager, user=sales)
    assert not User.objects.get(pk=sales.pk).is_active
    assert Lead.objects.get(pk=lead.pk).owner == sales
    services.reactivate_user(actor=manager, user=sales)
    assert User.objects.get(pk=sales.pk).is_active


def test_nobody_deactivates_themselves(manager):
    with pytest.raises(ValidationError, match="cannot deactivate yourself"):
        services.deactivate_user(actor=manager, user=manager)


def test_managers_cannot_touch_admins_but_admins_can(manager, admin_user):
    for change in (services.deactivate_user, services.resend_invite):
        with pytest.raises(PermissionDenied):
            change(actor=manager, user=admin_user)
    other_admin = UserFactory(role=Role.ADMIN)
    services.deactivate_user(actor=admin_user, user=other_admin)
    assert not User.objects.get(pk=other_admin.pk).is_active


def test_sales_cannot_deactivate_anyone(sales, other_sales):
    with pytest.raises(PermissionDenied):
        services.deactivate_user(actor=sales, user=other_sales)


# --- reassign_all_leads ---------------------------------------------------------------------


def test_reassign_all_moves_every_live_lead_with_one_activity_each(manager, sales, other_sales):
    mine = [LeadFactory(owner=sales) for _ in range(3)]
    deleted = LeadFactory(owner=sales, deleted_at="2024-01-01T00:00:00Z")
    services.deactivate_user(actor=manager, user=sales)

    count = services.reassign_all_leads(actor=manager, from_user=sales, to_user=other_sales)

    assert count == 3
    for lead in mine:
        assert Lead.objects.get(pk=lead.pk).owner == other_sales
        [change] = Activity.objects.filter(lead=lead, kind=Activity.Kind.OWNER_CHANGED)
        assert (change.actor, change.data["from_id"], change.data["to_id"]) == (
            manager,
            sales.pk,
            other_sales.pk,
        )
    assert Lead.objects.get(pk=deleted.pk).owner == sales  # deleted leads keep their history as it was


def test_reassign_all_announces_one_event_per_lead(manager, sales, django_capture_on_commit_callbacks):
    from leads.events import lead_changed

    leads = [LeadFactory(owner=sales) for _ in range(2)]
    heard = []

    def listen(event, lead_id, **kwargs):
        heard.append((event, lead_id))

    lead_changed.connect(listen)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.reassign_all_leads(actor=manager, from_user=sales, to_user=None)
    finally:
        lead_changed.disconnect(listen)
    assert sorted(heard) == sorted(("lead.reassigned", lead.pk) for lead in leads)
    assert not Lead.objects.filter(owner=sales).exists()


def test_reassign_all_refuses_a_deactivated_target_and_changes_nothing(manager, sales, lead):
    gone = UserFactory(is_active=False)
    with pytest.raises(ValidationError) as caught:
        services.reassign_all_leads(actor=manager, from_user=sales, to_user=gone)
    assert "to_user" in caught.value.message_dict
    assert Lead.objects.get(pk=lead.pk).owner == sales


def test_sales_cannot_reassign_all(sales, other_sales, lead):
    with pytest.raises(PermissionDenied):
        services.reassign_all_leads(actor=other_sales, from_user=sales, to_user=other_sales)


def test_the_subject_names_the_inviter_as_written_not_html_escaped(django_capture_on_commit_callbacks):
    inviter = UserFactory(role=Role.MANAGER, first_name="Seán", last_name="O'Brien")
    with django_capture_on_commit_callbacks(execute=True):
        invite(inviter)
    assert mail.outbox[0].subject == "Seán O'Brien invited you to Leadboard"
