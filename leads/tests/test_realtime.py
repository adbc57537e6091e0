"""The live board: who may open the socket, who hears about which change, and the card endpoint."""

import logging

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from accounts.roles import Role
from leads import services
from leads.realtime import CLOSE_RECONNECT, CLOSE_UNAUTHENTICATED, audiences
from leads.tests.factories import LeadFactory, UserFactory, stage_named

# The socket tests commit (the broadcaster runs after commit) and flush afterwards, which would
# wipe the migrations' stages and sources: serialized_rollback puts them back.
live_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)
ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def _in_memory_layer(settings):
    # A fresh in-memory layer per test, whatever REDIS_URL says (changing the setting resets it).
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _session_cookie(client, user):
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def _communicator(*headers):
    from config.asgi import application

    return WebsocketCommunicator(application, "/ws/board/", headers=list(headers))


def run(scenario):
    """Run an async scenario from a sync test. Sync code it awaits through sync_to_async runs back
    on this thread, with this test's database connection."""
    return async_to_sync(scenario)()


async def _connect(client, user):
    communicator = _communicator(ORIGIN, await sync_to_async(_session_cookie)(client, user))
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _next_or_none(communicator, timeout=0.5):
    # receive_nothing, unlike a receive that times out, leaves the consumer running.
    if await communicator.receive_nothing(timeout=timeout):
        return None
    return await communicator.receive_json_from()


# --- who may connect ---------------------------------------------------------------------------


@live_db
def test_an_anonymous_socket_is_closed_with_sign_in_again():
    async def scenario():
        communicator = _communicator(ORIGIN)
        connected, _ = await communicator.connect()
        closed = await communicator.receive_output(timeout=1)
        await communicator.wait()
        return connected, closed

    _, closed = run(scenario)
    assert closed == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


@live_db
def test_a_deactivated_user_is_refused(client):
    user = UserFactory(role=Role.SALES)

    async def scenario():
        cookie = await sync_to_async(_session_cookie)(client, user)
        await sync_to_async(type(user).objects.filter(pk=user.pk).update)(is_active=False)
        communicator = _communicator(ORIGIN, cookie)
        await communicator.connect()
        return await communicator.receive_output(timeout=1)

    assert run(scenario)["code"] == CLOSE_UNAUTHENTICATED


@live_db
def test_a_foreign_origin_is_refused_even_with_a_session(client, sales):
    async def scenario():
        cookie = await sync_to_async(_session_cookie)(client, sales)
        communicator = _communicator((b"origin", b"https://evil.example"), cookie)
        connected, _ = await communicator.connect()
        return connected

    assert run(scenario) is False


@live_db
def test_a_signed_in_user_from_the_site_connects(client, sales):
    async def scenario():
        communicator = await _connect(client, sales)
        await communicator.disconnect()

    run(scenario)


# --- who hears what ----------------------------------------------------------------------------


@live_db
def test_a_managers_move_reaches_the_owner_other_sales_and_managers(
    client, manager, sales, other_sales, lead
):
    admin = UserFactory(role=Role.ADMIN)
    target = stage_named("In Progress")

    async def scenario():
        sockets = [await _connect(client, user) for user in (sales, other_sales, admin)]
        await sync_to_async(services.move_lead)(lead=lead, stage=target, actor=manager)
        received = [await _next_or_none(s, timeout=1) for s in sockets]
        for s in sockets:
            await s.disconnect()
        return received

    for message in run(scenario):
        assert message == {
            "type": "lead.event",
            "event": "lead.moved",
            "lead_id": lead.pk,
            "version": lead.version + 1,
            "stage_id": target.pk,
            "owner_id": sales.pk,
            "actor_id": manager.pk,
            "deleted": False,
        }


@live_db
def test_under_private_sharing_other_sales_do_not_hear_of_someone_elses_lead(
    settings, client, manager, sales, other_sales, lead
):
    settings.LEAD_SHARING = "private"
    target = stage_named("Reached Out")

    async def scenario():
        owner, other, boss = [await _connect(client, user) for user in (sales, other_sales, manager)]
        await sync_to_async(services.move_lead)(lead=lead, stage=target, actor=manager)
        received = (
            await _next_or_none(owner, 1),
            await _next_or_none(other, 0.3),
            await _next_or_none(boss, 1),
        )
        for s in (owner, other, boss):
            await s.disconnect()
        return received

    to_owner, to_other, to_manager = run(scenario)
    assert to_owner["event"] == to_manager["event"] == "lead.moved"
    assert to_other is None


@live_db
def test_under_private_sharing_unassigned_leads_reach_all_sales(settings, client, manager, sales):
    settings.LEAD_SHARING = "private"
    pool_lead = LeadFactory(owner=None)
    target = stage_named("Reached Out")

    async def scenario():
        socket = await _connect(client, sales)
        await sync_to_async(services.move_lead)(lead=pool_lead, stage=target, actor=manager)
        message = await _next_or_none(socket, 1)
        await socket.disconnect()
        return message

    assert run(scenario)["lead_id"] == pool_lead.pk


@live_db
def test_a_reassignment_away_under_private_tells_the_previous_owner_to_drop_the_card(
    settings, client, manager, sales, other_sales, lead
):
    settings.LEAD_SHARING = "private"

    async def scenario():
        before, after = [await _connect(client, user) for user in (sales, other_sales)]
        await sync_to_async(services.reassign_lead)(lead=lead, owner=other_sales, actor=manager)
        received = await _next_or_none(before, 1), await _next_or_none(after, 1)
        for s in (before, after):
            await s.disconnect()
        return received

    to_previous, to_new = run(scenario)
    assert to_previous["type"] == "lead.removed"
    assert (to_previous["event"], to_previous["from_owner"], to_previous["owner_id"]) == (
        "lead.reassigned",
        sales.pk,
        other_sales.pk,
    )
    assert (to_new["type"], to_new["event"]) == ("lead.event", "lead.reassigned")


@live_db
def test_a_deleted_lead_is_a_removal_for_sales_and_an_event_for_managers(client, manager, sales, lead):
    async def scenario():
        owner, boss = [await _connect(client, user) for user in (sales, manager)]
        await sync_to_async(services.delete_lead)(lead=lead, actor=manager)
        received = await _next_or_none(owner, 1), await _next_or_none(boss, 1)
        for s in (owner, boss):
            await s.disconnect()
        return received

    to_owner, to_manager = run(scenario)
    assert (to_owner["type"], to_owner["deleted"]) == ("lead.removed", True)
    assert (to_manager["type"], to_manager["deleted"]) == ("lead.event", True)


@pytest.mark.parametrize(
    ("sharing", "event", "owner_id", "deleted", "payload", "now", "removed"),
    [
        ("read", "lead.moved", 7, False, {}, {"managers", "team"}, set()),
        ("write", "lead.updated", None, False, {}, {"managers", "team"}, set()),
        ("private", "lead.moved", 7, False, {}, {"managers", "user.7"}, set()),
        ("private", "lead.moved", None, False, {}, {"managers", "team"}, set()),
        ("private", "lead.reassigned", 8, False, {"from_owner": 7}, {"managers", "user.8"}, {"user.7"}),
        ("private", "lead.reassigned", 8, False, {"from_owner": None}, {"managers", "user.8"}, {"team"}),
        ("private", "lead.reassigned", None, False, {"from_owner": 7}, {"managers", "team"}, {"user.7"}),
        ("read", "lead.reassigned", 8, False, {"from_owner": 7}, {"managers", "team"}, set()),
        ("read", "lead.deleted", 7, True, {}, {"managers"}, {"team"}),
        ("private", "lead.deleted", 7, True, {}, {"managers"}, {"user.7"}),
        ("private", "lead.restored", 7, False, {}, {"managers", "user.7"}, set()),
    ],
)
def test_audiences_follow_the_visibility_policy(sharing, event, owner_id, deleted, payload, now, removed):
    assert audiences(event=event, owner_id=owner_id, deleted=deleted, payload=payload, sharing=sharing) == (
        now,
        removed,
    )


@live_db
def test_with_the_channel_layer_down_a_move_still_succeeds(settings, manager_client, lead, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6390"]},  # nothing listens there
        }
    }
    target = stage_named("In Progress")
    with caplog.at_level(logging.WARNING, logger="leads.realtime"):
        response = manager_client.post(
            reverse("leads:move", args=[lead.pk]),
            {"stage": target.pk, "version": lead.version},
            HTTP_ACCEPT="application/json",
        )
    assert response.status_code == 200 and response.json()["ok"] is True
    lead.refresh_from_db()
    assert lead.stage == target
    assert "could not announce lead.moved" in caplog.text


# --- the card endpoint -------------------------------------------------------------------------


def _card_url(lead, **filters):
    return reverse("leads:live_card", args=[lead.pk]), filters


@pytest.mark.django_db
def test_the_card_endpoint_answers_the_card_and_every_columns_totals(sales_client, sales, lead):
    LeadFactory(owner=sales, stage=lead.stage, value=250)
    url, _ = _card_url(lead)
    response = sales_client.get(url)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"lead_id", "version", "stage_id", "visible_in_filter", "card_html", "columns"}
    assert (body["lead_id"], body["stage_id"], body["visible_in_filter"]) == (lead.pk, lead.stage_id, True)
    assert f'id="lead-{lead.pk}"' in body["card_html"] and "move-form" in body["card_html"]
    column = body["columns"][str(lead.stage_id)]
    assert column["count"] == 2
    assert float(column["value"]) == float(lead.value) + 250
    assert body["columns"][str(stage_named("Won").pk)] == {"count": 0, "value": "0"}


@pytest.mark.django_db
def test_the_card_endpoint_is_404_for_a_lead_the_user_may_not_see(settings, client, other_sales, lead):
    settings.LEAD_SHARING = "private"
    client.force_login(other_sales)
    response = client.get(reverse("leads:live_card", args=[lead.pk]))
    assert response.status_code == 404
    body = response.json()
    assert body["visible"] is False and "card_html" not in body
    assert body["columns"][str(lead.stage_id)]["count"] == 0  # other_sales' own board


@pytest.mark.django_db
def test_the_card_endpoint_is_404_for_a_deleted_lead(manager_client, manager, lead):
    services.delete_lead(lead=lead, actor=manager)
    assert manager_client.get(reverse("leads:live_card", args=[lead.pk])).status_code == 404


@pytest.mark.django_db
def test_the_card_endpoint_applies_the_pages_filters(sales_client, sales, lead):
    other = LeadFactory(owner=sales, stage=lead.stage, company="Zebra Works")
    url = reverse("leads:live_card", args=[lead.pk])
    body = sales_client.get(url, {"query": "Zebra Works"}).json()
    assert body["visible_in_filter"] is False and body["card_html"] == ""
    assert body["columns"][str(lead.stage_id)]["count"] == 1
    shown = sales_client.get(reverse("leads:live_card", args=[other.pk]), {"query": "Zebra Works"}).json()
    assert shown["visible_in_filter"] is True
    # The card's move form returns to the board with the same filters.
    assert 'name="next" value="/board/?query=Zebra+Works"' in shown["card_html"]
    # Filtered to another stage, only that column is counted and the card is not on it.
    won = stage_named("Won")
    body = sales_client.get(url, {"stage": won.pk}).json()
    assert body["visible_in_filter"] is False and list(body["columns"]) == [str(won.pk)]


@pytest.mark.django_db
def test_a_read_only_card_has_no_move_form(sales_client, other_sales):
    theirs = LeadFactory(owner=other_sales)
    body = sales_client.get(reverse("leads:live_card", args=[theirs.pk])).json()
    assert body["visible_in_filter"] is True and "move-form" not in body["card_html"]


@pytest.mark.django_db
def test_the_card_endpoint_needs_a_signed_in_user(client, lead):
    response = client.get(reverse("leads:live_card", args=[lead.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("lead_count", [1, 60])
def test_the_card_endpoint_query_count_does_not_grow_with_leads(
    sales_client, sales, lead_count, django_assert_max_num_queries
):
    leads = LeadFactory.create_batch(lead_count, owner=sales)
    url = reverse("leads:live_card", args=[leads[0].pk])
    # session, user, stages, column totals, the lead, "does it match the filters", and what the
    # board's cards read besides the lead (its next follow-up): the same with 1 lead or 60.
    with django_assert_max_num_queries(8):
        assert sales_client.get(url, {"query": leads[0].last_name}).status_code == 200
    with django_assert_max_num_queries(5):  # not visible: no card to render
        assert sales_client.get(reverse("leads:live_card", args=[10**9])).status_code == 404


@live_db
def test_a_manager_demoted_or_deactivated_is_made_to_reconnect(client):
    """Groups are chosen at connect: a change to the user closes their sockets so they rejoin anew."""
    manager = UserFactory(role=Role.MANAGER)

    def demote():
        manager.role = Role.SALES
        manager.save()

    async def scenario():
        communicator = await _connect(client, manager)
        await sync_to_async(demote)()
        closed = await communicator.receive_output(timeout=1)
        await communicator.wait()
        return closed

    assert run(scenario) == {"type": "websocket.close", "code": CLOSE_RECONNECT}


@live_db
def test_logging_in_again_does_not_drop_the_users_sockets(client):
    user = UserFactory(role=Role.SALES)

    def touch_last_login():
        from django.contrib.auth.models import update_last_login

        update_last_login(None, user)

    async def scenario():
        communicator = await _connect(client, user)
        await sync_to_async(touch_last_login)()
        quiet = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return quiet

    assert run(scenario)
