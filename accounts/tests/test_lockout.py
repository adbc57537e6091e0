"""Brute-force lockout on every login door (login page, JWT, admin), per account and per IP, and unlocking."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import lockout
from leads.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
ADMIN_LOGIN = reverse("admin:login")
TOKEN = "/api/auth/token/"
LIMIT = 3


@pytest.fixture(autouse=True)
def _short_limit(settings):
    # The same code path as production's 5; three keeps each test short.
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def page_login(client, email, password, ip="198.51.100.1", url=LOGIN):
    return client.post(url, {"username": email, "password": password}, REMOTE_ADDR=ip)


def api_login(email, password, ip="198.51.100.1"):
    return APIClient().post(TOKEN, {"email": email, "password": password}, format="json", REMOTE_ADDR=ip)


def fail(client, email, times, ip="198.51.100.1", url=LOGIN):
    for _ in range(times):
        response = page_login(client, email, "not-the-password", ip=ip, url=url)
        assert response.status_code in (200, 429)
    return response


class TestLoginPage:
    def test_wrong_passwords_below_the_limit_say_wrong_password_and_the_right_one_still_works(
        self, client, sales
    ):
        response = fail(client, sales.email, LIMIT - 1)
        assert response.status_code == 200
        assert "do not match an active account" in response.content.decode()

        response = page_login(client, sales.email, DEFAULT_PASSWORD)

        assert response.status_code == 302
        assert client.session.get("_auth_user_id") == str(sales.pk)

    def test_the_failure_that_reaches_the_limit_locks_the_account_with_a_clear_message(
        self, client, sales, django_assert_max_num_queries
    ):
        fail(client, sales.email, LIMIT - 1)
        with django_assert_max_num_queries(12):
            response = page_login(client, sales.email, "not-the-password")

        assert response.status_code == 429
        page = response.content.decode()
        assert "Too many failed attempts" in page
        assert "Try again in 15 minutes or ask an administrator" in page
        assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60

    def test_a_locked_account_refuses_even_the_right_password_from_another_ip(self, client, sales):
        fail(client, sales.email, LIMIT)

        response = page_login(client, sales.email, DEFAULT_PASSWORD, ip="203.0.113.50")

        assert response.status_code == 429
        assert "Too many failed attempts" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_the_email_counts_whatever_its_case(self, client, sales):
        for email in ("Sales@Test.Example", "SALES@test.example", " sales@test.example "):
            page_login(client, email, "not-the-password")

        assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"sales@test.example"}
        assert page_login(client, sales.email, DEFAULT_PASSWORD).status_code == 429

    def test_any_case_of_the_email_still_logs_in_before_the_limit(self, client, sales):
        response = page_login(client, "Sales@Test.EXAMPLE", DEFAULT_PASSWORD)

        assert response.status_code == 302

    def test_one_ip_trying_many_accounts_is_locked_out_but_other_ips_are_not(
        self, client, sales, other_sales
    ):
        for n in range(LIMIT):
            page_login(client, f"nobody{n}@test.example", "guess", ip="192.0.2.66")

        assert page_login(client, sales.email, DEFAULT_PASSWORD, ip="192.0.2.66").status_code == 429
        assert page_login(client, other_sales.email, DEFAULT_PASSWORD, ip="192.0.2.67").status_code == 302

    def test_the_lock_lifts_after_the_cool_off(self, client, sales):
        fail(client, sales.email, LIMIT)
        # As if the failures were 16 minutes ago (the rows' time is all axes counts by).
        past = AccessAttempt.objects.first().attempt_time - timedelta(minutes=16)
        AccessAttempt.objects.update(attempt_time=past)

        assert page_login(client, sales.email, DEFAULT_PASSWORD).status_code == 302

    def test_attempts_while_locked_do_not_extend_the_lock(self, client, sales):
        fail(client, sales.email, LIMIT)
        AccessAttempt.objects.update(
            attempt_time=AccessAttempt.objects.first().attempt_time - timedelta(minutes=10)
        )

        response = fail(client, sales.email, 2)

        assert "Try again in 5 minutes" in response.content.decode()
        assert AccessAttempt.objects.get().failures_since_start == LIMIT

    def test_the_limit_and_cool_off_come_from_settings(self, client, sales, settings):
        settings.AXES_FAILURE_LIMIT = 2
        settings.AXES_COOLOFF_TIME = timedelta(minutes=30)

        response = fail(client, sales.email, 2)

        assert response.status_code == 429
        assert "Try again in 30 minutes" in response.content.decode()


class TestTokenEndpoint:
    def test_the_api_locks_out_in_the_error_shape_with_retry_after(
        self, sales, django_assert_max_num_queries
    ):
        for _ in range(LIMIT - 1):
            assert api_login(sales.email, "not-the-password").status_code == 401
        with django_assert_max_num_queries(12):
            response = api_login(sales.email, "not-the-password")

        assert response.status_code == 429
        error = response.json()["error"]
        assert error["code"] == "locked_out"
        assert error["message"].startswith("Too many failed attempts to log in. Try again in 15 minutes")
        assert error["fields"] == {}
        assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
        # Locked: the right password is refused too, from anywhere.
        assert api_login(sales.email, DEFAULT_PASSWORD, ip="203.0.113.9").status_code == 429

    def test_page_and_api_failures_count_together(self, client, sales):
        fail(client, sales.email, LIMIT - 1)

        response = api_login("SALES@test.example", "not-the-password", ip="203.0.113.9")

        assert response.status_code == 429
        assert page_login(client, sales.email, DEFAULT_PASSWORD, ip="192.0.2.1").status_code == 429

    def test_below_the_limit_the_right_password_gets_tokens(self, sales):
        api_login(sales.email, "not-the-password")

        response = api_login(sales.email, DEFAULT_PASSWORD)

        assert response.status_code == 200
        assert set(response.json()) == {"access", "refresh"}


class TestAdminLogin:
    def test_the_admin_login_locks_out_with_the_same_message(self, client, manager):
        response = fail(client, manager.email, LIMIT, url=ADMIN_LOGIN)

        assert response.status_code == 429
        assert "Too many failed attempts" in response.content.decode()
        assert page_login(client, manager.email, DEFAULT_PASSWORD, url=ADMIN_LOGIN).status_code == 429

    def test_the_admin_login_works_below_the_limit(self, client, manager):
        fail(client, manager.email, LIMIT - 1, url=ADMIN_LOGIN)

        response = page_login(client, manager.email, DEFAULT_PASSWORD, url=ADMIN_LOGIN)

        assert response.status_code == 302


class TestUnlock:
    def test_admins_see_lockouts_and_unlock_them_with_the_action(
        self, client, sales, admin_user, django_assert_max_num_queries
    ):
        fail(client, sales.email, LIMIT)
        admin = UserFactory(email="boss@test.example", role="admin")
        admin_client = type(client)()
        admin_client.force_login(admin)
        listing = reverse("admin:axes_accessattempt_changelist")

        page = admin_client.get(listing)
        assert page.status_code == 200
        assert "sales@test.example" in page.content.decode()

        with django_assert_max_num_queries(20):
            response = admin_client.post(
                listing,
                {
                    "action": "unlock",
                    "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True)),
                },
            )

        assert response.status_code == 302
        assert not AccessAttempt.objects.exists()
        assert page_login(client, sales.email, DEFAULT_PASSWORD).status_code == 302

    def test_managers_unlock_their_team_from_the_user_admin(self, client, sales, manager):
        fail(client, sales.email, LIMIT)
        page_login(client, "someone-else@test.example", "guess", ip="192.0.2.99")
        manager_client = type(client)()
        manager_client.force_login(manager)

        response = manager_client.post(
            reverse("admin:accounts_user_changelist"),
            {"action": "unlock_logins", "_selected_action": [sales.pk]},
        )

        assert response.status_code == 302
        assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["someone-else@test.example"]
        assert page_login(client, sales.email, DEFAULT_PASSWORD).status_code == 302


class TestClientIp:
    def test_remote_addr_by_default_whatever_x_forwarded_for_says(self, settings):
        settings.TRUSTED_PROXY_COUNT = 0
        request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4")

        assert lockout.client_ip(request) == "10.0.0.5"

    def test_behind_trusted_proxies_the_address_they_saw(self, settings):
        settings.TRUSTED_PROXY_COUNT = 1
        request = RequestFactory().get(
            "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
        )

        assert lockout.client_ip(request) == "203.0.113.7"

    def test_a_short_forwarded_header_falls_back_to_remote_addr(self, settings):
        settings.TRUSTED_PROXY_COUNT = 2
        request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.7")

        assert lockout.client_ip(request) == "10.0.0.5"

    def test_the_lockout_counts_the_proxied_client(self, client, sales, settings):
        settings.TRUSTED_PROXY_COUNT = 1
        client.post(
            LOGIN,
            {"username": sales.email, "password": "x"},
            REMOTE_ADDR="10.0.0.5",
            HTTP_X_FORWARDED_FOR="203.0.113.7",
        )

        assert AccessAttempt.objects.get().ip_address == "203.0.113.7"


def test_a_locked_login_under_asgi_answers_the_lockout_page_not_a_500(sales):
    # The ASGI handler (uvicorn, daphne) takes axes' async path, which calls the lockout
    # callable without the rendered page; WSGI test clients never see that path.
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    asgi = AsyncClient(raise_request_exception=False)
    for _ in range(LIMIT):
        response = async_to_sync(asgi.post)(
            LOGIN, {"username": sales.email, "password": "not-the-password"}, REMOTE_ADDR="198.51.100.9"
        )
    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0
