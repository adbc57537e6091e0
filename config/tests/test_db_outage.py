"""The database going away mid-request: a 503 page or JSON error, nothing half-saved, recovery by itself."""

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection
from django.urls import reverse

from leads import services
from leads.models import Activity, Lead, Source

NEW_LEAD_EMAIL = "outage@test.example"
requires_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="terminating the request's backend needs PostgreSQL (pg_terminate_backend); SQLite has no server",
)
live_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def assert_outage_page(response):
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    page = response.content.decode()
    assert "back in a moment" in page and "whole or not at all" in page
    # A Content-Security-Policy without 'unsafe-inline' is coming: nothing inline on this page.
    assert "<script" not in page and "<style" not in page and "style=" not in page


def assert_outage_json(response):
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    body = response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert "whole or not at all" in body["error"]["message"]
    assert body["error"]["fields"] == {}


# --- any database: a view that raises a connection error ------------------------------------


def broken_database(*args, **kwargs):
    # What Django raises once psycopg's connection is closed under it.
    raise InterfaceError("connection already closed")


def deadlocked(*args, **kwargs):
    # As Django raises it: its OperationalError wrapping psycopg's, which names the SQLSTATE.
    raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected("deadlock detected")


@pytest.mark.django_db
def test_a_page_whose_database_is_gone_is_a_503_page(
    sales_client, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr("leads.views.selectors.board_columns", broken_database)
    with django_assert_max_num_queries(6):
        response = sales_client.get(reverse("leads:board"))
    assert_outage_page(response)


@pytest.mark.django_db
def test_an_api_call_whose_database_is_gone_is_a_json_503(
    sales_client, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr("leads.services.create_lead", broken_database)
    with django_assert_max_num_queries(6):
        response = sales_client.post(
            "/api/leads/", {"name": "Ann Outage", "email": NEW_LEAD_EMAIL}, content_type="application/json"
        )
    assert_outage_json(response)


@pytest.mark.django_db
def test_a_middleware_that_loses_the_database_still_answers_503(client, settings, rf):
    # Sessions and auth query the database before any view runs; handler500 turns that into a 503 too.
    from leads.api.errors import server_error

    try:
        raise InterfaceError("connection already closed")
    except InterfaceError:
        page = server_error(rf.get("/board/"))
        api = server_error(rf.get("/api/leads/"))
    assert_outage_page(page)
    assert api.status_code == 503 and b"service_unavailable" in api.content
    # Any other failure is still the ordinary 500.
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        assert server_error(rf.get("/board/")).status_code == 500


@pytest.mark.django_db
def test_an_operational_error_on_a_working_connection_is_a_500_not_an_outage(sales_client, monkeypatch):
    # A deadlock or a lock timeout leaves the connection usable: a bug or contention to see in
    # the error log as such, not an outage for the user to wait out.
    monkeypatch.setattr("leads.views.selectors.board_columns", deadlocked)
    sales_client.raise_request_exception = False
    assert sales_client.get(reverse("leads:board")).status_code == 500


# --- PostgreSQL: the backend serving the request is killed between two INSERTs ---------------


def terminate_backend(pid):
    """Kill the server process behind a connection, from a second connection, and wait for it to go."""
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        autocommit=True,
    ) as admin:
        (terminated,) = admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()
    assert terminated


@pytest.fixture
def database_dies_after_the_lead_insert(monkeypatch):
    """create_lead's connection is terminated after the lead INSERT, before the activity INSERT."""
    record = services._record
    killed = []

    def record_after_losing_the_database(**kwargs):
        if kwargs["kind"] == Activity.Kind.CREATED and not killed:
            assert Lead.objects.filter(email=NEW_LEAD_EMAIL).exists()  # the INSERT happened
            killed.append(connection.connection.info.backend_pid)
            terminate_backend(killed[-1])
        return record(**kwargs)

    monkeypatch.setattr("leads.services._record", record_after_losing_the_database)
    return killed


def assert_nothing_half_saved():
    assert not Lead.objects.filter(email=NEW_LEAD_EMAIL).exists()
    assert not Activity.objects.filter(lead__email=NEW_LEAD_EMAIL).exists()


@requires_postgresql
@live_db
def test_the_board_form_answers_503_when_the_database_dies_and_recovers_by_itself(
    sales_client, database_dies_after_the_lead_insert
):
    form = {"name": "Ann Outage", "email": NEW_LEAD_EMAIL, "source": Source.objects.get(name="Manual").pk}
    response = sales_client.post(reverse("leads:quick_add"), form)

    assert database_dies_after_the_lead_insert, "the backend was never terminated"
    assert_outage_page(response)
    assert_nothing_half_saved()
    # The same request again, on a new connection Django opens by itself: saved, with its activity.
    assert connection.connection.info.backend_pid not in database_dies_after_the_lead_insert
    again = sales_client.post(reverse("leads:quick_add"), form)
    assert again.status_code == 302
    lead = Lead.objects.get(email=NEW_LEAD_EMAIL)
    assert list(lead.activities.values_list("kind", flat=True)) == [Activity.Kind.CREATED]


@requires_postgresql
@live_db
def test_the_api_answers_a_json_503_when_the_database_dies_and_recovers_by_itself(
    sales_client, database_dies_after_the_lead_insert
):
    body = {"name": "Ann Outage", "email": NEW_LEAD_EMAIL}
    response = sales_client.post("/api/leads/", body, content_type="application/json")

    assert database_dies_after_the_lead_insert, "the backend was never terminated"
    assert_outage_json(response)
    assert_nothing_half_saved()
    again = sales_client.post("/api/leads/", body, content_type="application/json")
    assert again.status_code == 201, again.content
    lead = Lead.objects.get(email=NEW_LEAD_EMAIL)
    assert list(lead.activities.values_list("kind", flat=True)) == [Activity.Kind.CREATED]


@pytest.mark.parametrize(
    "driver_error, outage",
    [
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), False),
        (psycopg.errors.LockNotAvailable("could not obtain lock"), False),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
    ],
)
def test_only_a_lost_connection_counts_as_an_outage(driver_error, outage):
    from config.db_outage import is_database_outage

    try:
        raise OperationalError(str(driver_error)) from driver_error
    except OperationalError as wrapped:
        assert is_database_outage(wrapped) is outage
