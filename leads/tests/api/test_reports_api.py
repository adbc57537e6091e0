"""/api/dashboard/* and /api/reports/*: response shapes, who sees what, 400s for bad dates, query counts."""

import pytest
from django.urls import reverse

from leads.tests.api.contract import assert_error, client_for
from leads.tests.factories import LeadFactory
from leads.tests.test_reports import pipeline  # noqa: F401 (the hand-built data set, a fixture)

FILTER_KEYS = {"preset", "start", "end", "source", "owner", "time_zone"}
WEEK = {"start": "2026-01-05", "end": "2026-01-11"}


def get(user, name, **params):
    return client_for(user).get(reverse(f"api:{name}"), params)


def test_stats_shape_and_numbers(pipeline):  # noqa: F811
    response = get(pipeline["manager"], "dashboard-stats", **WEEK)
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "filters": {
            "preset": "custom",
            "start": "2026-01-05",
            "end": "2026-01-11",
            "source": None,
            "owner": None,
            "time_zone": "America/New_York",
        },
        "open_leads": 2,
        "new_leads": 3,
        "won_count": 2,
        "won_value": "4000.00",  # a decimal, as a string like a lead's value
        "lost_count": 1,
        "conversion_rate": 0.6667,
        "median_first_contact": 3600,  # seconds
        "overdue_follow_ups": 1,
    }


def test_salespeople_get_their_own_numbers_whatever_owner_they_ask_for(pipeline):  # noqa: F811
    alice, bob = pipeline["alice"], pipeline["bob"]
    body = get(alice, "dashboard-stats", owner=bob.pk, **WEEK).json()
    assert body["filters"]["owner"] == alice.pk
    assert (body["new_leads"], body["won_value"]) == (1, "1000.00")
    top = get(alice, "dashboard-top-sales", **WEEK).json()["salespeople"]
    assert [row["user_id"] for row in top] == [alice.pk]
    agents = get(alice, "reports-agent-performance", start_date="2026-01-05", end_date="2026-01-11")
    assert [row["user_id"] for row in agents.json()["agents"]] == [alice.pk]


def test_managers_filter_by_owner_and_source(pipeline):  # noqa: F811
    p = pipeline
    body = get(p["manager"], "dashboard-stats", owner=p["bob"].pk, source="website", **WEEK).json()
    assert body["filters"]["owner"] == p["bob"].pk and body["filters"]["source"] == p["website"].pk
    assert (body["new_leads"], body["won_count"], body["won_value"]) == (1, 1, "3000.00")


def test_leads_by_stage_and_by_source(pipeline):  # noqa: F811
    p = pipeline
    stages = get(p["manager"], "dashboard-leads-by-stage", **WEEK).json()["stages"]
    assert set(stages[0]) == {"stage_id", "name", "kind", "count", "value"}
    assert [(s["name"], s["count"], s["value"]) for s in stages][-2:] == [
        ("Won", 2, "4000.00"),
        ("Lost", 1, "500.00"),
    ]
    sources = get(p["manager"], "dashboard-leads-by-source", **WEEK).json()["sources"]
    assert sources == [
        {"source_id": p["facebook"].pk, "name": "Facebook", "count": 2},
        {"source_id": p["website"].pk, "name": "Website", "count": 1},
    ]


def test_top_sales(pipeline):  # noqa: F811
    p = pipeline
    body = get(p["manager"], "dashboard-top-sales", limit=1, **WEEK).json()
    assert body["salespeople"] == [
        {"user_id": p["bob"].pk, "name": "Bob Baker", "won_count": 1, "won_value": "3000.00"}
    ]


def test_agent_performance(pipeline):  # noqa: F811
    p = pipeline
    body = get(
        p["manager"], "reports-agent-performance", start_date="2026-01-05", end_date="2026-01-11"
    ).json()
    assert (body["filters"]["start"], body["filters"]["end"]) == ("2026-01-05", "2026-01-11")
    alice = next(row for row in body["agents"] if row["user_id"] == p["alice"].pk)
    assert alice == {
        "user_id": p["alice"].pk,
        "name": "Alice Able",
        "leads_owned": 2,
        "new_leads": 1,
        "contacted": 1,
        "notes": 0,
        "calls": 1,
        "meetings": 0,
        "emails": 0,
        "follow_ups_on_time": 1,
        "follow_ups_late": 0,
        "won": 1,
        "lost": 1,
        "conversion_rate": 0.5,
    }


def test_daily_summary(pipeline):  # noqa: F811
    body = get(pipeline["manager"], "reports-daily-summary", date="2026-01-08").json()
    assert body == {
        "date": "2026-01-08",
        "time_zone": "America/New_York",
        "new_leads": 1,
        "won": 0,
        "won_value": "0.00",
        "lost": 0,
        "activities": {"note": 0, "call": 0, "meeting": 0, "email": 1, "stage_changed": 1},
        "follow_ups_done": 0,
        "follow_ups_due": 1,
    }


@pytest.mark.parametrize(
    ("name", "params", "field", "words"),
    [
        ("dashboard-stats", {"start": "2026-02-30"}, "start", "not a date"),
        ("dashboard-stats", {"start": "2026-02-10", "end": "2026-02-01"}, "end", "before the start"),
        ("dashboard-leads-by-stage", {"range": "forever"}, "range", "Unknown range"),
        ("dashboard-leads-by-source", {"source": "Carrier pigeon"}, "source", "Unknown source"),
        ("dashboard-top-sales", {"limit": "0"}, "limit", "1 to 50"),
        ("dashboard-top-sales", {"owner": "nobody"}, "owner", "user id"),
        ("reports-daily-summary", {"date": "08/01/2026"}, "date", "YYYY-MM-DD"),
        ("reports-daily-summary", {"date": "2026-01-32"}, "date", "not a date"),
        ("reports-agent-performance", {"start_date": "2026-1-5"}, "start_date", "not a date"),
        (
            "reports-agent-performance",
            {"start_date": "2026-01-10", "end_date": "2026-01-05"},
            "end_date",
            "before the start",
        ),
    ],
)
def test_bad_filters_are_a_400_that_names_the_field(manager, name, params, field, words):
    error = assert_error(get(manager, name, **params), 400, "invalid", fields={field})
    assert words in " ".join(error["fields"][field])


@pytest.mark.parametrize(
    "name",
    [
        "dashboard-stats",
        "dashboard-leads-by-stage",
        "dashboard-leads-by-source",
        "dashboard-top-sales",
        "reports-daily-summary",
        "reports-agent-performance",
    ],
)
def test_anonymous_callers_are_refused(db, name):
    assert_error(client_for(None).get(reverse(f"api:{name}")), 401)


# Authentication (1) + source lookup (1) + owner lookup (1) + the figure's own queries.
QUERIES = {
    "dashboard-stats": 3,
    "dashboard-leads-by-stage": 1,
    "dashboard-leads-by-source": 1,
    "dashboard-top-sales": 1,
    "reports-daily-summary": 3,
    "reports-agent-performance": 4,
}


@pytest.mark.parametrize("name", QUERIES)
def test_each_endpoint_runs_a_fixed_number_of_queries(pipeline, name, django_assert_max_num_queries):  # noqa: F811
    p = pipeline
    params = {"source": p["website"].pk, "owner": p["bob"].pk, **WEEK}
    params |= {"start_date": WEEK["start"], "end_date": WEEK["end"], "date": WEEK["start"]}
    client = client_for(p["manager"])
    url = reverse(f"api:{name}")
    with django_assert_max_num_queries(QUERIES[name] + 3):
        assert client.get(url, params).status_code == 200
    LeadFactory.create_batch(10, owner=p["bob"], source=p["website"])
    with django_assert_max_num_queries(QUERIES[name] + 3):
        assert client.get(url, params).status_code == 200


def test_the_lead_list_filters_by_when_leads_moved_to_their_stage(pipeline):  # noqa: F811
    """The leads behind "won in range": ?stage=Won&stage_changed_after=&stage_changed_before=."""
    p = pipeline
    l1, _, _, l4, _, _ = p["leads"]
    for lead, moved in ((l1, "2026-01-06T15:00:00Z"), (l4, "2026-01-09T17:00:00Z")):
        type(lead).objects.filter(pk=lead.pk).update(stage_changed_at=moved)
    client = client_for(p["manager"])
    url = reverse("api:lead-list")
    window = {"stage": "Won", "stage_changed_after": "2026-01-05T00:00:00-05:00"}
    listed = client.get(url, {**window, "stage_changed_before": "2026-01-12T00:00:00-05:00"}).json()
    assert {row["id"] for row in listed["leads"]} == {l1.pk, l4.pk}
    listed = client.get(url, {**window, "stage_changed_before": "2026-01-09T00:00:00-05:00"}).json()
    assert {row["id"] for row in listed["leads"]} == {l1.pk}
    assert_error(client.get(url, {"stage_changed_after": "Tuesday"}), 400, fields={"stage_changed_after"})
