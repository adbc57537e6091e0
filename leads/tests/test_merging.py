"""Possible duplicates, merging two leads (service, page, admin action) and undoing a merge."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads import merging, selectors, services
from leads.events import lead_changed
from leads.models import Activity, Attachment, FollowUp, Lead, LeadMerge, Source
from leads.tests.factories import ActivityFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def announced():
    events = []

    def record(sender, event, lead_id, actor_id, payload, **kwargs):
        events.append((event, lead_id, payload))

    lead_changed.connect(record, weak=False, dispatch_uid="test_merging.announced")
    yield events
    lead_changed.disconnect(dispatch_uid="test_merging.announced")


def matches(lead, user):
    return {dup.lead.pk: dup.reasons for dup in merging.possible_duplicates(lead, user=user)}


def attach(lead, name="cv.pdf"):
    return Attachment.objects.create(
        lead=lead, file=f"attachments/test/{name}", filename=name, content_type="application/pdf", size=10
    )


def follow_up(lead, title="Call back"):
    return FollowUp.objects.create(
        lead=lead, title=title, assigned_to=lead.owner, due_at=timezone.now() + timedelta(days=1)
    )


def counts(lead):
    return (
        Activity.objects.filter(lead=lead).exclude(kind__in=["merged", "merge_undone"]).count(),
        Attachment.objects.filter(lead=lead).count(),
        FollowUp.objects.filter(lead=lead).count(),
    )


@pytest.fixture
def pair(sales):
    """Two records of one person: the survivor (older) and a later duplicate with other details."""
    survivor = LeadFactory(
        first_name="Ada", last_name="Lovelace", company="Analytical", email="ada@old.example", owner=sales
    )
    duplicate = LeadFactory(
        first_name="ada",
        last_name="LOVELACE",
        company="analytical",
        email="ada.lovelace@new.example",
        phone="+14155550123",
        title="Countess",
        owner=sales,
    )
    ActivityFactory.create_batch(2, lead=survivor)
    ActivityFactory.create_batch(3, lead=duplicate)
    return survivor, duplicate


# --- possible duplicates -------------------------------------------------------------------------


def test_same_name_and_company_matches_in_any_case(pair, manager):
    survivor, duplicate = pair
    assert matches(survivor, manager) == {duplicate.pk: ["Same name and company"]}


def test_same_name_other_company_or_no_company_does_not_match(manager):
    lead = LeadFactory(first_name="Grace", last_name="Hopper", company="Navy", email="g@navy.example")
    LeadFactory(first_name="Grace", last_name="Hopper", company="Univac", email="g@univac.example")
    assert matches(lead, manager) == {}
    alone = LeadFactory(first_name="Alan", last_name="Turing", company="", email="a@one.example")
    LeadFactory(first_name="Alan", last_name="Turing", company="", email="a@two.example")
    assert matches(alone, manager) == {}


def test_same_email_domain_and_last_name_matches(manager):
    lead = LeadFactory(first_name="Marie", last_name="Curie", email="marie@radium.example", company="A")
    pierre = LeadFactory(first_name="Pierre", last_name="curie", email="pierre@RADIUM.example", company="B")
    LeadFactory(first_name="Irene", last_name="Joliot", email="irene@radium.example")  # other last name
    LeadFactory(first_name="Eve", last_name="Curie", email="eve@elsewhere.example")  # other domain
    assert matches(lead, manager) == {pierre.pk: ["Same e-mail domain (radium.example) and last name"]}


def test_phone_written_differently_matches(manager):
    lead = LeadFactory(first_name="Nikola", last_name="Tesla", email="", phone="+14155550123", company="")
    # Stored phones are always E.164; the same local number under another country or trunk
    # prefix is still worth a look (the last PHONE_MATCH_DIGITS digits agree).
    other = LeadFactory(first_name="N.", last_name="T.", email="", phone="+5214155550123", company="")
    LeadFactory(first_name="Someone", last_name="Else", email="", phone="+14155550199", company="")
    assert matches(lead, manager) == {other.pk: ["Same phone number, written differently"]}
    assert matches(other, manager) == {lead.pk: ["Same phone number, written differently"]}


def test_duplicates_leave_out_the_lead_itself_deleted_and_invisible_leads(
    pair, manager, other_sales, settings
):
    survivor, duplicate = pair
    deleted = LeadFactory(first_name="Ada", last_name="Lovelace", company="Analytical")
    services.delete_lead(lead=deleted, actor=manager)
    assert set(matches(survivor, manager)) == {duplicate.pk}
    settings.LEAD_SHARING = "private"
    assert matches(survivor, other_sales) == {}


def test_duplicates_are_capped_and_take_one_query(manager, django_assert_num_queries):
    lead = LeadFactory(first_name="Jo", last_name="Doe", company="Acme", phone="+14155550123")
    LeadFactory.create_batch(15, first_name="Jo", last_name="Doe", company="ACME")
    with django_assert_num_queries(1):
        found = merging.possible_duplicates(lead, user=manager)
    assert len(found) == merging.MAX_DUPLICATES


# --- merging -------------------------------------------------------------------------------------


def test_merge_applies_choices_and_moves_files_and_follow_ups(
    pair, manager, announced, django_capture_on_commit_callbacks
):
    survivor, duplicate = pair
    files = [attach(duplicate, "a.pdf"), attach(duplicate, "b.pdf")]
    own_file = attach(survivor, "mine.pdf")
    task = follow_up(duplicate)
    versions = (survivor.version, duplicate.version)

    with django_capture_on_commit_callbacks(execute=True):
        merge = merging.merge_leads(
            survivor=survivor,
            merged=duplicate,
            actor=manager,
            field_choices={"email": "merged", "phone": "merged", "title": "merged", "company": "survivor"},
        )

    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    # The e-mail moved from the (now deleted) duplicate to the survivor under the live-unique constraint.
    assert survivor.email == "ada.lovelace@new.example"
    assert survivor.phone == "+14155550123"
    assert survivor.title == "Countess"
    assert survivor.company == "Analytical"
    assert duplicate.deleted_at is not None and duplicate.merged_into == survivor
    assert (survivor.version, duplicate.version) == (versions[0] + 1, versions[1] + 1)
    assert set(Attachment.objects.filter(lead=survivor)) == {*files, own_file}
    assert list(FollowUp.objects.filter(lead=survivor)) == [task]
    assert merge.moved == {"attachments": [f.pk for f in files], "follow_ups": [task.pk]}
    assert merge.replaced["email"] == {"from": "ada@old.example", "to": "ada.lovelace@new.example"}
    assert "company" not in merge.replaced

    record = Activity.objects.get(lead=survivor, kind=Activity.Kind.MERGED)
    assert record.actor == manager
    assert record.data["merged_id"] == duplicate.pk
    assert record.data["replaced"]["title"] == {"from": "", "to": "Countess"}
    assert "Ada Lovelace" not in record.body or f"#{duplicate.pk}" in record.body
    gone = Activity.objects.get(lead=duplicate, kind=Activity.Kind.MERGED)
    assert gone.data["merged_into"] == survivor.pk

    assert ("lead.merged", survivor.pk, {"merged_id": duplicate.pk, "merge_id": merge.pk}) in announced
    assert ("lead.deleted", duplicate.pk, {}) in announced


def test_survivor_timeline_shows_the_merged_leads_activities(pair, manager):
    survivor, duplicate = pair
    theirs = set(Activity.objects.filter(lead=duplicate).values_list("pk", flat=True))
    mine = set(Activity.objects.filter(lead=survivor).values_list("pk", flat=True))
    merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    timeline = list(selectors.lead_timeline(survivor))
    shown = {activity.pk for activity in timeline}
    assert theirs | mine <= shown
    # One "merged" record: the merged lead's own "merged into" note is not repeated here.
    assert [a.lead_id for a in timeline if a.kind == Activity.Kind.MERGED] == [survivor.pk]


def test_timeline_follows_a_chain_of_merges(manager):
    first, second, third = LeadFactory.create_batch(3)
    note = ActivityFactory(lead=first)
    merging.merge_leads(survivor=second, merged=first, actor=manager, field_choices={})
    merging.merge_leads(survivor=third, merged=second, actor=manager, field_choices={})
    assert note in list(selectors.lead_timeline(third))


def test_timeline_queries_are_one_per_merge_level_plus_one(pair, manager, django_assert_num_queries):
    survivor, duplicate = pair
    with django_assert_num_queries(2):  # no merged leads, the activities
        list(selectors.lead_timeline(survivor))
    merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    with django_assert_num_queries(3):  # the merged lead, nothing merged into it, the activities
        timeline = list(selectors.lead_timeline(survivor))
    assert {entry.lead_id for entry in timeline} == {survivor.pk, duplicate.pk}


def test_merge_validates_like_an_edit(pair, manager):
    survivor, duplicate = pair
    inactive = UserFactory(is_active=False)
    Lead.objects.filter(pk=duplicate.pk).update(owner=inactive)
    with pytest.raises(ValidationError) as refused:
        merging.merge_leads(
            survivor=survivor, merged=duplicate, actor=manager, field_choices={"owner": "merged"}
        )
    assert "owner" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        merging.merge_leads(
            survivor=survivor, merged=duplicate, actor=manager, field_choices={"stage": "merged"}
        )
    assert "stage" in refused.value.message_dict
    assert Lead.objects.get(pk=duplicate.pk).deleted_at is None


def test_sales_cannot_merge(pair, sales):
    survivor, duplicate = pair
    with pytest.raises(PermissionDenied):
        merging.merge_leads(survivor=survivor, merged=duplicate, actor=sales, field_choices={})


def test_merging_into_itself_or_twice_is_refused(pair, manager):
    survivor, duplicate = pair
    with pytest.raises(ValidationError, match="into itself"):
        merging.merge_leads(survivor=survivor, merged=survivor, actor=manager, field_choices={})
    merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    with pytest.raises(ValidationError, match="already merged"):
        merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    with pytest.raises(ValidationError, match="already merged"):
        merging.merge_leads(survivor=duplicate, merged=survivor, actor=manager, field_choices={})


# --- undo ----------------------------------------------------------------------------------------


def test_undo_restores_both_leads_and_loses_nothing(
    pair, manager, announced, django_capture_on_commit_callbacks
):
    survivor, duplicate = pair
    attach(duplicate)
    follow_up(duplicate)
    attach(survivor)
    before = {lead.pk: counts(lead) for lead in pair}
    fields_before = Lead.objects.values("email", "phone", "title").get(pk=survivor.pk)
    merge = merging.merge_leads(
        survivor=survivor,
        merged=duplicate,
        actor=manager,
        field_choices={"email": "merged", "phone": "merged", "title": "merged", "value": "merged"},
    )

    with django_capture_on_commit_callbacks(execute=True):
        merging.undo_merge(merge=merge, actor=manager)

    assert {lead.pk: counts(lead) for lead in pair} == before
    assert Lead.objects.values("email", "phone", "title").get(pk=survivor.pk) == fields_before
    duplicate.refresh_from_db()
    assert duplicate.deleted_at is None and duplicate.merged_into is None
    assert duplicate.email == "ada.lovelace@new.example"
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by == manager
    for lead in pair:
        assert Activity.objects.filter(lead=lead, kind=Activity.Kind.MERGE_UNDONE).count() == 1
    shown = {a.lead_id for a in selectors.lead_timeline(survivor)}
    assert shown == {survivor.pk}
    assert ("lead.merge_undone", survivor.pk, {"merged_id": duplicate.pk, "merge_id": merge.pk}) in announced
    assert ("lead.restored", duplicate.pk, {}) in announced
    with pytest.raises(ValidationError, match="already been undone"):
        merging.undo_merge(merge=merge, actor=manager)


def test_undo_restores_foreign_key_and_decimal_values(pair, manager):
    survivor, duplicate = pair
    other_source = Source.objects.create(name="Trade show")
    Lead.objects.filter(pk=duplicate.pk).update(source=other_source, value=Decimal("1200.50"))
    merge = merging.merge_leads(
        survivor=survivor,
        merged=duplicate,
        actor=manager,
        field_choices={"source": "merged", "value": "merged"},
    )
    survivor.refresh_from_db()
    assert (survivor.source, survivor.value) == (other_source, Decimal("1200.50"))
    merging.undo_merge(merge=merge, actor=manager)
    survivor.refresh_from_db()
    assert (survivor.source.name, survivor.value) == ("Manual", Decimal("0"))


def test_undo_after_the_window_is_refused(pair, manager, settings):
    survivor, duplicate = pair
    merge = merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    LeadMerge.objects.filter(pk=merge.pk).update(created_at=timezone.now() - timedelta(days=31))
    with pytest.raises(ValidationError, match="30 days"):
        merging.undo_merge(merge=merge, actor=manager)
    assert Lead.objects.get(pk=duplicate.pk).merged_into == survivor


def test_undo_refused_when_another_lead_took_the_email(pair, manager):
    survivor, duplicate = pair
    merge = merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    LeadFactory(email="ada.lovelace@new.example")
    with pytest.raises(ValidationError, match="Cannot undo the merge"):
        merging.undo_merge(merge=merge, actor=manager)
    assert Lead.objects.get(pk=duplicate.pk).deleted_at is not None


def test_sales_cannot_undo(pair, manager, sales):
    survivor, duplicate = pair
    merge = merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    with pytest.raises(PermissionDenied):
        merging.undo_merge(merge=merge, actor=sales)


# --- pages ---------------------------------------------------------------------------------------


def merge_url(lead, other):
    return reverse("leads:merge", args=[lead.pk, other.pk])


def test_lead_page_lists_duplicates_with_a_merge_link_for_managers(pair, manager_client, client, sales):
    survivor, duplicate = pair
    page = manager_client.get(survivor.get_absolute_url()).content.decode()
    assert "Possible duplicates" in page and "Same name and company" in page
    assert merge_url(survivor, duplicate) in page
    client.force_login(sales)
    page = client.get(survivor.get_absolute_url()).content.decode()
    assert "Same name and company" in page and merge_url(survivor, duplicate) not in page


def _lead_page_with(manager, extra):
    lead = LeadFactory(first_name="Jo", last_name="Doe", company="Acme")
    LeadFactory.create_batch(extra, first_name="Jo", last_name="Doe", company="Acme")
    for other in LeadFactory.create_batch(extra):
        ActivityFactory(lead=other)
        merging.merge_leads(survivor=lead, merged=other, actor=manager, field_choices={})
    return lead


def test_lead_page_query_count_is_fixed_with_duplicates_and_merges(
    manager, manager_client, django_assert_max_num_queries
):
    small = _lead_page_with(manager, 1)
    with CaptureQueriesContext(connection) as few:
        assert manager_client.get(small.get_absolute_url()).status_code == 200
    big = _lead_page_with(manager, 12)
    # The panel adds two queries (duplicates, merges in) however many there are.
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = manager_client.get(big.get_absolute_url())
    assert response.status_code == 200
    assert response.content.decode().count("Undo merge") == 12


def test_merge_page_shows_both_leads_side_by_side(pair, manager_client, django_assert_max_num_queries):
    survivor, duplicate = pair
    with django_assert_max_num_queries(8):
        response = manager_client.get(merge_url(survivor, duplicate))
    assert response.status_code == 200
    page = response.content.decode()
    assert "ada@old.example" in page and "ada.lovelace@new.example" in page
    # The survivor has no phone: the other lead's is picked by default.
    assert f'name="keep_phone" value="{duplicate.pk}" aria-label="Phone from #{duplicate.pk}" checked' in page
    assert f'name="keep_email" value="{survivor.pk}" aria-label="E-mail from #{survivor.pk}" checked' in page


def test_merge_page_post_merges_and_redirects(pair, manager_client, django_assert_max_num_queries):
    survivor, duplicate = pair
    data = {"survivor": duplicate.pk, "keep_email": survivor.pk, f"version_{survivor.pk}": survivor.version}
    with django_assert_max_num_queries(40):
        response = manager_client.post(merge_url(survivor, duplicate), data)
    assert response.status_code == 302 and response.url == duplicate.get_absolute_url()
    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    assert survivor.merged_into == duplicate
    assert duplicate.email == "ada@old.example"
    page = manager_client.get(response.url).content.decode()
    assert "Merged Ada Lovelace into" in page and "Undo merge" in page


def test_merge_page_shows_errors_inline(pair, manager_client):
    survivor, duplicate = pair
    response = manager_client.post(merge_url(survivor, duplicate), {"survivor": 12345, "keep_email": "x"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Choose which lead stays." in page and "Pick the value of one of the two leads." in page
    assert Lead.objects.get(pk=duplicate.pk).deleted_at is None


def test_merge_page_refuses_a_stale_page(pair, manager_client, manager):
    survivor, duplicate = pair
    stale = duplicate.version
    services.update_lead(lead=duplicate, actor=manager, title="Changed meanwhile")
    response = manager_client.post(
        merge_url(survivor, duplicate), {"survivor": survivor.pk, f"version_{duplicate.pk}": stale}
    )
    assert response.status_code == 409
    assert "Changed meanwhile" in response.content.decode()
    assert Lead.objects.get(pk=duplicate.pk).deleted_at is None


def test_merge_page_permissions(pair, client, sales, other_sales, manager_client, manager, settings):
    survivor, duplicate = pair
    client.force_login(sales)
    assert client.get(merge_url(survivor, duplicate)).status_code == 403
    assert client.post(merge_url(survivor, duplicate), {"survivor": survivor.pk}).status_code == 403
    settings.LEAD_SHARING = "private"
    client.force_login(other_sales)
    assert client.get(merge_url(survivor, duplicate)).status_code == 404
    client.force_login(manager)  # manager_client is this same client
    assert client.get(merge_url(survivor, duplicate)).status_code == 200
    services.delete_lead(lead=duplicate, actor=manager)
    assert manager_client.get(merge_url(survivor, duplicate)).status_code == 404
    assert manager_client.get(merge_url(survivor, survivor)).status_code == 404
    assert Lead.objects.get(pk=survivor.pk).merged_into is None


def test_undo_button_restores_both_leads(
    pair, manager, manager_client, client, sales, django_assert_max_num_queries
):
    survivor, duplicate = pair
    merge = merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    undo_url = reverse("leads:undo_merge", args=[merge.pk])
    client.force_login(sales)
    assert client.post(undo_url).status_code == 403
    client.force_login(manager)  # manager_client is this same client
    with django_assert_max_num_queries(40):
        response = manager_client.post(undo_url)
    assert response.status_code == 302 and response.url == survivor.get_absolute_url()
    assert manager_client.get(duplicate.get_absolute_url()).status_code == 200
    response = manager_client.post(undo_url, follow=True)
    assert "already been undone" in response.content.decode()
    assert manager_client.post(reverse("leads:undo_merge", args=[999999])).status_code == 404


def test_undo_button_hidden_after_the_window(pair, manager, manager_client):
    survivor, duplicate = pair
    merge = merging.merge_leads(survivor=survivor, merged=duplicate, actor=manager, field_choices={})
    LeadMerge.objects.filter(pk=merge.pk).update(created_at=timezone.now() - timedelta(days=31))
    page = manager_client.get(survivor.get_absolute_url()).content.decode()
    assert "Merged into this lead" in page and "Undo merge" not in page


# --- admin action --------------------------------------------------------------------------------


def admin_action(client, leads):
    return client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "merge_two_selected_leads", "_selected_action": [lead.pk for lead in leads]},
    )


def test_admin_action_opens_the_merge_page_for_two_leads(pair, client, manager):
    client.force_login(manager)
    survivor, duplicate = pair
    response = admin_action(client, pair)
    assert response.status_code == 302 and response.url == merge_url(survivor, duplicate)


def test_admin_action_needs_exactly_two(pair, client, manager):
    client.force_login(manager)
    third = LeadFactory()
    response = client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "merge_two_selected_leads", "_selected_action": [pair[0].pk, pair[1].pk, third.pk]},
        follow=True,
    )
    assert "Select exactly two leads to merge (you selected 3)." in response.content.decode()
    assert not LeadMerge.objects.exists()


# --- found in review -----------------------------------------------------------------------------


def test_a_merged_lead_is_brought_back_by_undoing_the_merge_not_by_restoring_it(pair, manager):
    survivor, other = pair
    merging.merge_leads(survivor=survivor, merged=other, actor=manager, field_choices={})
    with pytest.raises(ValidationError, match="undo the merge"):
        services.restore_lead(lead=Lead.objects.get(pk=other.pk), actor=manager)
    assert Lead.objects.get(pk=other.pk).is_deleted


def test_undo_keeps_an_edit_made_after_the_merge(manager):
    a = LeadFactory(owner=manager, email="a@x.example", phone="", company="A co")
    b = LeadFactory(owner=manager, email="b@x.example", phone="", company="B co", title="CTO")
    merge = merging.merge_leads(
        survivor=a, merged=b, actor=manager, field_choices={"company": "merged", "title": "merged"}
    )
    services.update_lead(lead=Lead.objects.get(pk=a.pk), actor=manager, company="Corrected Co")
    merging.undo_merge(merge=merge, actor=manager)
    a.refresh_from_db()
    assert (a.company, a.title) == ("Corrected Co", "")  # the later edit stays; the untouched one goes back
    undone = a.activities.filter(kind=Activity.Kind.MERGE_UNDONE).first()
    assert undone.data["kept"] == {"company": "Corrected Co"}


def test_taking_the_owner_from_the_merged_lead_is_a_recorded_reassignment(sales, other_sales, manager):
    a = LeadFactory(owner=sales, email="a@x.example", phone="")
    b = LeadFactory(owner=other_sales, email="b@x.example", phone="")
    merging.merge_leads(survivor=a, merged=b, actor=manager, field_choices={"owner": "merged"})
    change = a.activities.filter(kind=Activity.Kind.OWNER_CHANGED).get()
    assert (change.data["from_id"], change.data["to_id"]) == (sales.pk, other_sales.pk)
