"""The users page: managers invite, deactivate, reactivate and hand on a deactivated person's leads."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User
from accounts.roles import Role
from leads.models import Activity, Lead, OutgoingEmail
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

USERS = reverse("users")


def new_person(**fields):
    return {
        "email": "invitee@test.example",
        "first_name": "Ivy",
        "last_name": "Invitee",
        "role": "sales",
        **fields,
    }


def url(name, user):
    return reverse(name, args=[user.pk])


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


# --- who gets in ----------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_log_in(client):
    response = client.get(USERS)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_sales_get_a_403_and_no_nav_link(sales_client, manager):
    assert sales_client.get(USERS).status_code == 403
    assert sales_client.post(USERS, new_person()).status_code == 403
    assert sales_client.post(url("user_deactivate", manager)).status_code == 403
    assert f'href="{USERS}"' not in sales_client.get(reverse("leads:board")).content.decode()


def test_managers_see_the_nav_link(manager_client):
    assert f'href="{USERS}"' in manager_client.get(reverse("leads:board")).content.decode()


def test_the_page_lists_people_with_role_status_and_live_leads(manager_client, sales, other_sales):
    LeadFactory.create_batch(2, owner=sales)
    LeadFactory(owner=sales, deleted_at="2024-01-01T00:00:00Z")  # deleted: not counted
    response = manager_client.get(USERS)
    assert response.status_code == 200
    rows = {person.pk: person for person in response.context["team"]}
    assert (rows[sales.pk].live_leads, rows[other_sales.pk].live_leads) == (2, 0)
    body = response.content.decode()
    # sales has a password but has never logged in; an invitee has no usable password yet.
    assert sales.email in body and "Sales" in body and "Never (invitation pending)" not in body
    invitee = UserFactory(email="new@example.com")
    invitee.set_unusable_password()
    invitee.save()
    assert "Never (invitation pending)" in manager_client.get(USERS).content.decode()


# --- inviting -------------------------------------------------------------------------------


def test_a_manager_is_not_offered_the_admin_role_but_an_admin_is(manager_client, client, admin_user):
    roles = [value for value, _ in manager_client.get(USERS).context["invite_form"].fields["role"].choices]
    assert roles == ["manager", "sales"]
    client.force_login(admin_user)
    roles = [value for value, _ in client.get(USERS).context["invite_form"].fields["role"].choices]
    assert roles == ["admin", "manager", "sales"]


def test_a_manager_invites_someone(manager_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(USERS, new_person(role="manager"), follow=True)
    assert response.redirect_chain == [(USERS, 302)]
    assert "Invited Ivy Invitee (invitee@test.example)" in messages_of(response)[0]
    invited = User.objects.get(email="invitee@test.example")
    assert (invited.role, invited.is_active, invited.has_usable_password()) == (Role.MANAGER, True, False)
    assert [m.to for m in mail.outbox] == [["invitee@test.example"]]
    assert "invitee@test.example" in response.content.decode()


def test_a_forged_post_cannot_make_an_admin(manager_client):
    response = manager_client.post(USERS, new_person(role="admin"))
    assert response.status_code == 400
    assert "role" in response.context["invite_form"].errors
    assert not User.objects.filter(email="invitee@test.example").exists()
    assert not OutgoingEmail.objects.exists()


def test_an_admin_invites_an_admin(client, admin_user):
    client.force_login(admin_user)
    assert client.post(USERS, new_person(role="admin")).status_code == 302
    assert User.objects.get(email="invitee@test.example").is_superuser


def test_a_taken_email_is_shown_inline_and_the_input_is_kept(manager_client, sales):
    response = manager_client.post(USERS, new_person(email=sales.email.upper(), first_name="Kept"))
    assert response.status_code == 400
    assert "already has an account" in response.context["invite_form"].errors["email"][0]
    body = response.content.decode()
    assert 'class="field-error"' in body and 'value="Kept"' in body
    assert User.objects.filter(email__iexact=sales.email).count() == 1


def test_resend_is_offered_only_to_people_who_never_logged_in(manager_client, sales, other_sales):
    other_sales.last_login = other_sales.date_joined
    other_sales.save()
    body = manager_client.get(USERS).content.decode()
    assert f'action="{url("user_resend_invite", sales)}"' in body
    assert f'action="{url("user_resend_invite", other_sales)}"' not in body


def test_resend_from_the_page(manager_client, sales, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(url("user_resend_invite", sales), follow=True)
    assert "new invitation link" in messages_of(response)[0]
    assert [m.to for m in mail.outbox] == [[sales.email]]


# --- deactivating and reassigning -----------------------------------------------------------


def test_deactivating_lists_the_person_under_needs_reassignment(manager_client, sales):
    LeadFactory.create_batch(3, owner=sales)
    response = manager_client.post(url("user_deactivate", sales), follow=True)
    assert "Deactivated" in messages_of(response)[0]
    assert not User.objects.get(pk=sales.pk).is_active
    [(person, form)] = response.context["needs_reassignment"]
    assert person == sales
    body = response.content.decode()
    assert "Needs reassignment" in body and "Reassign all 3 leads of" in body
    assert Lead.objects.filter(owner=sales).count() == 3  # nothing moves on its own


def test_a_deactivated_person_without_leads_needs_nothing(manager_client, sales):
    manager_client.post(url("user_deactivate", sales))
    assert manager_client.get(USERS).context["needs_reassignment"] == []


def test_reassign_all_moves_every_live_lead_with_one_activity_each(
    manager_client, manager, sales, other_sales
):
    leads = LeadFactory.create_batch(3, owner=sales)
    manager_client.post(url("user_deactivate", sales))
    response = manager_client.post(
        url("user_reassign_leads", sales), {f"reassign-{sales.pk}-to_user": str(other_sales.pk)}, follow=True
    )
    assert f"Reassigned 3 leads from {sales} to {other_sales}." in messages_of(response)
    assert set(Lead.objects.filter(owner=other_sales)) == set(leads)
    changes = Activity.objects.filter(kind=Activity.Kind.OWNER_CHANGED)
    assert sorted(changes.values_list("lead_id", flat=True)) == sorted(lead.pk for lead in leads)
    assert set(changes.values_list("actor_id", flat=True)) == {manager.pk}
    assert response.context["needs_reassignment"] == []


def test_reassign_all_to_the_unassigned_pool(manager_client, sales):
    LeadFactory.create_batch(2, owner=sales)
    manager_client.post(url("user_deactivate", sales))
    response = manager_client.post(
        url("user_reassign_leads", sales), {f"reassign-{sales.pk}-to_user": "unassigned"}, follow=True
    )
    assert f"Reassigned 2 leads from {sales} to the unassigned pool." in messages_of(response)
    assert Lead.objects.filter(owner__isnull=True).count() == 2


def test_reassign_needs_an_active_person_and_says_so_inline(manager_client, sales):
    LeadFactory(owner=sales)
    gone = UserFactory(is_active=False)
    manager_client.post(url("user_deactivate", sales))
    for choice in ("", str(gone.pk)):
        response = manager_client.post(
            url("user_reassign_leads", sales), {f"reassign-{sales.pk}-to_user": choice}
        )
        assert response.status_code == 400
        assert 'class="field-error"' in response.content.decode()
    assert Lead.objects.get().owner == sales


def test_nobody_deactivates_themselves_and_the_page_offers_no_button(manager_client, manager):
    assert f'action="{url("user_deactivate", manager)}"' not in manager_client.get(USERS).content.decode()
    response = manager_client.post(url("user_deactivate", manager), follow=True)
    assert "cannot deactivate yourself" in messages_of(response)[0]
    assert User.objects.get(pk=manager.pk).is_active


def test_a_manager_cannot_deactivate_an_admin(manager_client, admin_user):
    assert f'action="{url("user_deactivate", admin_user)}"' not in manager_client.get(USERS).content.decode()
    assert manager_client.post(url("user_deactivate", admin_user)).status_code == 403
    assert User.objects.get(pk=admin_user.pk).is_active


def test_reactivate_from_the_page(manager_client, sales):
    manager_client.post(url("user_deactivate", sales))
    response = manager_client.post(url("user_reactivate", sales), follow=True)
    assert "Reactivated" in messages_of(response)[-1]
    assert User.objects.get(pk=sales.pk).is_active


def test_the_actions_answer_get_with_405(manager_client, sales):
    assert manager_client.get(url("user_deactivate", sales)).status_code == 405


# --- queries --------------------------------------------------------------------------------


def _team(size):
    people = UserFactory.create_batch(size)
    for person in people:
        LeadFactory.create_batch(2, owner=person)
    for person in people[: size // 2]:
        person.is_active = False
        person.save()


@pytest.mark.parametrize("size", [2, 12])
def test_the_page_reads_a_fixed_number_of_queries(manager_client, size, django_assert_max_num_queries):
    _team(size)
    # Session, user, the team with its lead counts, and the messages' session.
    with django_assert_max_num_queries(5):
        response = manager_client.get(USERS)
    assert len(response.context["needs_reassignment"]) == size // 2


def test_a_refused_invite_reads_a_fixed_number_of_queries(
    manager_client, sales, django_assert_max_num_queries
):
    _team(8)
    with django_assert_max_num_queries(6):
        assert manager_client.post(USERS, new_person(email=sales.email)).status_code == 400


def test_inviting_writes_a_fixed_number_of_queries(manager_client, django_assert_max_num_queries):
    _team(8)
    # The user, their role groups, the outbox row and savepoints: none of it grows with the team.
    with django_assert_max_num_queries(18):
        assert manager_client.post(USERS, new_person()).status_code == 302


def test_deactivating_writes_a_fixed_number_of_queries(manager_client, sales, django_assert_max_num_queries):
    _team(8)
    with django_assert_max_num_queries(10):
        assert manager_client.post(url("user_deactivate", sales)).status_code == 302


def test_reassigning_costs_the_same_per_lead(manager_client, sales, other_sales, django_assert_num_queries):
    """Each lead goes through reassign_lead (lock, save, follow-up hand-over, activity): fixed per lead."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost(count):
        owner = UserFactory()
        LeadFactory.create_batch(count, owner=owner)
        with CaptureQueriesContext(connection) as captured:
            manager_client.post(
                url("user_reassign_leads", owner), {f"reassign-{owner.pk}-to_user": str(other_sales.pk)}
            )
        return len(captured)

    one, four = cost(1), cost(4)
    per_lead = (four - one) / 3
    assert per_lead == int(per_lead) and per_lead <= 7
