"""Idempotency-Key on POST: a retry replays the first answer and writes nothing, even when retries race."""

from datetime import timedelta
from functools import partial

import pytest
from django.db import connection
from django.db.models import F
from rest_framework.test import APIClient

from leads.models import Activity, IdempotencyKey, Lead, Stage
from leads.tests.api.contract import assert_error, client_for
from leads.tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

JOHN = {"name": "John Doe", "source": "Facebook", "email": "john@doe.example"}


def post(client, path, body, key, **extra):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


class TestReplay:
    def test_the_same_key_and_body_replay_the_first_response_and_write_nothing(self, as_manager):
        first = post(as_manager, "/api/leads/", JOHN, "create-john-1")
        again = post(as_manager, "/api/leads/", JOHN, "create-john-1")

        assert first.status_code == 201
        assert "Idempotent-Replayed" not in first
        assert again.status_code == 201
        assert again["Idempotent-Replayed"] == "true"
        assert again.content == first.content  # byte for byte, key order included
        assert again["Location"] == first["Location"]
        assert Lead.objects.count() == 1
        assert Activity.objects.filter(kind="created").count() == 1

    def test_a_replay_returns_the_first_answer_even_after_the_lead_changed(self, as_manager):
        first = post(as_manager, "/api/leads/", JOHN, "k")
        as_manager.patch(f"/api/leads/{first.json()['id']}/stage", {"stage": "Won"}, format="json")

        again = post(as_manager, "/api/leads/", JOHN, "k")

        assert again.json()["stage"]["name"] == "New Lead"
        assert again.json()["version"] == 1

    def test_a_logged_activity_is_not_logged_twice(self, as_sales, lead):
        note = {"kind": "call", "outcome": "connected", "duration_minutes": 5, "body": "Spoke"}

        first = post(as_sales, f"/api/leads/{lead.pk}/activities/", note, "call-1")
        again = post(as_sales, f"/api/leads/{lead.pk}/activities/", note, "call-1")

        assert (first.status_code, again.status_code) == (201, 201)
        assert again["Idempotent-Replayed"] == "true"
        assert again.content == first.content
        assert Activity.objects.filter(lead=lead).count() == 1

    def test_a_stage_is_not_created_twice(self, as_manager):
        body = {"name": "Negotiation", "position": 45}

        first = post(as_manager, "/api/stages/", body, "stage-1")
        again = post(as_manager, "/api/stages/", body, "stage-1")

        assert again.content == first.content
        assert Stage.objects.filter(name="Negotiation").count() == 1

    def test_the_key_order_of_the_body_does_not_matter(self, as_manager):
        first = post(as_manager, "/api/leads/", JOHN, "k")
        again = post(as_manager, "/api/leads/", dict(reversed(list(JOHN.items()))), "k")

        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]

    def test_without_a_key_each_post_runs(self, as_sales, lead):
        note = {"kind": "note", "body": "Twice"}

        as_sales.post(f"/api/leads/{lead.pk}/activities/", note, format="json")
        as_sales.post(f"/api/leads/{lead.pk}/activities/", note, format="json")

        assert Activity.objects.filter(lead=lead).count() == 2


class TestKeyReuse:
    def test_the_same_key_with_another_body_is_a_422_and_writes_nothing(self, as_manager):
        post(as_manager, "/api/leads/", JOHN, "k")

        response = post(as_manager, "/api/leads/", {**JOHN, "email": "jane@doe.example"}, "k")

        error = assert_error(response, 422, code="idempotency_key_reused", fields={})
        assert "different" in error["message"]
        assert list(Lead.objects.values_list("email", flat=True)) == ["john@doe.example"]

    def test_the_same_key_on_another_endpoint_is_a_422(self, as_manager, lead):
        post(as_manager, "/api/leads/", JOHN, "k")

        response = post(as_manager, f"/api/leads/{lead.pk}/activities/", {"kind": "note", "body": "x"}, "k")

        assert_error(response, 422, code="idempotency_key_reused")
        assert not Activity.objects.filter(lead=lead).exists()

    def test_different_users_may_use_the_same_key(self, as_manager, as_sales, manager, sales):
        by_manager = post(as_manager, "/api/leads/", JOHN, "shared-key")
        by_sales = post(as_sales, "/api/leads/", {**JOHN, "email": "jane@doe.example"}, "shared-key")

        assert (by_manager.status_code, by_sales.status_code) == (201, 201)
        assert "Idempotent-Replayed" not in by_sales
        assert by_sales.json()["id"] != by_manager.json()["id"]
        assert IdempotencyKey.objects.filter(key="shared-key").count() == 2

    def test_the_same_key_and_body_from_another_user_is_their_own_request(self, as_manager, admin_user):
        post(as_manager, "/api/leads/", JOHN, "k")

        response = post(client_for(admin_user), "/api/leads/", JOHN, "k")

        # Not a replay of the manager's answer: the admin's own create, refused as a duplicate.
        assert_error(response, 409, code="duplicate", extra={"existing_id"})

    def test_a_key_older_than_24_hours_is_fresh_again(self, as_manager):
        first = post(as_manager, "/api/leads/", JOHN, "k")
        IdempotencyKey.objects.update(created_at=F("created_at") - timedelta(hours=24, seconds=1))

        response = post(as_manager, "/api/leads/", {**JOHN, "email": "jane@doe.example"}, "k")

        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response
        assert response.json()["id"] != first.json()["id"]
        assert Lead.objects.count() == 2
        assert IdempotencyKey.objects.count() == 1

    def test_a_key_just_under_24_hours_old_still_replays(self, as_manager):
        post(as_manager, "/api/leads/", JOHN, "k")
        IdempotencyKey.objects.update(created_at=F("created_at") - timedelta(hours=23, minutes=59))

        response = post(as_manager, "/api/leads/", JOHN, "k")

        assert response["Idempotent-Replayed"] == "true"
        assert Lead.objects.count() == 1

    def test_a_refused_request_does_not_use_up_the_key(self, as_manager):
        refused = post(as_manager, "/api/leads/", {"name": "John Doe"}, "k")  # no e-mail or phone

        fixed = post(as_manager, "/api/leads/", JOHN, "k")

        assert refused.status_code == 400
        assert fixed.status_code == 201
        assert "Idempotent-Replayed" not in fixed

    @pytest.mark.parametrize("key", ["", "   ", "k" * 256])
    def test_an_empty_or_overlong_key_is_a_400_naming_the_header(self, as_manager, key):
        response = post(as_manager, "/api/leads/", JOHN, key)

        assert_error(response, 400, code="invalid", fields={"Idempotency-Key"})
        assert not Lead.objects.exists()

    def test_a_255_character_key_is_fine(self, as_manager):
        assert post(as_manager, "/api/leads/", JOHN, "k" * 255).status_code == 201

    def test_anonymous_posts_are_refused_before_the_key_is_looked_at(self, api):
        assert_error(post(api, "/api/leads/", JOHN, "k"), 401)
        assert not IdempotencyKey.objects.exists()

    def test_a_forbidden_post_does_not_store_the_key(self, as_sales):
        assert_error(post(as_sales, "/api/stages/", {"name": "Mine"}, "k"), 403)
        assert not IdempotencyKey.objects.exists()


# --- concurrent retries (PostgreSQL: SQLite serialises writers, so there is no race to test) ---------

requires_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent requests need PostgreSQL's row locks; SQLite allows one writer at a time",
)


def race(user, requests):
    """Send each (path, body, key) from its own thread and APIClient, all released at once."""
    clients = [APIClient() for _ in requests]
    for client in clients:
        client.force_authenticate(user)
    responses = run_at_once(
        *(partial(post, client, *request) for client, request in zip(clients, requests, strict=True))
    )
    assert all(response is not None for response in responses)
    return responses


@requires_postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_retries_create_one_lead_and_all_get_its_answer(manager):
    responses = race(manager, [("/api/leads/", JOHN, "race-key")] * 6)

    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == 5
    assert Lead.objects.count() == 1
    assert Activity.objects.filter(kind="created").count() == 1
    assert IdempotencyKey.objects.count() == 1


@requires_postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_retries_of_a_note_log_it_once(sales):
    from leads.tests.factories import LeadFactory

    lead = LeadFactory(owner=sales)
    note = {"kind": "note", "body": "Only once"}

    responses = race(sales, [(f"/api/leads/{lead.pk}/activities/", note, "note-key")] * 4)

    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.json()["id"] for r in responses}) == 1
    assert Activity.objects.filter(lead=lead).count() == 1


@requires_postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_different_bodies_under_one_key_create_one_lead(manager):
    bodies = [{**JOHN, "email": f"john{i}@doe.example"} for i in range(4)]

    responses = race(manager, [("/api/leads/", body, "race-key") for body in bodies])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 422, 422, 422]
    assert Lead.objects.count() == 1
