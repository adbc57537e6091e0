"""Sessions: a new key at each login; "log out everywhere" (button and API) ends every session and token."""

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import services
from leads.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
ADMIN_LOGIN = reverse("admin:login")
LOGOUT_EVERYWHERE = reverse("logout_everywhere")
BOARD = reverse("leads:board")
TOKEN = "/api/auth/token/"
REFRESH = "/api/auth/token/refresh/"
LOGOUT_ALL = "/api/auth/logout-all/"
ME = "/api/auth/me/"


def api_tokens(user):
    response = APIClient().post(TOKEN, {"email": user.email, "password": DEFAULT_PASSWORD}, format="json")
    assert response.status_code == 200
    return response.json()


def bearer(access):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return api


def signed_in(client):
    return "_auth_user_id" in client.session


class TestSessionRotation:
    @pytest.mark.parametrize("url", [LOGIN, ADMIN_LOGIN])
    def test_logging_in_gives_a_new_session_key(self, client, manager, url):
        client.get(url)  # A session before login: what a fixation attack would plant.
        session = client.session
        session["planted"] = "yes"
        session.save()
        before = session.session_key

        response = client.post(url, {"username": manager.email, "password": DEFAULT_PASSWORD})

        assert response.status_code == 302
        assert client.session.session_key != before
        assert signed_in(client)


class TestSessionEpoch:
    def test_epoch_zero_keeps_djangos_hash_so_existing_sessions_survive_the_upgrade(self, sales):
        assert sales.session_epoch == 0
        assert sales.get_session_auth_hash() == AbstractBaseUser.get_session_auth_hash(sales)

    def test_a_new_epoch_gives_a_new_hash(self, sales):
        before = sales.get_session_auth_hash()

        services.log_out_everywhere(user=sales)

        assert sales.session_epoch == 1
        assert sales.get_session_auth_hash() != before


class TestLogOutEverywherePage:
    def test_the_button_is_in_the_account_menu_as_a_plain_post_form(self, sales_client):
        page = sales_client.get(BOARD).content.decode()

        assert f'action="{LOGOUT_EVERYWHERE}"' in page
        assert "Log out everywhere" in page

    def test_it_ends_every_session_and_token_of_the_user_and_only_theirs(
        self, sales, other_sales, django_assert_max_num_queries
    ):
        here, laptop, phone, colleague = Client(), Client(), Client(), Client()
        for browser in (here, laptop, phone):
            browser.force_login(sales)
        colleague.force_login(other_sales)
        tokens = api_tokens(sales)
        their_tokens = api_tokens(other_sales)

        with django_assert_max_num_queries(25):
            response = here.post(LOGOUT_EVERYWHERE, follow=True)

        assert response.redirect_chain[-1][0] == LOGIN
        assert "logged out on every device" in response.content.decode()
        for browser in (here, laptop, phone):
            assert browser.get(BOARD).status_code == 302  # to the login page
        assert colleague.get(BOARD).status_code == 200
        assert APIClient().post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 401
        assert bearer(tokens["access"]).get(ME).status_code == 401
        assert bearer(their_tokens["access"]).get(ME).status_code == 200
        assert BlacklistedToken.objects.filter(token__user=sales).count() == 1
        assert not BlacklistedToken.objects.filter(token__user=other_sales).exists()

    def test_logging_in_again_afterwards_works(self, client, sales):
        client.force_login(sales)
        client.post(LOGOUT_EVERYWHERE)

        response = client.post(LOGIN, {"username": sales.email, "password": DEFAULT_PASSWORD})

        assert response.status_code == 302
        assert client.get(BOARD).status_code == 200
        assert bearer(api_tokens(sales)["access"]).get(ME).status_code == 200

    def test_it_is_post_only_and_needs_a_login(self, client, sales):
        assert client.post(LOGOUT_EVERYWHERE).status_code == 302  # to the login page
        client.force_login(sales)
        assert client.get(LOGOUT_EVERYWHERE).status_code == 405
        assert signed_in(client)


class TestLogOutEverywhereApi:
    def test_it_blacklists_every_refresh_token_and_stops_every_access_token(
        self, sales, django_assert_max_num_queries
    ):
        first, second = api_tokens(sales), api_tokens(sales)
        rotated = APIClient().post(REFRESH, {"refresh": second["refresh"]}, format="json").json()
        browser = Client()
        browser.force_login(sales)

        with django_assert_max_num_queries(20):
            response = bearer(first["access"]).post(LOGOUT_ALL)

        assert response.status_code == 204
        for pair in (first, rotated):
            assert bearer(pair["access"]).get(ME).status_code == 401
            assert APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 401
        assert browser.get(BOARD).status_code == 302
        live = OutstandingToken.objects.filter(user=sales).exclude(blacklistedtoken__isnull=False)
        assert not live.exists()

    def test_a_stopped_access_token_answers_in_the_error_shape(self, sales):
        access = api_tokens(sales)["access"]
        bearer(access).post(LOGOUT_ALL)

        response = bearer(access).get(ME)

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "token_not_valid"
        assert "log out everywhere" in response.json()["error"]["message"]

    def test_a_session_can_call_it_too(self, sales):
        api = APIClient(enforce_csrf_checks=False)
        api.force_login(sales)

        assert api.post(LOGOUT_ALL).status_code == 204
        assert api.get(ME).status_code in (401, 403)

    def test_anonymous_is_a_401(self):
        response = APIClient().post(LOGOUT_ALL)

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"

    def test_tokens_from_before_the_field_existed_still_work(self, sales):
        # Tokens minted before this release carry no epoch claim: they count as epoch 0.
        from rest_framework_simplejwt.tokens import RefreshToken

        access = RefreshToken.for_user(sales).access_token

        assert bearer(str(access)).get(ME).status_code == 200
