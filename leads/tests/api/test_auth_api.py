"""/api/auth/: JWT login, refresh with rotation, logout, the current user; and session auth with CSRF."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, UntypedToken

from accounts.roles import Role
from leads.models import Lead
from leads.tests.api.contract import USER_KEYS, assert_error
from leads.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
REFRESH_URL = "/api/auth/token/refresh/"
LOGOUT_URL = "/api/auth/logout/"
ME_URL = "/api/auth/me/"


def log_in(api, user, password=DEFAULT_PASSWORD):
    return api.post(TOKEN_URL, {"email": user.email, "password": password}, format="json")


def bearer(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


class TestToken:
    def test_email_and_password_give_an_access_and_a_refresh_token(self, api, sales):
        response = log_in(api, sales)

        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access", "refresh"}
        assert AccessToken(body["access"])["user_id"] == str(sales.pk)
        assert RefreshToken(body["refresh"])["user_id"] == str(sales.pk)

    def test_the_access_token_authenticates(self, api, sales):
        access = log_in(api, sales).json()["access"]

        response = bearer(access).get("/api/leads/")

        assert response.status_code == 200

    def test_logging_in_records_last_login(self, api, sales):
        log_in(api, sales)

        sales.refresh_from_db()
        assert sales.last_login is not None

    @pytest.mark.parametrize(
        ("email", "password"),
        [
            ("sales@test.example", "wrong-password"),
            ("nobody@test.example", DEFAULT_PASSWORD),
        ],
    )
    def test_a_wrong_email_or_password_is_a_401_in_the_error_shape(self, api, sales, email, password):
        response = api.post(TOKEN_URL, {"email": email, "password": password}, format="json")

        error = assert_error(response, 401, code="no_active_account", fields={})
        assert "credentials" in error["message"]
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_a_deactivated_user_cannot_log_in(self, api):
        gone = UserFactory(is_active=False)

        assert_error(log_in(api, gone), 401, code="no_active_account")

    @pytest.mark.parametrize(
        ("payload", "fields"),
        [({}, {"email", "password"}), ({"email": "sales@test.example"}, {"password"})],
    )
    def test_missing_credentials_are_a_400_naming_them(self, api, sales, payload, fields):
        response = api.post(TOKEN_URL, payload, format="json")

        assert_error(response, 400, code="invalid", fields=fields)

    def test_lifetimes_are_15_minutes_and_7_days_from_settings(self, api, sales):
        assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] == timedelta(minutes=15)
        assert settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] == timedelta(days=7)
        body = log_in(api, sales).json()

        access, refresh = UntypedToken(body["access"]), UntypedToken(body["refresh"])

        assert access["token_type"] == "access"
        assert access["exp"] - access["iat"] == 15 * 60
        assert refresh["token_type"] == "refresh"
        assert refresh["exp"] - refresh["iat"] == 7 * 24 * 60 * 60

    def test_an_expired_access_token_is_a_401(self, sales):
        token = AccessToken.for_user(sales)
        token.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=15))

        response = bearer(str(token)).get("/api/leads/")

        error = assert_error(response, 401, code="token_not_valid", fields={})
        assert "not valid" in error["message"].lower() or "expired" in error["message"].lower()

    @pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer ", "Bearer a.b.c"])
    def test_a_malformed_token_is_a_401(self, header):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)

        assert_error(client.get("/api/leads/"), 401)

    def test_a_refresh_token_is_not_an_access_token(self, api, sales):
        refresh = log_in(api, sales).json()["refresh"]

        assert_error(bearer(refresh).get("/api/leads/"), 401, code="token_not_valid")

    def test_a_deactivated_users_token_stops_working(self, api, sales):
        access = log_in(api, sales).json()["access"]
        sales.is_active = False
        sales.save()

        assert_error(bearer(access).get("/api/leads/"), 401)


class TestRefresh:
    def test_refresh_rotates_and_the_old_refresh_token_is_then_refused(self, api, sales):
        first = log_in(api, sales).json()

        rotated = api.post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")
        replayed = api.post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")

        assert rotated.status_code == 200
        body = rotated.json()
        assert set(body) == {"access", "refresh"}
        assert body["refresh"] != first["refresh"]
        assert bearer(body["access"]).get(ME_URL).json()["id"] == sales.pk
        assert_error(replayed, 401, code="token_not_valid")
        assert api.post(REFRESH_URL, {"refresh": body["refresh"]}, format="json").status_code == 200

    @pytest.mark.parametrize("payload", [{}, {"refresh": ""}])
    def test_a_missing_refresh_token_is_a_400(self, api, payload):
        assert_error(api.post(REFRESH_URL, payload, format="json"), 400, code="invalid", fields={"refresh"})

    def test_garbage_is_a_401(self, api):
        assert_error(
            api.post(REFRESH_URL, {"refresh": "garbage"}, format="json"), 401, code="token_not_valid"
        )


class TestLogout:
    def test_logout_blacklists_the_refresh_token(self, api, sales):
        tokens = log_in(api, sales).json()

        response = api.post(LOGOUT_URL, {"refresh": tokens["refresh"]}, format="json")
        refreshed = api.post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json")

        assert response.status_code == 204
        assert response.content == b""
        assert_error(refreshed, 401, code="token_not_valid")

    def test_logging_out_twice_is_a_400_naming_the_token(self, api, sales):
        refresh = log_in(api, sales).json()["refresh"]
        api.post(LOGOUT_URL, {"refresh": refresh}, format="json")

        response = api.post(LOGOUT_URL, {"refresh": refresh}, format="json")

        assert_error(response, 400, code="invalid", fields={"refresh"})

    @pytest.mark.parametrize("refresh", ["garbage", "", "access"])
    def test_something_that_is_not_a_refresh_token_is_a_400(self, api, sales, refresh):
        if refresh == "access":
            refresh = log_in(api, sales).json()["access"]

        response = api.post(LOGOUT_URL, {"refresh": refresh}, format="json")

        assert_error(response, 400, code="invalid", fields={"refresh"})

    def test_logout_with_the_access_token_in_the_header_works_too(self, api, sales):
        tokens = log_in(api, sales).json()

        response = bearer(tokens["access"]).post(LOGOUT_URL, {"refresh": tokens["refresh"]}, format="json")

        assert response.status_code == 204


class TestMe:
    @pytest.mark.parametrize("role", [Role.SALES, Role.MANAGER, Role.ADMIN])
    def test_the_signed_in_user_with_role(self, api, role):
        user = UserFactory(role=role, email=f"{role}@me.example", first_name="Pat", last_name="Doe")
        access = log_in(api, user).json()["access"]

        response = bearer(access).get(ME_URL)

        assert response.status_code == 200
        assert response.json() == {
            "id": user.pk,
            "name": "Pat Doe",
            "email": f"{role}@me.example",
            "role": role.value,
            "active": True,
        }
        assert set(response.json()) == USER_KEYS

    def test_anonymous_is_a_401(self, api):
        response = api.get(ME_URL)

        assert_error(response, 401, code="not_authenticated")
        assert response["WWW-Authenticate"].startswith("Bearer")


class TestSession:
    @pytest.fixture
    def browser(self, sales):
        """A logged-in browser session: CSRF is enforced as it is for real browsers."""
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(sales)
        return client

    def test_a_session_reads(self, browser, lead):
        response = browser.get("/api/leads/")

        assert response.status_code == 200
        assert response.json()["count"] == 1

    def test_an_unsafe_request_without_the_csrf_token_is_a_403(self, browser, lead):
        created = browser.post("/api/leads/", {"name": "No Token", "email": "nt@x.example"}, format="json")
        moved = browser.patch(f"/api/leads/{lead.pk}/stage", {"stage": "Won"}, format="json")

        error = assert_error(created, 403, code="permission_denied")
        assert "CSRF" in error["message"]
        assert_error(moved, 403, code="permission_denied")
        assert not Lead.objects.filter(email="nt@x.example").exists()
        assert Lead.objects.get(pk=lead.pk).stage.name == "New Lead"

    def test_with_the_token_from_the_browsable_api_it_works(self, browser, sales):
        page = browser.get("/api/leads/", HTTP_ACCEPT="text/html")
        assert page.status_code == 200
        assert page["Content-Type"].startswith("text/html")
        assert b"Lead List" in page.content
        token = browser.cookies["csrftoken"].value

        response = browser.post(
            "/api/leads/",
            {"name": "With Token", "email": "wt@x.example"},
            format="json",
            HTTP_X_CSRFTOKEN=token,
        )

        assert response.status_code == 201
        assert Lead.objects.get(email="wt@x.example").created_by == sales

    def test_jwt_requests_need_no_csrf_token(self, api, sales):
        access = log_in(api, sales).json()["access"]
        client = APIClient(enforce_csrf_checks=True)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

        response = client.post("/api/leads/", {"name": "Jwt Person", "email": "jwt@x.example"}, format="json")

        assert response.status_code == 201
