"""One canonical e-mail (accounts.identity) for storage, the login lookup and the lockout count.

Regression: the lookup was `email__iexact`, and PostgreSQL's UPPER() maps 'ı' to 'I' and 'ſ' to
'S' where Python's lower() (django-axes' count) keeps them apart, so "ıris@…" logged in as
iris@… while its failures were counted against another e-mail: a per-account lockout bypass.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services
from accounts.identity import canonical_email
from accounts.models import User
from accounts.roles import Role
from leads.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LIMIT = 3
DOORS = {"page": reverse("login"), "admin": reverse("admin:login"), "api": "/api/auth/token/"}
# Spellings a case-insensitive database match (or NFKC) could take for iris@example.com.
LOOKALIKES = ["\u0131ris@example.com", "\u0130ris@example.com", "IR\u0130S@example.com"]
# Spellings that are iris@example.com once NFKC-normalised and lower-cased: these are that account.
SAME_ACCOUNT = ["IRIS@EXAMPLE.COM", " Iris@Example.com ", "\uff49\uff52\uff49\uff53@example.com"]


@pytest.fixture(autouse=True)
def _short_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


@pytest.fixture
def iris(db):
    return UserFactory(email="iris@example.com", role=Role.MANAGER)


def log_in(door, email, password, ip):
    """(status, logged in?) for one login through a door, from one IP."""
    if door == "api":
        response = APIClient().post(
            DOORS[door], {"email": email, "password": password}, format="json", REMOTE_ADDR=ip
        )
        return response.status_code, response.status_code == 200 and "access" in response.json()
    client = APIClient()
    response = client.post(DOORS[door], {"username": email, "password": password}, REMOTE_ADDR=ip)
    return response.status_code, "_auth_user_id" in client.session


def test_canonical_email_folds_compatibility_forms_and_case_but_not_distinct_letters():
    assert canonical_email(" Sales@Example.COM ") == "sales@example.com"
    assert canonical_email("\u017fales@example.com") == "sales@example.com"  # long s
    assert canonical_email("\u212aim@example.com") == "kim@example.com"  # Kelvin sign
    assert canonical_email("\uff49ris@example.com") == "iris@example.com"  # full-width
    assert canonical_email("\u0131ris@example.com") == "\u0131ris@example.com"  # dotless i stays
    assert canonical_email(None) == ""


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("spelling", ["iris@example.com", *SAME_ACCOUNT])
def test_any_ascii_case_or_compatibility_spelling_logs_in_on_every_door(
    door, spelling, iris, django_assert_max_num_queries
):
    with django_assert_max_num_queries(20):
        status, logged_in = log_in(door, spelling, DEFAULT_PASSWORD, "198.51.100.7")

    assert logged_in, status


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("spelling", LOOKALIKES)
def test_a_lookalike_spelling_is_not_the_account(door, spelling, iris):
    # On PostgreSQL this logged in as iris@example.com while axes counted another e-mail.
    status, logged_in = log_in(door, spelling, DEFAULT_PASSWORD, "198.51.100.8")

    assert not logged_in, status
    assert status in (200, 401)


@pytest.mark.parametrize("door", DOORS)
def test_a_locked_account_stays_locked_whatever_the_spelling_and_ip(door, iris):
    for n in range(LIMIT):
        log_in("api", "iris@example.com", "not-the-password", f"203.0.113.{n}")

    for n, spelling in enumerate(SAME_ACCOUNT + LOOKALIKES):
        status, logged_in = log_in(door, spelling, DEFAULT_PASSWORD, f"192.0.2.{n + 10}")
        assert not logged_in, (spelling, status)
        if spelling in SAME_ACCOUNT:
            assert status == 429, (spelling, status)


def test_failures_under_any_spelling_of_the_account_count_as_that_account(iris):
    for n, spelling in enumerate(SAME_ACCOUNT):
        log_in("api", spelling, "not-the-password", f"203.0.113.{n}")

    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"iris@example.com"}
    assert log_in("page", "iris@example.com", DEFAULT_PASSWORD, "192.0.2.99")[0] == 429


def test_the_lookup_is_an_exact_match_on_the_canonical_form(iris, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert User.objects.get_by_natural_key(" \uff29RIS@example.COM") == iris
    for spelling in [*LOOKALIKES, None, 42]:
        with pytest.raises(User.DoesNotExist):
            User.objects.get_by_natural_key(spelling)


class TestEveryCreationPathStoresTheCanonicalForm:
    TYPED = " \uff2dixed.\u017fpelling@Example.COM "
    STORED = "mixed.spelling@example.com"
    # Django's EmailValidator accepts these (its [A-Z] with IGNORECASE matches Kelvin K and long s);
    # the validated doors (createsuperuser, the admin form) must still store the canonical form.
    VALIDATED = "\u212aim.\u017fpelling@Example.COM"

    def test_create_user_and_save(self):
        user = User.objects.create_user(self.TYPED, DEFAULT_PASSWORD)
        assert User.objects.get(pk=user.pk).email == self.STORED
        user.email = "\u212aIM@Example.com"
        user.save()
        assert User.objects.get(pk=user.pk).email == "kim@example.com"

    def test_createsuperuser(self, monkeypatch):
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-demo-passphrase")
        call_command(
            "createsuperuser",
            "--noinput",
            email=self.VALIDATED,
            first_name="Ada",
            last_name="Admin",
            verbosity=0,
        )
        assert User.objects.get(role=Role.ADMIN).email == "kim.spelling@example.com"

    def test_invitations_and_the_admin_add_page(self, client, admin_user, django_assert_max_num_queries):
        services.invite_user(
            actor=admin_user, email=self.TYPED, first_name="A", last_name="B", role=Role.SALES
        )
        assert User.objects.filter(email=self.STORED).exists()

        client.force_login(admin_user)
        with django_assert_max_num_queries(40):
            response = client.post(
                reverse("admin:accounts_user_add"),
                {
                    "email": self.VALIDATED,
                    "first_name": "O",
                    "last_name": "T",
                    "role": Role.SALES,
                    "password1": "a-long-demo-passphrase",
                    "password2": "a-long-demo-passphrase",
                },
            )
        assert response.status_code == 302
        assert User.objects.filter(email="kim.spelling@example.com").exists()

    def test_the_same_address_in_another_spelling_is_a_duplicate(self, admin_user):
        services.invite_user(
            actor=admin_user, email=self.STORED, first_name="A", last_name="B", role=Role.SALES
        )
        with pytest.raises(Exception, match="already has an account"):
            services.invite_user(
                actor=admin_user, email=self.TYPED, first_name="A", last_name="B", role=Role.SALES
            )
