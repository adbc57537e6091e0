"""Wrong current passwords on the password-change pages count towards the login lockout.

Regression: Django's PasswordChangeForm checks the current password with check_password(),
which django-axes never sees, so a borrowed session could guess it without limit there.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from leads.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 3
NEW = "Zq9!a-long-new-passphrase"
PAGES = {"account": reverse("password_change"), "admin": reverse("admin:password_change")}


@pytest.fixture(autouse=True)
def _short_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


@pytest.fixture
def signed_in(client, manager):
    # A manager: both the account page and the admin's own password change are open to them.
    client.force_login(manager)
    return client


def change(client, page, old, ip="198.51.100.1"):
    return client.post(
        PAGES[page], {"old_password": old, "new_password1": NEW, "new_password2": NEW}, REMOTE_ADDR=ip
    )


@pytest.mark.parametrize("page", PAGES)
def test_the_right_current_password_changes_it(page, signed_in, manager, django_assert_max_num_queries):
    with django_assert_max_num_queries(25):
        response = change(signed_in, page, DEFAULT_PASSWORD)

    assert response.status_code == 302
    assert User.objects.get(pk=manager.pk).check_password(NEW)
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize("page", PAGES)
def test_a_wrong_current_password_is_counted_against_the_account_and_ip(page, signed_in, manager):
    response = change(signed_in, page, "guess-1")

    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    (attempt,) = AccessAttempt.objects.all()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == (
        manager.email,
        "198.51.100.1",
        1,
    )


@pytest.mark.parametrize("page", PAGES)
def test_guessing_locks_out_with_the_login_message_and_refuses_even_the_right_password(
    page, signed_in, manager, client, django_assert_max_num_queries
):
    for n in range(LIMIT - 1):
        assert change(signed_in, page, f"guess-{n}").status_code == 200
    with django_assert_max_num_queries(25):
        response = change(signed_in, page, "guess-last")

    assert response.status_code == 429
    assert "Too many failed attempts to log in. Try again in 15 minutes" in response.content.decode()
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60

    # Locked: the right current password is refused too, from another IP, and nothing changed.
    response = change(signed_in, page, DEFAULT_PASSWORD, ip="203.0.113.9")
    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert User.objects.get(pk=manager.pk).check_password(DEFAULT_PASSWORD)


def test_password_change_guesses_and_failed_logins_count_together(signed_in, manager):
    for n in range(LIMIT - 1):
        APIClient().post(
            "/api/auth/token/",
            {"email": manager.email, "password": "x"},
            format="json",
            REMOTE_ADDR=f"192.0.2.{n}",
        )

    response = change(signed_in, "account", "guess", ip="203.0.113.50")

    assert response.status_code == 429
