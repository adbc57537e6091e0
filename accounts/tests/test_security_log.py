"""The leadboard.security log: logins, failed logins, lockouts, logouts, refusals; never a password."""

import logging
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse
from rest_framework.test import APIClient

from leads.realtime import BoardConsumer
from leads.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

SECRET = "hunter2-is-not-my-password"


@pytest.fixture
def security(caplog):
    caplog.set_level(logging.INFO, logger="leadboard.security")

    def records(event):
        return [r for r in caplog.records if r.name == "leadboard.security" and r.security_event == event]

    records.text = lambda: "\n".join(r.getMessage() for r in caplog.records)
    return records


def test_a_login_says_who_from_where(client, sales, security):
    client.post(
        reverse("login"), {"username": sales.email, "password": DEFAULT_PASSWORD}, REMOTE_ADDR="192.0.2.5"
    )

    (record,) = security("login")
    assert record.user_id == sales.pk
    assert record.client_ip == "192.0.2.5"
    assert record.path == reverse("login")
    assert f"user {sales.pk} <sales@test.example>" in record.getMessage()
    assert " at=" in record.getMessage()


def test_a_failed_login_names_the_email_tried_but_never_the_password(client, sales, security):
    client.post(
        reverse("login"), {"username": "Sales@Test.example", "password": SECRET}, REMOTE_ADDR="192.0.2.5"
    )
    APIClient().post("/api/auth/token/", {"email": sales.email, "password": SECRET}, format="json")

    records = security("login_failed")
    assert [r.attempted for r in records] == ["sales@test.example", "sales@test.example"]
    assert [r.path for r in records] == [reverse("login"), "/api/auth/token/"]
    assert records[0].levelno == logging.WARNING
    assert records[0].client_ip == "192.0.2.5"
    assert SECRET not in security.text()


def test_a_lockout_is_logged(client, sales, settings, security):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    for _ in range(3):
        client.post(reverse("login"), {"username": sales.email, "password": SECRET})

    locked = security("login_locked_out")
    assert locked and all(r.attempted == "sales@test.example" for r in locked)
    assert security("login_failed")[-1].reason == "locked out"
    assert SECRET not in security.text()


def test_a_logout_is_logged(sales_client, sales, security):
    sales_client.post(reverse("logout"))

    (record,) = security("logout")
    assert record.user_id == sales.pk


def test_an_api_logout_names_the_tokens_owner(sales, security):
    from rest_framework_simplejwt.tokens import RefreshToken

    APIClient().post("/api/auth/logout/", {"refresh": str(RefreshToken.for_user(sales))}, format="json")

    (record,) = security("logout")
    assert record.user_id == sales.pk
    assert record.path == "/api/auth/logout/"


@pytest.mark.parametrize("door", ["page", "api"])
def test_logging_out_everywhere_is_logged(client, sales, security, door):
    if door == "page":
        client.force_login(sales)
        client.post(reverse("logout_everywhere"))
    else:
        api = APIClient()
        api.force_authenticate(sales)
        api.post("/api/auth/logout-all/")

    (record,) = security("logout_everywhere")
    assert record.user_id == sales.pk


def test_a_forbidden_page_is_logged_with_who_and_what(sales_client, sales, security):
    response = sales_client.get(reverse("users"))

    assert response.status_code == 403
    (record,) = security("denied")
    assert (record.user_id, record.method, record.path, record.status) == (
        sales.pk,
        "GET",
        "/accounts/users/",
        403,
    )


def test_an_anonymous_api_request_is_logged_as_a_401(security):
    response = APIClient().get("/api/leads/", REMOTE_ADDR="198.51.100.3")

    assert response.status_code == 401
    (record,) = security("denied")
    assert record.user_id is None
    assert record.client_ip == "198.51.100.3"
    assert record.reason.startswith("not_authenticated")
    assert "anonymous GET /api/leads/" in record.getMessage()


def test_a_forbidden_api_request_names_the_user(sales, security):
    api = APIClient()
    api.force_authenticate(sales)

    response = api.post("/api/stages/", {"name": "Sneaky"}, format="json")

    assert response.status_code == 403
    (record,) = security("denied")
    assert record.user_id == sales.pk
    assert record.status == 403


def test_a_successful_request_is_not_logged(sales_client, security):
    sales_client.get(reverse("leads:board"))

    assert not security("denied")


def test_a_refused_websocket_is_logged(security):
    async def scenario():
        communicator = WebsocketCommunicator(BoardConsumer.as_asgi(), "/ws/board/")
        communicator.scope["user"] = AnonymousUser()
        communicator.scope["client"] = ("203.0.113.4", 5000)
        await communicator.connect()
        await communicator.disconnect()

    async_to_sync(scenario)()

    (record,) = security("denied")
    assert record.method == "WEBSOCKET"
    assert record.client_ip == "203.0.113.4"
    assert record.reason == "not signed in"
