"""The lead page: details, edit, timeline, logging activities, reassign, claim and delete."""

import pytest
from django.urls import reverse

from leads import services
from leads.forms import form_value
from leads.models import Activity, Lead, Stage
from leads.services import EDITABLE_FIELDS
from leads.tests.factories import ActivityFactory, LeadFactory

pytestmark = pytest.mark.django_db


def url(name, lead):
    return reverse(f"leads:{name}", args=[lead.pk])


def edit_data(lead, **changes):
    """What the edit form posts for `lead` as loaded: each field, and the value it started from."""
    data = {name: form_value(lead, name) for name in EDITABLE_FIELDS}
    started = {f"initial-{name}": value for name, value in data.items()}
    return data | started | {"version": lead.version} | changes


def test_lead_page_shows_details_and_timeline_newest_first(sales_client, lead, sales):
    services.log_activity(lead=lead, actor=sales, kind="note", body="First contact went well")
    services.log_activity(
        lead=lead, actor=sales, kind="call", outcome="connected", duration_minutes=12, body="Demo booked"
    )
    response = sales_client.get(url("detail", lead))
    body = response.content.decode()
    assert response.status_code == 200
    assert lead.email in body and lead.company in body
    assert body.index("Demo booked") < body.index("First contact went well")
    assert "12 min" in body


def test_edit_records_changed_fields_on_the_timeline(sales_client, lead, sales):
    response = sales_client.post(url("edit", lead), edit_data(lead, company="Initech", value="2500"))
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.company == "Initech" and lead.version == 2
    change = lead.activities.get(kind=Activity.Kind.UPDATED)
    assert change.actor == sales
    assert change.data["changes"]["company"]["to"] == "Initech"
    assert "Initech" in sales_client.get(url("detail", lead)).content.decode()


def test_edit_errors_show_inline(sales_client, lead):
    response = sales_client.post(url("edit", lead), edit_data(lead, email="not-an-email", phone=""))
    assert response.status_code == 400
    assert "Enter a valid e-mail address." in response.content.decode()
    assert Lead.objects.get(pk=lead.pk).email == lead.email


def test_stale_edit_is_refused_and_names_only_what_changed(sales_client, lead, manager):
    loaded = edit_data(lead, title="CTO")  # the page as the salesperson loaded it, then typed in
    services.update_lead(lead=lead, actor=manager, company="Changed Meanwhile")
    services.move_lead(lead=lead, stage=Stage.objects.get(name="Won"), actor=manager)
    response = sales_client.post(url("edit", lead), loaded)
    assert response.status_code == 409
    assert f"changed by {manager}" in response.content.decode()
    changes = response.context["conflict"]["changes"]
    assert changes == [{"field": "Company", "now": "Changed Meanwhile"}]
    lead.refresh_from_db()
    assert lead.title == "" and lead.company == "Changed Meanwhile"

    # Saving again from the conflict page applies the edit to the current version.
    again = {k: v[0] for k, v in response.context["edit_form"].data.lists()}
    assert sales_client.post(url("edit", lead), again).status_code == 302
    lead.refresh_from_db()
    assert lead.title == "CTO"


def test_log_note_call_and_meeting(sales_client, lead, sales):
    for data in (
        {"kind": "note", "body": "Sent the pricing sheet"},
        {"kind": "call", "outcome": "no_answer", "duration_minutes": "1"},
        {"kind": "meeting", "body": "On-site visit", "duration_minutes": "45"},
    ):
        assert sales_client.post(url("log_activity", lead), data).status_code == 302
    kinds = list(lead.activities.filter(actor=sales).values_list("kind", flat=True))
    assert sorted(kinds) == ["call", "meeting", "note"]
    assert lead.activities.get(kind="call").data == {"outcome": "no_answer", "duration_minutes": 1}


def test_activity_errors_show_inline(sales_client, lead):
    response = sales_client.post(url("log_activity", lead), {"kind": "call", "body": "?"})
    assert response.status_code == 400 and "Choose how the call went." in response.content.decode()
    response = sales_client.post(url("log_activity", lead), {"kind": "stage_changed", "body": "forged"})
    assert response.status_code == 400
    assert not lead.activities.exists()


def test_manager_reassigns_and_timeline_says_so(manager_client, lead, other_sales, manager):
    response = manager_client.post(url("reassign", lead), {"owner": other_sales.pk, "version": lead.version})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.owner == other_sales
    change = lead.activities.get(kind=Activity.Kind.OWNER_CHANGED)
    assert change.actor == manager and change.data["to_id"] == other_sales.pk


def test_sales_cannot_reassign(sales_client, lead, other_sales):
    response = sales_client.post(url("reassign", lead), {"owner": other_sales.pk})
    assert response.status_code == 403
    assert Lead.objects.get(pk=lead.pk).owner != other_sales


def test_sales_claims_an_unassigned_lead(sales_client, sales):
    pool = LeadFactory(owner=None)
    page = sales_client.get(url("detail", pool)).content.decode()
    assert "Claim this lead" in page
    assert sales_client.post(url("claim", pool), {"version": pool.version}).status_code == 302
    pool.refresh_from_db()
    assert pool.owner == sales
    assert pool.activities.get(kind=Activity.Kind.OWNER_CHANGED).data["claimed"] is True


def test_manager_deletes_after_confirmation_and_lead_leaves_the_board(manager_client, lead):
    assert "Delete" in manager_client.get(url("delete", lead)).content.decode()
    response = manager_client.post(url("delete", lead), {"reason": "Test entry"})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.deleted_at is not None
    assert lead.activities.get(kind=Activity.Kind.DELETED).body == "Test entry"
    assert manager_client.get(url("detail", lead)).status_code == 404


def test_sales_cannot_delete(sales_client, lead):
    assert sales_client.get(url("delete", lead)).status_code == 403
    assert sales_client.post(url("delete", lead)).status_code == 403
    assert Lead.objects.get(pk=lead.pk).deleted_at is None


def test_read_only_viewer_sees_no_edit_forms(sales_client, other_sales):
    theirs = LeadFactory(owner=other_sales)
    body = sales_client.get(url("detail", theirs)).content.decode()
    assert "Save changes" not in body and "Log it" not in body
    assert sales_client.post(url("log_activity", theirs), {"kind": "note", "body": "x"}).status_code == 403


@pytest.mark.parametrize("activity_count", [5, 500])
def test_lead_page_query_count_is_fixed(manager_client, activity_count, django_assert_max_num_queries):
    lead = LeadFactory()
    ActivityFactory.create_batch(activity_count, lead=lead, actor=lead.owner)
    LeadFactory.create_batch(3)
    # +1: the notification bell's unread count in the header. +1: the Files panel's list.
    # +2: the Follow-ups panel (its open follow-ups; the assignee menu, shown to managers).
    # +2: the duplicates panel (merges into this lead; possible duplicates).
    # +1: the timeline's lookup of leads merged into this one.
    with django_assert_max_num_queries(9 + 1 + 1 + 2 + 2 + 1):
        response = manager_client.get(url("detail", lead))
    assert response.status_code == 200


def test_lead_page_404_for_unknown_or_deleted(sales_client, lead, manager):
    assert sales_client.get(reverse("leads:detail", args=[999999])).status_code == 404
    services.delete_lead(lead=lead, actor=manager)
    assert sales_client.get(url("detail", lead)).status_code == 404


def test_stage_select_lists_only_live_stages(sales_client, lead):
    Stage.objects.filter(name="No Response").update(archived=True)
    assert "No Response" not in sales_client.get(url("detail", lead)).content.decode()


def test_a_read_only_viewer_posting_an_edit_gets_403_not_a_form(sales_client, other_sales):
    theirs = LeadFactory(owner=other_sales)
    response = sales_client.post(url("edit", theirs), edit_data(theirs, email="not-an-email"))
    assert response.status_code == 403
    assert "Save changes" not in response.content.decode()


def test_the_move_menu_suggests_the_next_stage_and_omits_the_current_one(sales_client, lead):
    body = sales_client.get(url("detail", lead)).content.decode()
    menu = body[body.index('id="id_move_stage"') :]
    menu = menu[: menu.index("</select>")]
    assert ">New Lead<" not in menu  # where the lead already is
    assert "selected>Reached Out<" in menu
