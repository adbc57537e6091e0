"""Two people changing one lead at the same moment, over real HTTP (live_server): one wins, one is told.

Each user has their own requests.Session (a real session cookie and CSRF token), and the requests
leave together from threads (run_at_once), so the live server handles them on two connections.
"""

from functools import partial

import pytest
import requests
from django.db import connection
from django.test import Client
from django.urls import reverse

from leads.models import Activity, Lead, Stage
from leads.tests.concurrency import run_at_once
from leads.tests.factories import LeadFactory
from leads.tests.test_lead_page import edit_data

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="concurrent requests need PostgreSQL's row locks; SQLite allows one writer at a time",
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
TIMEOUT = 30


def browser(live_server, user):
    """A signed-in requests.Session with a CSRF token, as a browser that loaded the board has."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    session.get(live_server.url + reverse("leads:board"), timeout=TIMEOUT).raise_for_status()
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": live_server.url})
    return session


def stage(name):
    return Stage.objects.get(name=name)


def assert_timeline_agrees(lead, *, moves):
    """The lead's final stage is the `to` of its last stage_changed activity; `moves` of them exist."""
    lead.refresh_from_db()
    changes = list(lead.activities.filter(kind=Activity.Kind.STAGE_CHANGED).order_by("id"))
    assert len(changes) == moves
    if moves:
        assert changes[-1].data["to_id"] == lead.stage_id
        assert changes[-1].data["to"] == lead.stage.name
    return lead


@pytest.fixture
def contested(sales, manager):
    return LeadFactory(owner=sales)


def test_two_board_moves_at_once_one_wins_and_the_other_gets_the_conflict(
    live_server, contested, sales, manager
):
    url = live_server.url + reverse("leads:move", args=[contested.pk])
    targets = {sales: stage("Reached Out"), manager: stage("In Progress")}
    sessions = {user: browser(live_server, user) for user in targets}

    def move(user):
        return sessions[user].post(
            url,
            {"stage": targets[user].pk, "version": contested.version},
            headers={"Accept": "application/json"},
            timeout=TIMEOUT,
        )

    responses = dict(zip(targets, run_at_once(*(partial(move, user) for user in targets)), strict=True))

    statuses = sorted(response.status_code for response in responses.values())
    assert statuses == [200, 409], [r.text for r in responses.values()]
    (winner,) = [user for user, response in responses.items() if response.status_code == 200]
    (loser,) = [user for user, response in responses.items() if response.status_code == 409]
    conflict = responses[loser].json()
    assert f"changed by {winner}" in conflict["error"]
    assert conflict["lead"]["stage"] == targets[winner].name  # the card comes back as it is now
    loaded_version = contested.version
    lead = assert_timeline_agrees(contested, moves=1)
    assert lead.stage == targets[winner] and lead.version == loaded_version + 1


def test_two_plain_form_moves_at_once_one_wins_and_the_other_sees_the_message(
    live_server, contested, sales, manager
):
    url = live_server.url + reverse("leads:move", args=[contested.pk])
    targets = {sales: stage("Won"), manager: stage("No Response")}
    sessions = {user: browser(live_server, user) for user in targets}

    def move(user):
        # No JavaScript: a form post, then the board it redirects to shows the flash message.
        return sessions[user].post(
            url, {"stage": targets[user].pk, "version": contested.version}, timeout=TIMEOUT
        )

    responses = dict(zip(targets, run_at_once(*(partial(move, user) for user in targets)), strict=True))

    assert all(response.status_code == 200 for response in responses.values())
    told = [user for user, response in responses.items() if "changed by" in response.text]
    assert len(told) == 1
    lead = assert_timeline_agrees(contested, moves=1)
    (winner,) = set(targets) - set(told)
    assert lead.stage == targets[winner]
    assert f"changed by {winner}" in responses[told[0]].text


def test_two_edits_of_the_lead_page_at_once_one_saves_and_the_other_gets_the_conflict_form(
    live_server, contested, sales, manager
):
    url = live_server.url + reverse("leads:edit", args=[contested.pk])
    titles = {sales: "CTO", manager: "CEO"}
    sessions = {user: browser(live_server, user) for user in titles}

    def edit(user):
        return sessions[user].post(
            url, edit_data(contested, title=titles[user]), allow_redirects=False, timeout=TIMEOUT
        )

    responses = dict(zip(titles, run_at_once(*(partial(edit, user) for user in titles)), strict=True))

    assert sorted(r.status_code for r in responses.values()) == [302, 409]
    (winner,) = [user for user, r in responses.items() if r.status_code == 302]
    (loser,) = [user for user, r in responses.items() if r.status_code == 409]
    assert f"changed by {winner}" in responses[loser].text
    contested.refresh_from_db()
    assert contested.title == titles[winner]
    updates = list(contested.activities.filter(kind=Activity.Kind.UPDATED))
    assert len(updates) == 1 and updates[0].data["changes"]["title"]["to"] == titles[winner]


def test_two_api_patches_with_one_version_one_wins_and_the_other_gets_409(
    live_server, contested, sales, manager
):
    url = f"{live_server.url}/api/leads/{contested.pk}/"
    targets = {sales: stage("Reached Out"), manager: stage("Won")}
    sessions = {user: browser(live_server, user) for user in targets}

    def patch(user):
        body = {"stage": targets[user].name, "version": contested.version}
        return sessions[user].patch(url, json=body, timeout=TIMEOUT)

    responses = dict(zip(targets, run_at_once(*(partial(patch, user) for user in targets)), strict=True))

    assert sorted(r.status_code for r in responses.values()) == [200, 409], [
        r.text for r in responses.values()
    ]
    (winner,) = [user for user, r in responses.items() if r.status_code == 200]
    (loser,) = [user for user, r in responses.items() if r.status_code == 409]
    error = responses[loser].json()["error"]
    assert error["code"] == "stale_version" and error["current"]["stage"]["name"] == targets[winner].name
    lead = assert_timeline_agrees(contested, moves=1)
    assert lead.stage == targets[winner]


def test_one_idempotency_key_retried_at_once_over_http_creates_one_lead(live_server, manager):
    session = browser(live_server, manager)
    body = {"name": "Ada Lovelace", "email": "ada@engines.example"}

    def post():
        return session.post(
            f"{live_server.url}/api/leads/",
            json=body,
            headers={"Idempotency-Key": "http-race"},
            timeout=TIMEOUT,
        )

    responses = run_at_once(*([post] * 4))

    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" in r.headers for r in responses) == 3
    assert Lead.objects.filter(email="ada@engines.example").count() == 1
    assert Activity.objects.filter(kind=Activity.Kind.CREATED, lead__email="ada@engines.example").count() == 1
