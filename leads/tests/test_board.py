"""The board page: columns, filters, quick add, moves by plain POST and by fetch, fixed query counts."""

import pytest
from django.test import Client
from django.urls import reverse

from leads.models import Activity, Lead, Source, Stage
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db
BOARD = reverse("leads:board")


def stage(name):
    return Stage.objects.get(name=name)


def move_url(lead):
    return reverse("leads:move", args=[lead.pk])


def make_leads(count, owner, **fields):
    """Many leads at once, straight to the table: the board's cost must not depend on them."""
    stages = list(Stage.objects.all())
    manual = Source.objects.get(name="Manual")
    Lead.objects.bulk_create(
        Lead(
            first_name=f"Bulk{i}",
            last_name="Lead",
            email=f"bulk{i}@example.com",
            source=manual,
            owner=owner,
            stage=stages[i % len(stages)],
            value=i,
            **fields,
        )
        for i in range(count)
    )


def test_anonymous_is_sent_to_login(client):
    response = client.get(BOARD)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_home_redirects_to_board(sales_client):
    response = sales_client.get("/")
    assert response.status_code == 302 and response["Location"] == BOARD


def test_board_shows_one_column_per_live_stage_in_order(sales_client, lead):
    Stage.objects.filter(name="No Response").update(archived=True)
    response = sales_client.get(BOARD)
    assert response.status_code == 200
    names = [column.stage.name for column in response.context["columns"]]
    assert names == ["New Lead", "Reached Out", "In Progress", "Won", "Lost"]
    assert lead.name in response.content.decode()


def test_column_shows_count_and_value_of_all_its_leads(sales_client, sales):
    LeadFactory.create_batch(3, owner=sales, value=100)
    column = response_column(sales_client.get(BOARD), "New Lead")
    assert column.count == 3
    assert column.total_value == 300


def response_column(response, name):
    return next(c for c in response.context["columns"] if c.stage.name == name)


def test_columns_page_25_cards_with_show_more(sales_client, sales, settings):
    make_leads(60, sales)  # 10 per stage
    settings.BOARD_COLUMN_PAGE_SIZE = 4
    new_lead = stage("New Lead")
    response = sales_client.get(BOARD)
    column = response_column(response, "New Lead")
    assert column.count == 10 and len(column.leads) == 4 and column.has_more
    third = response_column(sales_client.get(BOARD, {f"page_{new_lead.pk}": 3}), "New Lead")
    assert len(third.leads) == 2 and not third.has_more and third.has_previous
    # A page past the end shows the last page rather than an empty column.
    assert response_column(sales_client.get(BOARD, {f"page_{new_lead.pk}": 99}), "New Lead").page == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"query": "zelda"}, {"Zelda Fitzgerald"}),
        ({"query": "acme"}, {"Zelda Fitzgerald", "Ada Lovelace"}),
        ({"source": "referral"}, {"Ada Lovelace"}),
        ({"owner": "me"}, {"Zelda Fitzgerald"}),
        ({"owner": "unassigned"}, {"Grace Hopper"}),
        ({"stage": "In Progress"}, {"Ada Lovelace"}),
    ],
)
def test_filters_narrow_the_board(sales_client, sales, other_sales, params, expected):
    LeadFactory(first_name="Zelda", last_name="Fitzgerald", company="Acme", owner=sales)
    LeadFactory(
        first_name="Ada",
        last_name="Lovelace",
        company="Acme Labs",
        owner=other_sales,
        source=Source.objects.get(name="Referral"),
        stage=stage("In Progress"),
    )
    LeadFactory(first_name="Grace", last_name="Hopper", company="Navy", owner=None)
    response = sales_client.get(BOARD, params)
    shown = {lead.name for column in response.context["columns"] for lead in column.leads}
    assert shown == expected


def test_stage_filter_shows_only_that_column(sales_client):
    response = sales_client.get(BOARD, {"stage": "won"})
    assert [c.stage.name for c in response.context["columns"]] == ["Won"]


def test_bad_filter_value_is_explained_not_an_error_page(sales_client, lead):
    response = sales_client.get(BOARD, {"source": "Carrier Pigeon"})
    assert response.status_code == 200
    assert "Unknown source “Carrier Pigeon”" in response.content.decode()


def test_filters_are_kept_in_move_forms_for_the_redirect(sales_client, lead):
    response = sales_client.get(BOARD, {"query": lead.first_name})
    assert f'name="next" value="/board/?query={lead.first_name}"' in response.content.decode()


def test_move_by_plain_post_redirects_back_with_filters_and_records_who(sales_client, sales, lead):
    target = stage("Reached Out")
    response = sales_client.post(
        move_url(lead), {"stage": target.pk, "version": lead.version, "next": "/board/?owner=me"}
    )
    assert response.status_code == 302 and response["Location"] == "/board/?owner=me"
    lead.refresh_from_db()
    assert lead.stage == target and lead.version == 2
    activity = lead.activities.get(kind=Activity.Kind.STAGE_CHANGED)
    assert (activity.actor, activity.data["from"], activity.data["to"]) == (sales, "New Lead", "Reached Out")
    follow = sales_client.get(response["Location"])
    assert f"Moved {lead.name} to Reached Out." in follow.content.decode()


def test_move_by_fetch_answers_json_with_the_new_card(sales_client, lead):
    response = sales_client.post(
        move_url(lead),
        {"stage": stage("In Progress").pk, "version": lead.version},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] and data["lead"]["stage"] == "In Progress" and data["lead"]["version"] == 2
    assert f'id="lead-{lead.pk}"' in data["card_html"]


def test_move_requires_csrf(sales, lead):
    client = Client(enforce_csrf_checks=True)
    client.force_login(sales)
    response = client.post(move_url(lead), {"stage": stage("Won").pk, "version": lead.version})
    assert response.status_code == 403
    lead.refresh_from_db()
    assert lead.stage.name == "New Lead"


def test_stale_move_is_refused_with_who_changed_it(sales_client, manager, lead):
    from leads import services

    services.move_lead(lead=lead, stage=stage("Reached Out"), actor=manager)
    response = sales_client.post(
        move_url(lead), {"stage": stage("Won").pk, "version": 1}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 409
    assert f"changed by {manager}" in response.json()["error"]
    assert response.json()["lead"]["stage"] == "Reached Out"
    lead.refresh_from_db()
    assert lead.stage.name == "Reached Out"

    plain = sales_client.post(move_url(lead), {"stage": stage("Won").pk, "version": 1}, follow=True)
    assert f"changed by {manager}" in plain.content.decode()


def test_move_to_lost_without_reason_asks_for_it_on_a_page(sales_client, lead):
    lost = stage("Lost")
    response = sales_client.post(move_url(lead), {"stage": lost.pk, "version": lead.version})
    assert response.status_code == 400
    assert "Why was it lost?" in response.content.decode()
    response = sales_client.post(
        move_url(lead), {"stage": lost.pk, "version": lead.version, "lost_reason": "Chose a competitor"}
    )
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.stage == lost and lead.lost_reason == "Chose a competitor"


def test_move_page_get_offers_the_full_form(sales_client, lead):
    response = sales_client.get(move_url(lead), {"stage": stage("Lost").pk})
    assert response.status_code == 200 and "Why was it lost?" in response.content.decode()


def test_invisible_lead_is_404_on_every_board_door(sales_client, other_sales, settings):
    settings.LEAD_SHARING = "private"
    hidden = LeadFactory(owner=other_sales)
    for name in ("move", "edit", "log_activity", "reassign", "claim", "delete"):
        url = reverse(f"leads:{name}", args=[hidden.pk])
        assert sales_client.post(url, {"stage": stage("Won").pk}).status_code == 404, name
    for name in ("detail", "move", "delete"):
        assert sales_client.get(reverse(f"leads:{name}", args=[hidden.pk])).status_code == 404, name
    assert hidden.name not in sales_client.get(BOARD).content.decode()


def test_read_sharing_shows_others_leads_but_refuses_their_moves(sales_client, other_sales):
    theirs = LeadFactory(owner=other_sales)
    board = sales_client.get(BOARD).content.decode()
    assert theirs.name in board
    assert f'action="{move_url(theirs)}"' not in board  # no move form offered on their card
    response = sales_client.post(
        move_url(theirs),
        {"stage": stage("Won").pk, "version": theirs.version},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 403
    assert Lead.objects.get(pk=theirs.pk).stage.name == "New Lead"


def test_quick_add_creates_a_lead_owned_by_the_creator(sales_client, sales):
    response = sales_client.post(
        reverse("leads:quick_add"),
        {
            "name": "Katherine Johnson",
            "email": "KJ@Nasa.example",
            "phone": "",
            "company": "NASA",
            "source": Source.objects.get(name="Referral").pk,
            "next": "/board/",
        },
    )
    assert response.status_code == 302
    lead = Lead.objects.get(email="kj@nasa.example")
    assert (lead.first_name, lead.last_name, lead.owner, lead.source.name) == (
        "Katherine",
        "Johnson",
        sales,
        "Referral",
    )
    assert lead.activities.filter(kind=Activity.Kind.CREATED, actor=sales).exists()


def test_quick_add_errors_show_inline_and_keep_the_input(sales_client, lead):
    response = sales_client.post(
        reverse("leads:quick_add"),
        {"name": "Copy Cat", "email": lead.email.upper(), "source": Source.objects.get(name="Manual").pk},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "already has this e-mail" in body
    assert f'href="/leads/{lead.pk}/"' in body
    assert 'value="Copy Cat"' in body

    response = sales_client.post(reverse("leads:quick_add"), {"name": "No Contact", "source": lead.source_id})
    assert "Give at least an e-mail address or a phone number." in response.content.decode()


@pytest.mark.parametrize("lead_count", [5, 500])
def test_board_query_count_does_not_grow_with_leads(client, lead_count, django_assert_max_num_queries):
    manager = UserFactory(role="manager")
    make_leads(lead_count, manager)
    client.force_login(manager)
    # session + user, stages, one aggregate, one page of cards per column (6 default stages),
    # and the choices of the filter bar and quick-add form (sources, stages, owners),
    # plus 1 for the notification bell's unread count.
    with django_assert_max_num_queries(16 + 1):
        response = client.get(BOARD, {"query": "bulk", "owner": "me"})
    assert response.status_code == 200


def test_a_refused_quick_add_keeps_filters_with_special_characters(sales_client, sales):
    LeadFactory(first_name="Ann", company="Smith & Co", owner=sales)
    board = sales_client.get(BOARD, {"query": "Smith & Co"}).content.decode()
    assert 'action="/leads/new/?query=Smith+%26+Co"' in board
    response = sales_client.post("/leads/new/?query=Smith+%26+Co", {"name": "", "source": 1})
    assert response.status_code == 400
    shown = {lead.name for column in response.context["columns"] for lead in column.leads}
    assert shown == {"Ann " + Lead.objects.get(company="Smith & Co").last_name}


@pytest.mark.parametrize(
    "params", [{"page_1": "²"}, {"page_²": "2"}, {"page_1": "9" * 400}, {"page_1": "-3"}]
)
def test_odd_column_page_parameters_show_the_board(sales_client, lead, params):
    assert sales_client.get(BOARD, params).status_code == 200


def test_a_cards_stage_menu_starts_at_the_next_stage(sales_client, sales):
    in_reached_out = LeadFactory(owner=sales, stage=stage("Reached Out"))
    in_lost = LeadFactory(owner=sales, stage=stage("Lost"))
    board = sales_client.get(BOARD).content.decode()

    def selected_option(lead):
        menu = board[board.index(f'id="move-{lead.pk}"') :]
        return menu[: menu.index("</select>")].split(" selected>")[1].split("<")[0]

    assert selected_option(in_reached_out) == "No Response"
    assert selected_option(in_lost) == "Won"  # the last column suggests the one before it


def test_a_duplicate_the_user_cannot_see_is_not_named(sales_client, other_sales, settings):
    settings.LEAD_SHARING = "private"
    hidden = LeadFactory(owner=other_sales, email="taken@prospect.example")
    response = sales_client.post(
        reverse("leads:quick_add"),
        {"name": "Copy Cat", "email": "taken@prospect.example", "source": hidden.source_id},
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "A lead you cannot see already has this e-mail." in body
    assert hidden.name not in body and f"/leads/{hidden.pk}/" not in body


def test_an_invalid_filter_shows_no_cards_rather_than_all(sales_client, lead):
    response = sales_client.get(BOARD, {"stage": "nope"})
    assert response.status_code == 200
    assert "No leads are shown until the filter is fixed." in response.content.decode()
    assert all(not column.leads and column.count == 0 for column in response.context["columns"])


def test_filtering_by_an_archived_stage_says_so(manager_client, manager):
    LeadFactory(owner=manager, stage=stage("No Response"))
    Stage.objects.filter(name="No Response").update(archived=True)
    body = manager_client.get(BOARD, {"stage": "No Response"}).content.decode()
    assert "The stage No Response is archived" in body
    assert "There are no stages yet" not in body


def test_the_owner_menu_lists_users_added_since_the_last_page(sales_client):
    assert "Newly Hired" not in sales_client.get(BOARD).content.decode()
    UserFactory(first_name="Newly", last_name="Hired")
    assert "Newly Hired" in sales_client.get(BOARD).content.decode()
