"""API writes, one-row reads and auth run a fixed number of queries, whatever the lead count.

Each test runs with 5 and with 500 other leads in the table and holds both to the same bound,
then checks the write really happened, so a bound cannot pass on a refused request.
Clients use force_authenticate, so no query is spent on reading a token's user.

Bound comments: [ ... ] is the service's transaction (a savepoint and its release in tests),
(write) a write in its own savepoint (three queries).
"""

import pytest
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from leads.models import Activity, IdempotencyKey, Lead, Source, Stage
from leads.tests.api.contract import assert_lead_shape, bulk_leads
from leads.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

LEAD_COUNTS = [5, 500]


@pytest.fixture(params=LEAD_COUNTS, ids=lambda n: f"{n}-leads")
def many_leads(request, sales, lead):
    """`lead` (owned by `sales`) among 5 or 500 other leads `sales` can see."""
    bulk_leads(request.param, owners=[sales])
    return request.param


def lead_url(lead, suffix=""):
    return f"/api/leads/{lead.pk}/{suffix}"


# --- leads -----------------------------------------------------------------------------------


def test_create_lead(as_sales, sales, many_leads, django_assert_max_num_queries):
    body = {"name": "Quinn Newlead", "email": "quinn@new.example", "source": "Manual"}
    # source by name, default stage, [dup check, (insert lead), activity]
    with django_assert_max_num_queries(9):
        response = as_sales.post("/api/leads/", body, format="json")
    assert response.status_code == 201, response.content[:500]
    assert_lead_shape(response.json())
    added = Lead.objects.get(email="quinn@new.example")
    assert added.owner == sales and added.activities.filter(kind=Activity.Kind.CREATED).exists()


def test_create_lead_with_an_idempotency_key_and_its_replay(
    as_sales, many_leads, django_assert_max_num_queries
):
    body = {"name": "Quinn Newlead", "email": "quinn@new.example", "source": "Manual"}
    # [purge expired key, key lookup, (insert key), the 9 of a create, store response]
    with django_assert_max_num_queries(17):
        first = as_sales.post("/api/leads/", body, format="json", HTTP_IDEMPOTENCY_KEY="qc-create-1")
    assert first.status_code == 201, first.content[:500]
    assert IdempotencyKey.objects.count() == 1
    # [purge expired key, key lookup: found, its response replayed]
    with django_assert_max_num_queries(4):
        again = as_sales.post("/api/leads/", body, format="json", HTTP_IDEMPOTENCY_KEY="qc-create-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Lead.objects.filter(email="quinn@new.example").count() == 1


def test_replace_lead(as_sales, lead, sales, many_leads, django_assert_max_num_queries):
    body = {
        "first_name": "Renamed",
        "last_name": lead.last_name,
        "email": lead.email,
        "phone": "",
        "company": "Initech",
        "title": "CTO",
        "source": "Manual",
        "value": "2500.00",
        "priority": "high",
        "notes": "Replaced",
        "version": lead.version,
    }
    # lead, source, [lock, [lock again: update_lead], dup check, (update), reload, activity]
    with django_assert_max_num_queries(14):
        response = as_sales.put(lead_url(lead), body, format="json")
    assert response.status_code == 200, response.content[:500]
    lead.refresh_from_db()
    assert (lead.first_name, lead.company, lead.version) == ("Renamed", "Initech", 2)
    assert lead.activities.get(kind=Activity.Kind.UPDATED).actor == sales


def test_patch_lead(as_sales, lead, many_leads, django_assert_max_num_queries):
    # lead, [lock, [lock again: update_lead], dup check, (update), reload, activity]
    with django_assert_max_num_queries(13):
        response = as_sales.patch(lead_url(lead), {"company": "Initech", "version": 1}, format="json")
    assert response.status_code == 200, response.content[:500]
    lead.refresh_from_db()
    assert lead.company == "Initech" and lead.version == 2
    assert lead.activities.filter(kind=Activity.Kind.UPDATED).exists()


def test_move_lead(as_sales, lead, many_leads, django_assert_max_num_queries):
    # lead, stage by name, [lock, update, reload, last stage entry, activity]
    with django_assert_max_num_queries(9):
        response = as_sales.patch(
            lead_url(lead, "stage"), {"stage": "Reached Out", "version": 1}, format="json"
        )
    assert response.status_code == 200, response.content[:500]
    lead.refresh_from_db()
    assert lead.stage.name == "Reached Out" and lead.version == 2
    assert lead.activities.filter(kind=Activity.Kind.STAGE_CHANGED).exists()


def test_reassign_lead(as_manager, lead, other_sales, many_leads, django_assert_max_num_queries):
    # lead, new owner, [lock, update, reload, follow-ups handed over, activity]
    with django_assert_max_num_queries(9):
        response = as_manager.patch(
            lead_url(lead, "owner"), {"owner": other_sales.pk, "version": 1}, format="json"
        )
    assert response.status_code == 200, response.content[:500]
    lead.refresh_from_db()
    assert lead.owner == other_sales and lead.version == 2
    assert lead.activities.filter(kind=Activity.Kind.OWNER_CHANGED).exists()


def test_delete_lead(as_manager, lead, many_leads, django_assert_max_num_queries):
    # lead, [lock, update deleted_at, reload, activity]
    with django_assert_max_num_queries(7):
        response = as_manager.delete(lead_url(lead))
    assert response.status_code == 204, response.content[:500]
    lead.refresh_from_db()
    assert lead.deleted_at is not None
    assert lead.activities.filter(kind=Activity.Kind.DELETED).exists()


def test_log_activity(as_sales, lead, many_leads, django_assert_max_num_queries):
    # lead, [lock, activity]
    with django_assert_max_num_queries(5):
        response = as_sales.post(
            lead_url(lead, "activities/"), {"kind": "note", "body": "Sent the deck"}, format="json"
        )
    assert response.status_code == 201, response.content[:500]
    assert lead.activities.filter(kind=Activity.Kind.NOTE, body="Sent the deck").exists()


# --- stages and sources (managers write) -----------------------------------------------------

NAMED_ROWS = {
    "stages": (Stage, {"name": "Qualified", "position": 50, "kind": "open"}, "New Lead"),
    "sources": (Source, {"name": "Trade show"}, "Manual"),
}
# row, another live stage? (stages only), [used? no, PROTECT collector: leads using it, delete]
DELETE_UNUSED_QUERIES = {"stages": 7, "sources": 6}
# row, another live stage? (stages only), [used by a lead? yes, update archived], the row again (response)
DELETE_USED_QUERIES = {"stages": 7, "sources": 6}


@pytest.mark.parametrize("kind", NAMED_ROWS)
def test_add_named_row(as_manager, kind, many_leads, django_assert_max_num_queries):
    model, body, _ = NAMED_ROWS[kind]
    # name taken? twice (serializer and model validation), name taken in any case?, insert
    with django_assert_max_num_queries(4):
        response = as_manager.post(f"/api/{kind}/", body, format="json")
    assert response.status_code == 201, response.content[:500]
    assert model.objects.filter(name=body["name"]).exists()


@pytest.mark.parametrize("kind", NAMED_ROWS)
def test_rename_named_row(as_manager, kind, many_leads, django_assert_max_num_queries):
    # The row `lead` uses: renaming it must not touch the leads.
    model, _, used = NAMED_ROWS[kind]
    row = model.objects.get(name=used)
    # row, name taken? twice (serializer and model validation), name taken in any case?, update
    with django_assert_max_num_queries(5):
        response = as_manager.patch(f"/api/{kind}/{row.pk}/", {"name": f"{used} renamed"}, format="json")
    assert response.status_code == 200, response.content[:500]
    row.refresh_from_db()
    assert row.name == f"{used} renamed"


@pytest.mark.parametrize("kind", NAMED_ROWS)
def test_delete_an_unused_named_row(as_manager, kind, many_leads, django_assert_max_num_queries):
    model, body, _ = NAMED_ROWS[kind]
    row = model.objects.create(**body)
    with django_assert_max_num_queries(DELETE_UNUSED_QUERIES[kind]):
        response = as_manager.delete(f"/api/{kind}/{row.pk}/")
    assert response.status_code == 204, response.content[:500]
    assert not model.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize("kind", NAMED_ROWS)
def test_delete_a_used_named_row_archives_it(as_manager, kind, many_leads, django_assert_max_num_queries):
    model, _, used = NAMED_ROWS[kind]
    row = model.objects.get(name=used)
    with django_assert_max_num_queries(DELETE_USED_QUERIES[kind]):
        response = as_manager.delete(f"/api/{kind}/{row.pk}/")
    assert response.status_code == 200, response.content[:500]
    assert response.json()["archived"] is True
    row.refresh_from_db()
    assert row.archived


# --- one-row reads -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", NAMED_ROWS)
def test_read_one_named_row(as_sales, kind, many_leads, django_assert_max_num_queries):
    model, _, used = NAMED_ROWS[kind]
    row = model.objects.get(name=used)
    # the row
    with django_assert_max_num_queries(1):
        response = as_sales.get(f"/api/{kind}/{row.pk}/")
    assert response.status_code == 200
    assert response.json()["name"] == used


def test_read_one_user(as_sales, other_sales, many_leads, django_assert_max_num_queries):
    # the user
    with django_assert_max_num_queries(1):
        response = as_sales.get(f"/api/users/{other_sales.pk}/")
    assert response.status_code == 200
    assert response.json()["email"] == other_sales.email


def test_me(as_sales, sales, many_leads, django_assert_max_num_queries):
    # force_authenticate: the user is already in hand
    with django_assert_max_num_queries(0):
        response = as_sales.get("/api/auth/me/")
    assert response.status_code == 200
    assert response.json()["id"] == sales.pk


# --- auth ------------------------------------------------------------------------------------


def test_log_in(api, sales, many_leads, django_assert_max_num_queries):
    # user by e-mail, insert outstanding token, update last_login, role groups, clear role group membership;
    # django-axes: failures so far (per e-mail and per IP; the lockout check), expired attempts cleared
    with django_assert_max_num_queries(7):
        response = api.post(
            "/api/auth/token/", {"email": sales.email, "password": DEFAULT_PASSWORD}, format="json"
        )
    assert response.status_code == 200, response.content[:500]
    assert {"access", "refresh"} <= set(response.json())
    sales.refresh_from_db()
    assert sales.last_login is not None


def test_refresh(api, sales, many_leads, django_assert_max_num_queries):
    refresh = RefreshToken.for_user(sales)
    # blacklisted?, user x2, token, its blacklist, (blacklist), user, new token?, (insert)
    with django_assert_max_num_queries(13):
        response = api.post("/api/auth/token/refresh/", {"refresh": str(refresh)}, format="json")
    assert response.status_code == 200, response.content[:500]
    assert response.json()["refresh"] != str(refresh)
    assert BlacklistedToken.objects.filter(token__jti=refresh["jti"]).exists()


def test_log_out(api, sales, many_leads, django_assert_max_num_queries):
    refresh = RefreshToken.for_user(sales)
    # blacklisted?, user, token, its blacklist row, (blacklist it), the user for the security log
    with django_assert_max_num_queries(8):
        response = api.post("/api/auth/logout/", {"refresh": str(refresh)}, format="json")
    assert response.status_code == 204, response.content[:500]
    assert BlacklistedToken.objects.filter(token__jti=refresh["jti"]).exists()


def test_many_leads_fixture_is_visible_to_sales(as_sales, many_leads):
    # Guards the fixture: the 500 leads really are in the table and belong to `sales`.
    assert Lead.objects.live().filter(owner__email="sales@test.example").count() == many_leads + 1
