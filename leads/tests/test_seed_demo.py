"""seed_demo: demo logins and leads with real timelines, only when asked for, and only once."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import User
from accounts.roles import Role
from leads.management.commands.seed_demo import DEMO_PASSWORD
from leads.models import Activity, Lead, Stage
from leads.normalization import normalize_email, normalize_phone

pytestmark = pytest.mark.django_db

DEMO_ROLES = {
    "admin@example.com": Role.ADMIN,
    "manager@example.com": Role.MANAGER,
    "sales@example.com": Role.SALES,
    "sales2@example.com": Role.SALES,
}


def seed(*args):
    out = StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def counts():
    return User.objects.count(), Lead.objects.count(), Activity.objects.count()


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


def test_it_refuses_to_run_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        seed()
    assert counts() == (0, 0, 0)


def test_force_seeds_without_debug(settings):
    settings.DEBUG = False
    seed("--force", "--leads", "5")
    assert Lead.objects.count() == 5


def test_it_seeds_logins_and_about_200_leads_with_timelines(debug, client):
    output = seed()

    users = {user.email: user for user in User.objects.all()}
    assert {email: user.role for email, user in users.items()} == DEMO_ROLES
    assert all(user.first_name and user.last_name for user in users.values())
    for email in DEMO_ROLES:
        assert email in output
        # Through the login page: django-axes refuses authenticate() calls without a request.
        response = client.post(reverse("login"), {"username": email, "password": DEMO_PASSWORD})
        assert response.status_code == 302, email
    assert DEMO_PASSWORD in output

    leads = Lead.objects.select_related("owner")
    assert leads.count() == 200
    assert set(leads.values_list("stage__name", flat=True)) == set(
        Stage.objects.values_list("name", flat=True)
    )
    assert leads.values("source").distinct().count() >= 5
    owners = set(leads.values_list("owner__email", flat=True))
    assert {"sales@example.com", "sales2@example.com", None} <= owners
    # What the services store: normalised contacts, and a lost reason on every lost lead.
    for lead in leads:
        assert lead.email == normalize_email(lead.email)
        assert lead.phone == normalize_phone(lead.phone)
    assert not leads.filter(stage__kind=Stage.Kind.LOST, lost_reason="").exists()

    timeline = Activity.objects.values_list("kind", flat=True)
    assert set(timeline) >= {"created", "stage_changed", "owner_changed", "note", "call", "meeting"}
    assert Activity.objects.filter(kind="created").count() == 200
    # The leads have a past: created over weeks, not all this second.
    assert leads.dates("created_at", "day").count() > 30


def test_a_second_run_changes_nothing(debug):
    seed("--leads", "30")
    before = counts()
    versions = dict(Lead.objects.values_list("pk", "version"))
    output = seed("--leads", "30")
    assert counts() == before
    assert dict(Lead.objects.values_list("pk", "version")) == versions
    assert "nothing was changed" in output


def test_it_leaves_existing_demo_users_alone(debug):
    User.objects.create_user(email="sales@example.com", password="their-own-password", role=Role.SALES)
    seed("--leads", "3")
    assert User.objects.get(email="sales@example.com").check_password("their-own-password")
    assert User.objects.count() == 4


def test_a_refusal_stops_the_seed_with_a_message_and_saves_nothing(debug):
    User.objects.create_user(email="sales@example.com", password="x", role=Role.SALES, is_active=False)
    with pytest.raises(CommandError, match="Nothing was saved"):
        seed("--leads", "40")
    assert Lead.objects.count() == 0
