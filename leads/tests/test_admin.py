"""Django admin for managers: every change goes through the services and lands on the timeline."""

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.roles import Role
from leads import services
from leads.admin import CappedCountPaginator
from leads.models import Activity, Lead, Source, Stage
from leads.tests.factories import ActivityFactory, LeadFactory, UserFactory, stage_named

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:leads_lead_changelist")
ADD = reverse("admin:leads_lead_add")
# The activity inline is read-only, but the admin still wants its management form back.
INLINE_MANAGEMENT = {
    "activities-TOTAL_FORMS": "0",
    "activities-INITIAL_FORMS": "0",
    "activities-MIN_NUM_FORMS": "0",
    "activities-MAX_NUM_FORMS": "0",
}
# Queries for a page of the lead list, whatever the number of leads: session, user, the
# manager's permissions (2), stage and source filter choices, the capped count, the page, and
# the date hierarchy's range and dates.
CHANGELIST_QUERY_BOUND = 10


def change_url(lead):
    return reverse("admin:leads_lead_change", args=[lead.pk])


def kinds(lead):
    return list(Activity.objects.filter(lead=lead).order_by("id").values_list("kind", flat=True))


def texts(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def page_form_data(client, url, **typed):
    """What the admin page at `url` posts when saved, with `typed` changed by the user."""
    form = client.get(url).context["adminform"].form
    data = {name: "" if form[name].value() is None else form[name].value() for name in form.fields}
    return {**data, **INLINE_MANAGEMENT, **typed}


def run_action(client, action, leads, query="", **form):
    """Pick leads in the list and run `action`; with `form`, also submit its intermediate page."""
    data = {"action": action, ACTION_CHECKBOX_NAME: [lead.pk for lead in leads]}
    if form:
        data.update(apply="1", **form)
    else:
        data["index"] = "0"
    return client.post(CHANGELIST + query, data)


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


# --- who gets in ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "sales"])
def test_only_managers_and_admins_reach_the_lead_admin(client, sales, lead, who):
    if who == "sales":
        client.force_login(sales)
    for url in (CHANGELIST, change_url(lead), ADD):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_a_sales_user_cannot_post_an_action(client, sales, lead):
    client.force_login(sales)
    response = run_action(client, "soft_delete", [lead])
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert Lead.objects.get(pk=lead.pk).deleted_at is None


# --- the list ----------------------------------------------------------------------------


def test_the_list_shows_live_leads_by_default(manager_client, manager):
    live = LeadFactory(first_name="Ada", last_name="Live")
    gone = services.delete_lead(lead=LeadFactory(first_name="Bea", last_name="Gone"), actor=manager)
    response = manager_client.get(CHANGELIST)
    assert response.status_code == 200
    assert live.name in response.content.decode()
    assert gone.name not in response.content.decode()

    deleted_only = manager_client.get(CHANGELIST + "?state=deleted").content.decode()
    assert gone.name in deleted_only and live.name not in deleted_only


def test_owner_filter_me_unassigned_and_one_person(manager_client, manager, sales):
    mine = LeadFactory(owner=manager, first_name="Mine")
    pool = LeadFactory(owner=None, first_name="Pooled")
    theirs = LeadFactory(owner=sales, first_name="Theirs")

    def names(query):
        return {lead.first_name for lead in manager_client.get(CHANGELIST + query).context["cl"].result_list}

    assert names("?owner=me") == {mine.first_name}
    assert names("?owner=unassigned") == {pool.first_name}
    assert names(f"?owner={sales.pk}") == {theirs.first_name}
    # An owner that is no user id is a bad filter, reported by the admin rather than a 500.
    assert manager_client.get(CHANGELIST + "?owner=nobody").status_code == 302


def test_search_matches_phone_digits_however_typed(manager_client):
    lead = LeadFactory(phone="+12125550123", first_name="Phoebe")
    LeadFactory(first_name="Other")
    response = manager_client.get(CHANGELIST, {"q": "(212) 555-0123"})
    assert [row.pk for row in response.context["cl"].result_list] == [lead.pk]


@pytest.mark.parametrize("leads", [5, 200])
def test_the_list_runs_a_fixed_number_of_queries(manager_client, django_assert_max_num_queries, leads):
    owners = UserFactory.create_batch(3)
    for i in range(leads):
        LeadFactory(owner=owners[i % 3] if i % 4 else None)
    with django_assert_max_num_queries(CHANGELIST_QUERY_BOUND):
        response = manager_client.get(CHANGELIST)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == min(leads, 100)


@pytest.mark.parametrize("query", ["", "?q=lead", "?owner=unassigned&stage__id__exact=1", "?state=all&o=-2"])
def test_the_list_never_counts_every_row(manager_client, query):
    LeadFactory.create_batch(3)
    with CaptureQueriesContext(connection) as captured:
        response = manager_client.get(CHANGELIST + query)
    assert response.status_code == 200
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the list should still count, up to a cap"
    for sql in counts:
        assert re.search(r"LIMIT \d+", sql), f"unbounded count: {sql}"


def test_the_count_stops_at_the_cap(manager_client, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    LeadFactory.create_batch(5)
    paginator = CappedCountPaginator(Lead.objects.order_by("pk"), per_page=2)
    assert (paginator.count, paginator.capped, paginator.num_pages) == (3, True, 2)

    page = manager_client.get(CHANGELIST).content.decode()
    assert "More than 3 leads" in page
    assert "More than 3 results" in page


# --- saving the lead form goes through the services ----------------------------------------


def test_editing_stage_owner_and_fields_writes_the_timeline(manager_client, manager, lead, other_sales):
    version = lead.version
    data = page_form_data(
        manager_client,
        change_url(lead),
        company="Globex",
        stage=stage_named("In Progress").pk,
        owner=other_sales.pk,
    )
    response = manager_client.post(change_url(lead), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors

    lead.refresh_from_db()
    assert (lead.company, lead.stage.name, lead.owner) == ("Globex", "In Progress", other_sales)
    assert lead.version == version + 3
    changes = Activity.objects.filter(lead=lead).order_by("id")
    assert [a.kind for a in changes] == ["updated", "stage_changed", "owner_changed"]
    assert all(a.actor == manager for a in changes)
    assert changes[0].data["changes"]["company"]["to"] == "Globex"
    assert changes[1].data["to"] == "In Progress"
    assert changes[2].data["to_id"] == other_sales.pk


def test_saving_without_changes_writes_nothing(manager_client, lead):
    response = manager_client.post(change_url(lead), page_form_data(manager_client, change_url(lead)))
    assert response.status_code == 302
    assert kinds(lead) == []
    assert Lead.objects.get(pk=lead.pk).version == lead.version


def test_a_stale_form_is_refused_not_saved_over(manager_client, manager, lead):
    stale = page_form_data(manager_client, change_url(lead), company="From the old page")
    services.move_lead(lead=lead, stage=stage_named("Reached Out"), actor=manager)

    response = manager_client.post(change_url(lead), {**stale, "stage": stage_named("New Lead").pk})
    assert response.status_code == 302
    assert response["Location"] == change_url(lead)
    assert any("was changed by" in text for text in texts(response))
    lead.refresh_from_db()
    assert (lead.company, lead.stage.name) != ("From the old page", "New Lead")
    assert lead.stage.name == "Reached Out"
    assert kinds(lead) == ["stage_changed"]


def test_a_form_without_its_version_is_refused(manager_client, lead):
    data = page_form_data(manager_client, change_url(lead), company="Globex")
    del data["expected_version"]
    response = manager_client.post(change_url(lead), data)
    assert response.status_code == 200
    assert "reload it" in str(response.context["adminform"].form.non_field_errors())
    assert kinds(lead) == []


def test_a_service_refusal_comes_back_as_form_errors(manager_client, lead):
    data = page_form_data(manager_client, change_url(lead), stage=stage_named("Lost").pk, value="-5")
    response = manager_client.post(change_url(lead), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    # update_lead refuses the value first; the whole save is refused and nothing is written.
    assert "value" in errors
    assert kinds(lead) == []
    assert Lead.objects.get(pk=lead.pk).stage.name == "New Lead"

    data["value"] = "10"
    response = manager_client.post(change_url(lead), data)
    assert response.status_code == 200
    assert "lost_reason" in response.context["adminform"].form.errors
    assert kinds(lead) == []
    assert Lead.objects.get(pk=lead.pk).value == lead.value


def test_a_duplicate_email_links_to_the_lead_that_has_it(manager_client, lead):
    other = LeadFactory(email="taken@example.com")
    data = page_form_data(manager_client, change_url(lead), email="TAKEN@example.com")
    response = manager_client.post(change_url(lead), data)
    assert response.status_code == 200
    assert change_url(other) in str(response.context["adminform"].form.errors["email"])
    assert Lead.objects.get(pk=lead.pk).email == lead.email


def test_the_lost_reason_alone_cannot_be_edited(manager_client, lead):
    data = page_form_data(manager_client, change_url(lead), lost_reason="Changed my mind")
    response = manager_client.post(change_url(lead), data)
    assert response.status_code == 200
    assert "lost_reason" in response.context["adminform"].form.errors


def test_adding_a_lead_goes_through_create_lead(manager_client, manager):
    data = page_form_data(
        manager_client, ADD, first_name="Grace", last_name="Hopper", email="Grace@Navy.example",
        phone="(212) 555-0142", value="1200",
    )  # fmt: skip
    response = manager_client.post(ADD, data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    lead = Lead.objects.get(first_name="Grace")
    assert (lead.email, lead.phone, lead.owner, lead.created_by) == (
        "grace@navy.example", "+12125550142", manager, manager,
    )  # fmt: skip
    assert lead.stage.name == "New Lead" and lead.source.name == "Manual"
    assert kinds(lead) == ["created"]


def test_adding_a_duplicate_is_refused_on_the_form(manager_client):
    LeadFactory(email="dup@example.com")
    data = page_form_data(manager_client, ADD, first_name="Dup", email="dup@example.com")
    response = manager_client.post(ADD, data)
    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    assert Lead.objects.filter(email="dup@example.com").count() == 1


@pytest.mark.parametrize("activities", [5, 80])
def test_the_lead_page_runs_a_fixed_number_of_queries(
    manager_client, django_assert_max_num_queries, activities
):
    lead = LeadFactory()
    ActivityFactory.create_batch(activities, lead=lead)
    with django_assert_max_num_queries(12):
        assert manager_client.get(change_url(lead)).status_code == 200


def test_the_lead_page_shows_only_the_latest_activities(manager_client, lead):
    ActivityFactory.create_batch(55, lead=lead)
    response = manager_client.get(change_url(lead))
    (inline,) = response.context["inline_admin_formsets"]
    shown = [form.instance.pk for form in inline.formset.forms]
    newest = list(
        Activity.objects.filter(lead=lead).order_by("-occurred_at", "-id").values_list("pk", flat=True)
    )
    assert shown == newest[:50]
    assert f"?lead={lead.pk}" in response.content.decode()


# --- deleting is a soft delete -------------------------------------------------------------


def test_the_delete_page_soft_deletes(manager_client, manager, lead):
    url = reverse("admin:leads_lead_delete", args=[lead.pk])
    assert "can be restored" in manager_client.get(url).content.decode()
    response = manager_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.deleted_at is not None
    assert kinds(lead) == ["deleted"]
    assert Activity.objects.get(lead=lead).actor == manager


def test_a_deleted_lead_is_read_only_until_restored(manager_client, manager, lead):
    services.delete_lead(lead=lead, actor=manager)
    page = manager_client.get(change_url(lead))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert manager_client.post(change_url(lead), {"first_name": "X"}).status_code == 403


# --- bulk actions ------------------------------------------------------------------------


def test_django_hard_delete_action_is_not_offered(manager_client, lead):
    actions = manager_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    names = [name for name, _ in actions]
    assert "delete_selected" not in names
    assert {"move_to_stage", "reassign_owner", "soft_delete", "restore"} <= set(names)


def test_move_to_stage_asks_for_the_stage_then_moves_each_lead(manager_client, manager):
    leads = LeadFactory.create_batch(3)
    page = run_action(manager_client, "move_to_stage", leads)
    assert page.status_code == 200
    assert "stage" in page.context["form"].fields

    won = stage_named("Won")
    response = run_action(manager_client, "move_to_stage", leads, stage=won.pk)
    assert response.status_code == 302
    for lead in leads:
        moved = Lead.objects.get(pk=lead.pk)
        assert moved.stage == won and moved.version == lead.version + 1
        activity = Activity.objects.get(lead=lead)
        assert (activity.kind, activity.actor, activity.data["to"]) == ("stage_changed", manager, "Won")
    assert "Moved 3 leads to Won." in texts(response)


def test_moving_to_lost_needs_a_reason(manager_client):
    lead = LeadFactory()
    response = run_action(manager_client, "move_to_stage", [lead], stage=stage_named("Lost").pk)
    assert response.status_code == 200
    assert "lost_reason" in response.context["form"].errors
    assert kinds(lead) == []

    response = run_action(
        manager_client, "move_to_stage", [lead], stage=stage_named("Lost").pk, lost_reason="No budget"
    )
    assert response.status_code == 302
    assert Lead.objects.get(pk=lead.pk).lost_reason == "No budget"
    assert Activity.objects.get(lead=lead).data["lost_reason"] == "No budget"


def test_one_refused_lead_does_not_stop_the_others(manager_client):
    already = LeadFactory(stage=stage_named("Won"), first_name="Already")
    others = LeadFactory.create_batch(2)
    response = run_action(manager_client, "move_to_stage", [already, *others], stage=stage_named("Won").pk)
    assert response.status_code == 302
    assert kinds(already) == []
    assert all(kinds(lead) == ["stage_changed"] for lead in others)
    messages = texts(response)
    assert "Moved 2 leads to Won." in messages
    assert any("Could not move 1 lead" in text and "Already" in text for text in messages)


def test_reassign_gives_leads_to_someone_or_to_the_pool(manager_client, manager, other_sales):
    leads = LeadFactory.create_batch(2)
    page = run_action(manager_client, "reassign_owner", leads)
    assert page.status_code == 200
    # The owner is picked by autocomplete, never from a select listing every user.
    assert "admin-autocomplete" in page.content.decode()

    response = run_action(manager_client, "reassign_owner", leads, owner=other_sales.pk)
    assert response.status_code == 302
    for lead in leads:
        assert Lead.objects.get(pk=lead.pk).owner == other_sales
        activity = Activity.objects.get(lead=lead)
        assert (activity.kind, activity.actor, activity.data["to_id"]) == (
            "owner_changed",
            manager,
            other_sales.pk,
        )

    run_action(manager_client, "reassign_owner", leads, unassign="on")
    assert all(Lead.objects.get(pk=lead.pk).owner is None for lead in leads)
    assert all(kinds(lead) == ["owner_changed", "owner_changed"] for lead in leads)


def test_reassign_needs_an_owner_or_unassign(manager_client, lead):
    response = run_action(manager_client, "reassign_owner", [lead], owner="")
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert kinds(lead) == []


def test_soft_delete_and_restore_actions(manager_client, manager):
    leads = LeadFactory.create_batch(2)
    response = run_action(manager_client, "soft_delete", leads)
    assert response.status_code == 302
    assert Lead.objects.filter(pk__in=[lead.pk for lead in leads], deleted_at__isnull=False).count() == 2
    assert all(kinds(lead) == ["deleted"] for lead in leads)

    response = run_action(manager_client, "restore", leads, query="?state=deleted")
    assert response.status_code == 302
    assert Lead.objects.live().filter(pk__in=[lead.pk for lead in leads]).count() == 2
    assert all(kinds(lead) == ["deleted", "restored"] for lead in leads)
    assert all(a.actor == manager for a in Activity.objects.filter(lead__in=leads))


def test_restore_reports_a_lead_whose_email_was_taken_meanwhile(manager_client, manager):
    gone = services.delete_lead(lead=LeadFactory(email="same@example.com"), actor=manager)
    LeadFactory(email="same@example.com")
    response = run_action(manager_client, "restore", [gone], query="?state=deleted")
    assert response.status_code == 302
    assert Lead.objects.get(pk=gone.pk).deleted_at is not None
    assert any("Could not restore 1 lead" in text for text in texts(response))


def test_an_action_refuses_too_many_leads(manager_client, monkeypatch):
    monkeypatch.setattr("leads.admin.MAX_LEADS_PER_ACTION", 2)
    leads = LeadFactory.create_batch(3)
    response = run_action(manager_client, "soft_delete", leads)
    assert response.status_code == 302
    assert Lead.objects.live().count() == 3
    assert any("at most 2 leads" in text for text in texts(response))


# --- stages, sources, activities -----------------------------------------------------------


def test_stage_list_counts_live_leads_and_edits_order(manager_client, manager):
    LeadFactory.create_batch(2, stage=stage_named("Won"))
    services.delete_lead(lead=LeadFactory(stage=stage_named("Won")), actor=manager)
    response = manager_client.get(reverse("admin:leads_stage_changelist"))
    won = next(stage for stage in response.context["cl"].result_list if stage.name == "Won")
    assert won.live_leads == 2


def test_deleting_a_stage_that_leads_use_archives_it(admin_client_):
    stage = stage_named("No Response")
    LeadFactory(stage=stage)
    url = reverse("admin:leads_stage_delete", args=[stage.pk])
    assert "archived instead" in admin_client_.get(url).content.decode()
    response = admin_client_.post(url, {"post": "yes"})
    assert response.status_code == 302
    stage.refresh_from_db()
    assert stage.archived
    assert any("archived instead of deleted" in text for text in texts(response))


def test_deleting_an_unused_stage_deletes_it(admin_client_):
    stage = Stage.objects.create(name="Unused", position=99)
    response = admin_client_.post(reverse("admin:leads_stage_delete", args=[stage.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Stage.objects.filter(pk=stage.pk).exists()


def test_deleting_a_source_that_leads_use_archives_it(admin_client_):
    source = Source.objects.get(name="Facebook")
    LeadFactory(source=source)
    url = reverse("admin:leads_source_delete", args=[source.pk])
    assert "1 lead uses it, so it will be archived instead" in admin_client_.get(url).content.decode()
    response = admin_client_.post(url, {"post": "yes"})
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.archived
    assert any("not offered for new leads" in text for text in texts(response))


def test_an_unused_source_can_be_deleted(admin_client_):
    source = Source.objects.create(name="Trade show")
    response = admin_client_.post(reverse("admin:leads_source_delete", args=[source.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Source.objects.filter(pk=source.pk).exists()


def test_bulk_delete_of_stages_archives_the_used_ones(admin_client_):
    used, unused = stage_named("Reached Out"), Stage.objects.create(name="Spare", position=70)
    LeadFactory(stage=used)
    response = admin_client_.post(
        reverse("admin:leads_stage_changelist"),
        {"action": "retire_selected", "index": "0", ACTION_CHECKBOX_NAME: [used.pk, unused.pk]},
    )
    assert response.status_code == 302
    assert Stage.objects.get(pk=used.pk).archived
    assert not Stage.objects.filter(pk=unused.pk).exists()
    assert {"Deleted 1 unused stage."} <= set(texts(response))


def test_stage_order_is_edited_in_the_list(manager_client):
    stages = list(Stage.objects.order_by("position", "id"))
    data = {"form-TOTAL_FORMS": len(stages), "form-INITIAL_FORMS": len(stages), "_save": "Save"}
    for i, stage in enumerate(stages):
        data.update({f"form-{i}-id": stage.pk, f"form-{i}-position": stage.position})
        data[f"form-{i}-archived"] = "on" if stage.archived else ""
    data["form-0-position"] = 999
    response = manager_client.post(reverse("admin:leads_stage_changelist"), data)
    assert response.status_code == 302
    assert Stage.objects.get(pk=stages[0].pk).position == 999


def test_archiving_the_last_board_stage_is_refused_with_a_message(manager_client):
    Stage.objects.exclude(name="New Lead").update(archived=True)
    stage = stage_named("New Lead")
    url = reverse("admin:leads_stage_change", args=[stage.pk])
    data = {"name": stage.name, "position": stage.position, "kind": stage.kind, "archived": "on"}
    response = manager_client.post(url, data)
    assert response.status_code == 200
    assert "archived" in response.context["adminform"].form.errors
    assert not Stage.objects.get(pk=stage.pk).archived

    listed = {
        "form-TOTAL_FORMS": 1, "form-INITIAL_FORMS": 1, "_save": "Save",
        "form-0-id": stage.pk, "form-0-position": stage.position, "form-0-archived": "on",
    }  # fmt: skip
    response = manager_client.post(reverse("admin:leads_stage_changelist") + "?archived__exact=0", listed)
    assert response.status_code == 302
    assert any("at least one stage" in text for text in texts(response))
    assert not Stage.objects.get(pk=stage.pk).archived


def test_the_activity_log_is_read_only(manager_client, admin_client_, lead):
    activity = ActivityFactory(lead=lead, body="Called twice")
    other = ActivityFactory(body="Elsewhere")
    listing = manager_client.get(reverse("admin:leads_activity_changelist"), {"lead": lead.pk})
    assert [row.pk for row in listing.context["cl"].result_list] == [activity.pk]
    assert other.body not in listing.content.decode()
    for client in (manager_client, admin_client_):
        assert client.get(reverse("admin:leads_activity_add")).status_code == 403
        assert (
            client.post(reverse("admin:leads_activity_change", args=[activity.pk]), {"body": "x"}).status_code
            == 403
        )
        assert client.get(reverse("admin:leads_activity_delete", args=[activity.pk])).status_code == 403


def test_the_activity_log_queries_stay_fixed(manager_client, django_assert_max_num_queries):
    for lead in LeadFactory.create_batch(20):
        ActivityFactory.create_batch(3, lead=lead)
    with django_assert_max_num_queries(8):
        assert manager_client.get(reverse("admin:leads_activity_changelist")).status_code == 200


def test_managers_group_can_use_the_lead_admin_without_being_superuser(manager):
    assert manager.role == Role.MANAGER and not manager.is_superuser
    assert manager.has_perm("leads.change_lead") and manager.has_perm("leads.view_activity")
