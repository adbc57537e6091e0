"""Who gets leads from the public form: the round robin, the pool, the admin page, and fairness under load."""

from collections import Counter
from functools import partial

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.urls import reverse

from accounts.roles import Role
from leads import intake
from leads.models import AssignmentRule, Lead
from leads.tests.concurrency import run_at_once
from leads.tests.factories import UserFactory


def capture(n):
    return intake.capture_lead(
        first_name="Prospect",
        last_name=str(n),
        email=f"prospect{n}@example.com",
        phone="",
        company="",
        message="",
        consent=True,
    )


def rotate(*members, rule=AssignmentRule.Rule.ROUND_ROBIN):
    manager = UserFactory(role=Role.MANAGER)
    return intake.update_assignment_rule(actor=manager, rule=rule, members=members)


@pytest.mark.django_db
def test_leads_go_round_the_members_in_id_order_and_wrap_around():
    first, second, third = (UserFactory(role=Role.SALES) for _ in range(3))
    rotate(third, first, second)

    owners = [capture(n).lead.owner for n in range(7)]

    assert owners == [first, second, third, first, second, third, first]
    assert AssignmentRule.objects.get().last_assigned == first


@pytest.mark.django_db
def test_inactive_members_are_skipped_and_rejoin_when_reactivated():
    first, second, third = (UserFactory(role=Role.SALES) for _ in range(3))
    rotate(first, second, third)
    second.is_active = False
    second.save()

    assert [capture(n).lead.owner for n in range(3)] == [first, third, first]

    second.is_active = True
    second.save()
    assert capture(3).lead.owner == second


@pytest.mark.django_db
def test_a_member_no_longer_in_sales_is_skipped():
    first, second = UserFactory(role=Role.SALES), UserFactory(role=Role.SALES)
    rotate(first, second)
    second.role = Role.MANAGER
    second.save()

    assert [capture(n).lead.owner for n in range(2)] == [first, first]


@pytest.mark.django_db
def test_the_last_assigned_leaving_the_rotation_passes_the_turn_to_the_next_by_id():
    first, second, third = (UserFactory(role=Role.SALES) for _ in range(3))
    rotate(first, second, third)
    assert capture(0).lead.owner == first
    assert capture(1).lead.owner == second
    rotate(first, third)

    assert [capture(n).lead.owner for n in range(2, 4)] == [third, first]


@pytest.mark.django_db
def test_rule_unassigned_sends_leads_to_the_pool():
    rotate(UserFactory(role=Role.SALES), rule=AssignmentRule.Rule.UNASSIGNED)

    assert capture(0).lead.owner is None
    assert AssignmentRule.objects.get().last_assigned is None


@pytest.mark.django_db
def test_no_rule_row_or_nobody_active_means_the_pool():
    assert not AssignmentRule.objects.exists()
    assert capture(0).lead.owner is None
    assert AssignmentRule.objects.count() == 1  # created on first use, round robin, empty

    lone = UserFactory(role=Role.SALES)
    rotate(lone)
    lone.is_active = False
    lone.save()
    assert capture(1).lead.owner is None


@pytest.mark.django_db
def test_only_managers_change_the_rule_and_only_active_salespeople_join_it(sales, manager):
    with pytest.raises(PermissionDenied):
        intake.update_assignment_rule(actor=sales, members=[sales])
    with pytest.raises(ValidationError) as refused:
        intake.update_assignment_rule(actor=manager, members=[sales, manager])
    assert "members" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        intake.update_assignment_rule(actor=manager, rule="random")
    assert "rule" in refused.value.message_dict


# --- admin -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_index_links_to_the_rule_which_opens_in_place(manager_client):
    index = manager_client.get(reverse("admin:index"))
    changelist = reverse("admin:leads_assignmentrule_changelist")
    assert changelist in index.content.decode()

    response = manager_client.get(changelist)

    rule = AssignmentRule.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:leads_assignmentrule_change", args=[rule.pk])


@pytest.mark.django_db
def test_managers_pick_members_from_active_salespeople_only(manager_client, sales, other_sales):
    gone = UserFactory(role=Role.SALES, is_active=False, first_name="Gone")
    rule = intake.assignment_rule()
    url = reverse("admin:leads_assignmentrule_change", args=[rule.pk])

    page = manager_client.get(url)
    offered = set(page.context["adminform"].form.fields["members"].queryset)
    assert offered == {sales, other_sales}
    assert gone not in offered
    assert b"Delete" not in page.content

    response = manager_client.post(url, {"rule": "round_robin", "members": [sales.pk, other_sales.pk]})

    assert response.status_code == 302
    assert set(AssignmentRule.objects.get().members.all()) == {sales, other_sales}
    refused = manager_client.post(url, {"rule": "round_robin", "members": [gone.pk]})
    assert refused.status_code == 200 and refused.context["adminform"].form.errors["members"]


@pytest.mark.django_db
def test_no_second_rule_and_no_delete(manager_client, admin_user, client):
    intake.assignment_rule()
    assert manager_client.get(reverse("admin:leads_assignmentrule_add")).status_code == 403
    rule = AssignmentRule.objects.get()
    delete = reverse("admin:leads_assignmentrule_delete", args=[rule.pk])
    assert manager_client.post(delete, {"post": "yes"}).status_code == 403
    assert AssignmentRule.objects.count() == 1


@pytest.mark.django_db
def test_salespeople_cannot_open_the_rule_in_admin(sales_client):
    response = sales_client.get(reverse("admin:leads_assignmentrule_changelist"))
    assert response.status_code in (302, 403)
    assert not AssignmentRule.objects.exists()


@pytest.mark.django_db
def test_rule_page_query_count(manager_client, django_assert_max_num_queries):
    rule = rotate(*(UserFactory(role=Role.SALES) for _ in range(5)))
    url = reverse("admin:leads_assignmentrule_change", args=[rule.pk])
    manager_client.get(url)
    with django_assert_max_num_queries(12):
        assert manager_client.get(url).status_code == 200


@pytest.mark.django_db
def test_seed_demo_puts_both_demo_salespeople_in_the_rotation(settings):
    from django.core.management import call_command

    settings.DEBUG = True
    call_command("seed_demo", leads=0, stdout=open("/dev/null", "w"))

    members = {user.email for user in AssignmentRule.objects.get().members.all()}
    assert members == {"sales@example.com", "sales2@example.com"}


# --- fairness under concurrency ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_captures_take_turns_fairly():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every write; the row lock is PostgreSQL's to prove")
    members = [UserFactory(role=Role.SALES) for _ in range(3)]
    rotate(*members)
    submissions = 8
    run_at_once(*(partial(capture, n) for n in range(submissions)))

    owners = list(Lead.objects.order_by("pk").values_list("owner_id", flat=True))
    assert len(owners) == submissions
    assert all(a != b for a, b in zip(owners, owners[1:])), owners
    counts = Counter(owners)
    assert set(counts) == {member.pk for member in members}
    assert max(counts.values()) - min(counts.values()) <= 1, counts


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_first_captures_create_one_rule_row():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent transactions")

    def first_use():
        with transaction.atomic():
            intake.next_owner()

    run_at_once(*[first_use] * 4)
    assert AssignmentRule.objects.count() == 1
