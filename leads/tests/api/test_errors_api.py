"""One error shape for every failure, {"error": {"code", "message", "fields"}}; never a 500 for bad input."""

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from leads import selectors, services
from leads.api import errors
from leads.models import Activity, IdempotencyKey, Lead
from leads.tests.api.contract import assert_error
from leads.tests.factories import DEFAULT_PASSWORD, LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def slow_rates(settings):
    settings.API_THROTTLE_RATES = {"anon": "2/min", "user": "2/min"}


class TestEachStatus:
    def test_400_names_each_invalid_field(self, as_manager):
        response = as_manager.post(
            "/api/leads/",
            {"name": "Ann", "priority": "urgent", "value": "-5", "owner": "abc", "stage": "Nowhere"},
            format="json",
        )

        error = assert_error(response, 400, code="invalid", fields={"priority", "value", "owner", "stage"})
        assert error["message"] == "Some fields are not valid; see fields."

    def test_400_names_the_rules_the_service_checks(self, as_manager):
        response = as_manager.post("/api/leads/", {"name": "Ann", "email": "not an address"}, format="json")

        error = assert_error(response, 400, code="invalid", fields={"email"})
        assert error["fields"]["email"] == ["Enter a valid e-mail address."]

    def test_400_with_one_field_says_which_in_the_message(self, as_manager):
        response = as_manager.post("/api/leads/", {"email": "a@b.example"}, format="json")

        error = assert_error(response, 400, code="invalid", fields={"name"})
        assert error["message"].startswith("name: ")

    @pytest.mark.parametrize("body", ['{"name": "Ann", ', "{'name': 'Ann'}", "name=Ann", "\x00", '{"a": NaN'])
    def test_400_malformed_json_says_so(self, as_manager, body):
        response = as_manager.post("/api/leads/", body, content_type="application/json")

        error = assert_error(response, 400, code="parse_error", fields={})
        assert "JSON" in error["message"]
        assert not Lead.objects.exists()

    def test_400_malformed_json_on_a_patch_too(self, as_sales, lead):
        response = as_sales.patch(
            f"/api/leads/{lead.pk}/stage", "{stage: Won}", content_type="application/json"
        )

        assert_error(response, 400, code="parse_error")

    @pytest.mark.parametrize("body", ["[]", '"John Doe"', "42", "null", "[{}]"])
    def test_400_json_that_is_not_an_object(self, as_manager, body):
        response = as_manager.post("/api/leads/", body, content_type="application/json")

        assert_error(response, 400, code="invalid", fields={"non_field_errors"})

    def test_401_anonymous(self, api):
        response = api.get("/api/leads/")

        error = assert_error(response, 401, code="not_authenticated", fields={})
        assert "Bearer" in error["message"]
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'

    def test_401_wrong_password(self, api, sales):
        response = api.post("/api/auth/token/", {"email": sales.email, "password": "nope"}, format="json")

        assert_error(response, 401, code="no_active_account", fields={})

    def test_403_role(self, as_sales, lead):
        error = assert_error(
            as_sales.delete(f"/api/leads/{lead.pk}/"), 403, code="permission_denied", fields={}
        )

        assert "managers" in error["message"].lower()

    def test_404_lead(self, as_manager):
        error = assert_error(as_manager.get("/api/leads/424242/"), 404, code="not_found", fields={})

        assert "cannot see" in error["message"]

    @pytest.mark.parametrize(
        "path",
        [
            "/api/nothing/",
            "/api/nothing",
            "/api/leads/abc/",
            "/api/leads/1/nothing/",
            "/api/leads/1/stage/extra",
            "/api/v2/leads/",
            "/api/auth/",
        ],
    )
    @pytest.mark.parametrize("who", ["api", "as_manager"])
    def test_404_unknown_api_url_is_json(self, request, path, who):
        client = request.getfixturevalue(who)

        response = client.get(path)

        error = assert_error(response, 404, code="not_found", fields={})
        assert "endpoint" in error["message"]

    def test_404_outside_the_api_stays_html(self, manager_client):
        response = manager_client.get("/no-such-page/")

        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("delete", "/api/leads/"),
            ("put", "/api/leads/"),
            ("post", "/api/leads/{pk}/"),
            ("put", "/api/leads/{pk}/stage"),
            ("get", "/api/leads/{pk}/owner/"),
            ("get", "/api/auth/token/"),
            ("post", "/api/auth/me/"),
            ("post", "/api/users/"),
        ],
    )
    def test_405_method_not_allowed(self, as_manager, lead, method, path):
        response = getattr(as_manager, method)(path.format(pk=lead.pk), {}, format="json")

        error = assert_error(response, 405, code="method_not_allowed", fields={})
        assert method.upper() in error["message"]
        assert "Allow" in response

    def test_406_not_acceptable(self, as_manager):
        response = as_manager.get("/api/leads/", HTTP_ACCEPT="application/xml")

        assert_error(response, 406, code="not_acceptable", fields={})

    def test_409_duplicate_names_the_existing_lead(self, as_manager, lead):
        response = as_manager.post("/api/leads/", {"name": "Dup", "email": lead.email}, format="json")

        error = assert_error(response, 409, code="duplicate", fields={"email"}, extra={"existing_id"})
        assert error["existing_id"] == lead.pk

    def test_409_stale_version_carries_the_current_lead(self, as_sales, lead):
        response = as_sales.patch(
            f"/api/leads/{lead.pk}/stage", {"stage": "Won", "version": 7}, format="json"
        )

        error = assert_error(response, 409, code="stale_version", fields={}, extra={"current"})
        assert error["current"]["id"] == lead.pk

    @pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "text/csv"])
    def test_415_unsupported_media_type(self, as_manager, content_type):
        response = as_manager.post("/api/leads/", "name=Ann", content_type=content_type)

        error = assert_error(response, 415, code="unsupported_media_type", fields={})
        assert content_type in error["message"]
        assert not Lead.objects.exists()

    def test_415_with_an_idempotency_key_too(self, as_manager):
        response = as_manager.post("/api/leads/", "x", content_type="text/plain", HTTP_IDEMPOTENCY_KEY="k1")

        assert_error(response, 415, code="unsupported_media_type")
        assert not IdempotencyKey.objects.exists()

    def test_422_idempotency_key_reused_with_another_body(self, as_manager):
        as_manager.post(
            "/api/leads/", {"name": "A", "email": "a@x.example"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )

        response = as_manager.post(
            "/api/leads/", {"name": "B", "email": "b@x.example"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )

        assert_error(response, 422, code="idempotency_key_reused", fields={})

    def test_429_per_user_with_retry_after(self, slow_rates, as_sales, as_manager):
        first, second, third = (as_sales.get("/api/stages/") for _ in range(3))

        assert (first.status_code, second.status_code) == (200, 200)
        error = assert_error(third, 429, code="throttled", fields={})
        assert "second" in error["message"]
        assert 1 <= int(third["Retry-After"]) <= 60
        assert as_manager.get("/api/stages/").status_code == 200  # each user has their own budget

    def test_429_anonymous_on_the_login_endpoint(self, slow_rates, api, sales):
        responses = [
            api.post("/api/auth/token/", {"email": sales.email, "password": "guess"}, format="json")
            for _ in range(3)
        ]

        assert [r.status_code for r in responses[:2]] == [401, 401]
        assert_error(responses[2], 429, code="throttled")
        assert int(responses[2]["Retry-After"]) >= 1
        # Even the right password waits now.
        right = api.post(
            "/api/auth/token/", {"email": sales.email, "password": DEFAULT_PASSWORD}, format="json"
        )
        assert_error(right, 429, code="throttled")

    def test_429_rates_are_read_from_settings_per_request(self, settings, as_sales):
        settings.API_THROTTLE_RATES = {"anon": "1/min", "user": "1/min"}
        as_sales.get("/api/stages/")
        assert as_sales.get("/api/stages/").status_code == 429

        settings.API_THROTTLE_RATES = {"anon": "100/min", "user": "100/min"}

        assert as_sales.get("/api/stages/").status_code == 200

    def test_500_unexpected_error_on_a_read(self, monkeypatch, caplog, manager, lead):
        def broken(user):
            raise RuntimeError("database on fire")

        monkeypatch.setattr(selectors, "visible_leads", broken)
        client = APIClient(raise_request_exception=False)
        client.force_authenticate(manager)

        response = client.get("/api/leads/")

        error = assert_error(response, 500, code="server_error", fields={})
        assert "on fire" not in response.content.decode()  # no internals leak
        assert "nothing was half-saved" in error["message"]
        assert "Unexpected API error" in caplog.text

    def test_500_unexpected_error_mid_write_leaves_nothing_written(self, monkeypatch, manager, lead):
        real_record = services._record

        def record_then_fail(**kwargs):
            real_record(**kwargs)
            raise RuntimeError("disk full")

        monkeypatch.setattr(services, "_record", record_then_fail)
        client = APIClient(raise_request_exception=False)
        client.force_authenticate(manager)
        before = (Lead.objects.count(), Activity.objects.count())

        created = client.post(
            "/api/leads/",
            {"name": "Half Saved", "email": "half@x.example"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="retry-me",
        )
        moved = client.patch(f"/api/leads/{lead.pk}/stage", {"stage": "Won"}, format="json")

        assert_error(created, 500, code="server_error", fields={})
        assert_error(moved, 500, code="server_error", fields={})
        assert (Lead.objects.count(), Activity.objects.count()) == before
        assert Lead.objects.get(pk=lead.pk).stage.name == "New Lead"
        assert Lead.objects.get(pk=lead.pk).version == lead.version
        # The failed attempt did not burn the key: a retry runs for real.
        assert not IdempotencyKey.objects.exists()
        monkeypatch.setattr(services, "_record", real_record)
        retried = client.post(
            "/api/leads/",
            {"name": "Half Saved", "email": "half@x.example"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="retry-me",
        )
        assert retried.status_code == 201
        assert "Idempotent-Replayed" not in retried

    def test_500_outside_a_drf_view_is_json_under_api(self):
        api_response = errors.server_error(RequestFactory().get("/api/leads/"))
        page_response = errors.server_error(RequestFactory().get("/leads/"))

        assert api_response.status_code == 500
        assert api_response["Content-Type"] == "application/json"
        assert api_response.content.decode().startswith('{"error": {"code": "server_error"')
        assert page_response["Content-Type"].startswith("text/html")


# --- bad input is a 4xx, never a 500 --------------------------------------------------------------

BAD_INPUT = [
    # Query parameters: NUL characters (PostgreSQL refuses them), huge numbers, nonsense dates.
    ("get", "/api/leads/?source=%00", None, {}),
    ("get", "/api/leads/?stage=a%00b", None, {}),
    ("get", "/api/leads/?query=a%00b", None, {}),
    ("get", "/api/leads/?owner=%00", None, {}),
    ("get", "/api/leads/?ordering=%00", None, {}),
    ("get", "/api/leads/?page=%00", None, {}),
    ("get", "/api/leads/?stage=99999999999999999999", None, {}),
    ("get", "/api/leads/?owner=9223372036854775808", None, {}),
    ("get", "/api/leads/?source=50%25", None, {}),
    ("get", "/api/leads/?created_after=2024-13-45", None, {}),
    ("get", "/api/leads/?created_after=99999-01-01", None, {}),
    ("get", "/api/leads/?page=99999999999999999999", None, {}),
    ("get", "/api/leads/?query=" + "x" * 500, None, {}),
    ("get", "/api/leads/99999999999999999999/", None, {}),
    ("get", "/api/leads/9223372036854775808/activities/", None, {}),
    ("get", "/api/stages/9223372036854775808/", None, {}),
    ("get", "/api/users/9223372036854775808/", None, {}),
    # Bodies.
    ("post", "/api/leads/", {"name": "a\x00b", "email": "a@b.example"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "source": "a\x00"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "stage": "a\x00"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a\x00@b.example"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "value": "1e400"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "value": "NaN"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "value": "99999999999"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "owner": 99999999999999999999}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "stage": 99999999999999999999}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example", "source": "9223372036854775808"}, {}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example"}, {"HTTP_IDEMPOTENCY_KEY": "a\x00b"}),
    ("post", "/api/leads/", {"name": "ab", "email": "a@b.example"}, {"HTTP_IDEMPOTENCY_KEY": "k" * 256}),
    (
        "post",
        "/api/leads/{pk}/activities/",
        {"kind": "meeting", "occurred_at": "0001-01-01T00:00:00+14:00"},
        {},
    ),
    ("post", "/api/leads/{pk}/activities/", {"kind": "note", "body": "a\x00"}, {}),
    (
        "post",
        "/api/leads/{pk}/activities/",
        {"kind": "call", "outcome": "connected", "duration_minutes": 1e30},
        {},
    ),
    ("patch", "/api/leads/{pk}/", {"version": 99999999999999999999}, {}),
    ("patch", "/api/leads/{pk}/", {"value": {"nested": True}}, {}),
    ("patch", "/api/leads/{pk}/stage", {"stage": "Won", "version": 99999999999999999999}, {}),
    ("patch", "/api/leads/{pk}/owner", {"owner": {"id": 1}}, {}),
    ("patch", "/api/stages/{stage}/", {"position": 2**63}, {}),
    ("post", "/api/stages/", {"name": "a\x00"}, {}),
    ("post", "/api/sources/", {"name": ["Facebook"]}, {}),
    ("post", "/api/auth/token/", {"email": "a\x00", "password": "b"}, {}),
    ("post", "/api/auth/token/refresh/", {"refresh": "a\x00.b.c"}, {}),
    ("post", "/api/auth/logout/", {"refresh": {"token": 1}}, {}),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), BAD_INPUT)
def test_bad_input_is_answered_in_the_error_shape_never_with_a_500(
    as_manager, manager, method, path, body, headers
):
    lead = LeadFactory(owner=manager)
    path = path.format(pk=lead.pk, stage=lead.stage_id)
    send = getattr(as_manager, method)

    response = send(path, body, format="json", **headers) if body is not None else send(path, **headers)

    assert 400 <= response.status_code < 500
    # A huge `version` is simply stale: a 409 that carries the current lead.
    assert_error(response, response.status_code, extra=set(response.json()["error"]) & {"current"})
