"""GET /api/leads/ through LeadPagination (counters, deep pages by id) answers exactly as the naive path."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads import services
from leads.api import pagination
from leads.api.views import LeadViewSet
from leads.models import Source, Stage
from leads.tests.api.contract import client_for
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db


class NaiveLeadPagination(pagination.PageLimitPagination):
    """The reference: COUNT(*) and LIMIT/OFFSET on the full rows, as before the counters."""

    results_key = "leads"


@pytest.fixture
def deep_from_the_start(monkeypatch):
    # Small data: take the deferred (ids first) path from the second row on, so it is exercised.
    monkeypatch.setattr(pagination.LeadPagination, "DEFERRED_JOIN_FROM", 1)


@pytest.fixture
def book(manager, sales, other_sales):
    """27 live leads in every stage/source/owner mix, equal creation times (the id breaks ties),
    and deleted ones that no list counts."""
    now = timezone.now()
    stages = list(Stage.objects.order_by("position"))
    sources = list(Source.objects.order_by("pk"))
    owners = [sales, other_sales, None, manager]
    leads = []
    for i in range(27):
        leads.append(
            LeadFactory(
                first_name=f"Bulk{i}",
                stage=stages[i % len(stages)],
                source=sources[(i // 2) % len(sources)],
                owner=owners[i % len(owners)],
                value=Decimal(i * 10 % 70),
                # Pairs created in the same microsecond: only the id orders them.
                created_at=now - timedelta(minutes=i // 2),
            )
        )
    for lead in leads[3:6]:
        services.delete_lead(lead=lead, actor=manager)
    return leads


def get_both(client, query, monkeypatch):
    """The response with LeadPagination and with the naive one, and the queries of the first."""
    with CaptureQueriesContext(connection) as captured:
        ours = client.get(f"/api/leads/?{query}")
    # Read now: the next request's request_started signal empties the connection's query log.
    queries = [q["sql"] for q in captured.captured_queries]
    with monkeypatch.context() as patch:
        patch.setattr(LeadViewSet, "pagination_class", NaiveLeadPagination)
        naive = client.get(f"/api/leads/?{query}")
    assert ours.status_code == naive.status_code == 200, (ours.content, naive.content)
    return ours.json(), naive.json(), queries


FILTERS = [
    "",
    "stage=won",
    "source=manual&owner={sales}",
    "owner=me",
    "owner=unassigned",
    "owner={other_sales}&stage=new%20lead",
    "query=bulk1",  # search: counted from the rows
    "created_after=2000-01-01",  # dates: counted from the rows
    "ordering=-value",  # a chosen order: OFFSET
    "ordering=last_name",
    "ordering=-created_at",  # the default order spelled out: ids first as well
]


@pytest.mark.parametrize("sharing", ["private", "read", "write"])
@pytest.mark.parametrize("who", ["manager", "sales", "other_sales"])
@pytest.mark.parametrize("filters", FILTERS)
def test_every_page_equals_the_naive_path(
    request, settings, monkeypatch, deep_from_the_start, book, sharing, who, filters, sales, other_sales
):
    settings.LEAD_SHARING = sharing
    client = request.getfixturevalue(f"as_{who}")
    base = filters.format(sales=sales.pk, other_sales=other_sales.pk)
    first, naive_first, _ = get_both(client, f"{base}&limit=4", monkeypatch)
    assert first == naive_first
    last_page = max(first["totalPages"], 1)
    for page in sorted({2, last_page, last_page + 1}):
        ours, naive, _ = get_both(client, f"{base}&limit=4&page={page}", monkeypatch)
        assert ours == naive, (page, ours, naive)
    if who == "manager" and filters == "" and sharing == "read":
        assert first["count"] == 24  # 27, three of them deleted


def test_a_deep_page_fetches_ids_first_and_counts_from_counters(
    monkeypatch, deep_from_the_start, book, as_manager
):
    ours, naive, queries = get_both(as_manager, "limit=5&page=4", monkeypatch)
    assert ours == naive and len(ours["leads"]) == 5
    lead_queries = [sql for sql in queries if '"leads_lead"' in sql]
    if connection.vendor == "postgresql":  # counters; SQLite counts the (few) rows themselves
        assert not any("COUNT(" in sql.upper() for sql in lead_queries)
        assert any('FROM "leads_leadcount"' in sql for sql in queries)
    # The walk over OFFSET rows reads the ids alone; the full rows are fetched by id.
    offset_queries = [sql for sql in lead_queries if "OFFSET" in sql]
    assert len(offset_queries) == 1 and offset_queries[0].startswith('SELECT "leads_lead"."id" AS "pk" FROM')
    assert any('"leads_lead"."id" IN (' in sql and "OFFSET" not in sql for sql in lead_queries)


def test_a_page_near_the_end_walks_from_the_oldest_lead(monkeypatch, deep_from_the_start, book, as_manager):
    ours, naive, queries = get_both(as_manager, "limit=5&page=5", monkeypatch)  # rows 21-24 of 24
    assert ours == naive and len(ours["leads"]) == 4
    walks = [sql for sql in queries if sql.startswith('SELECT "leads_lead"."id" AS "pk" FROM')]
    assert len(walks) == 1 and 'ORDER BY "leads_lead"."created_at" ASC, "leads_lead"."id" ASC' in walks[0]


def test_a_search_is_counted_from_the_rows(monkeypatch, book, as_manager):
    ours, naive, queries = get_both(as_manager, "query=bulk2", monkeypatch)
    assert ours == naive and ours["count"] == 8  # Bulk2, Bulk20..26 (Bulk3-5 deleted are not 2x)
    assert any("COUNT(" in sql.upper() for sql in queries)


def test_a_chosen_order_walks_the_offset(monkeypatch, deep_from_the_start, book, as_manager):
    ours, naive, queries = get_both(as_manager, "ordering=-value&limit=5&page=3", monkeypatch)
    assert ours == naive
    assert not any('"leads_lead"."id" IN (' in sql for sql in queries)


def test_a_write_is_counted_at_once(as_manager, manager, book):
    before = as_manager.get("/api/leads/?stage=won").json()["count"]
    lead = book[0]
    services.move_lead(lead=lead, stage=Stage.objects.get(name="Won"), actor=manager)
    assert as_manager.get("/api/leads/?stage=won").json()["count"] == before + 1


@pytest.mark.parametrize("query", ["limit=5", "limit=5&page=3", "source=manual&stage=won&owner=unassigned"])
def test_list_queries_do_not_grow_with_leads(
    django_assert_max_num_queries, deep_from_the_start, as_manager, manager, query
):
    def queries_for(n):
        LeadFactory.create_batch(n, owner=manager, stage=Stage.objects.get(name="Won"))
        with CaptureQueriesContext(connection) as captured:
            assert as_manager.get(f"/api/leads/?{query}").status_code == 200
        return len(captured)

    few = queries_for(16)
    many = queries_for(40)
    assert few == many
    # Session and user, the filter's lookups (source, stage), the counters, ids, then the rows.
    with django_assert_max_num_queries(7):
        as_manager.get(f"/api/leads/?{query}")


def test_a_deactivated_user_is_counted_nothing(monkeypatch, book):
    """A token issued before deactivation (force_authenticate skips the active check): visibility
    says nobody, and the counters agree."""
    ghost = UserFactory(is_active=False)
    ours, naive, _ = get_both(client_for(ghost), "", monkeypatch)
    assert ours == naive
    assert (ours["count"], ours["totalPages"], ours["leads"]) == (0, 0, [])
