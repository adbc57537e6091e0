"""Every dashboard figure checked against a small hand-built pipeline whose right answers are known."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.roles import Role
from leads import reports
from leads.models import Activity, FollowUp, Lead, Source, Stage
from leads.tests.factories import LeadFactory, UserFactory

NY = ZoneInfo("America/New_York")
START, END = date(2026, 1, 5), date(2026, 1, 11)  # Monday to Sunday


def local(*args):
    return datetime(*args, tzinfo=NY)


def move(lead, to_name, at, seconds, actor=None):
    from_stage = Stage.objects.get(pk=lead.stage_id) if not hasattr(lead, "_was") else lead._was
    to_stage = Stage.objects.get(name=to_name)
    lead._was = to_stage
    return Activity.objects.create(
        lead=lead,
        actor=actor or lead.owner,
        kind=Activity.Kind.STAGE_CHANGED,
        occurred_at=at,
        data={
            "from": from_stage.name,
            "to": to_stage.name,
            "from_id": from_stage.pk,
            "to_id": to_stage.pk,
            "seconds_in_previous": seconds,
        },
    )


def log(lead, kind, at, actor=None):
    return Activity.objects.create(lead=lead, actor=actor or lead.owner, kind=kind, occurred_at=at)


@pytest.fixture
def pipeline(db, settings):
    """Seven days in New York (UTC-5 in January), leads created and closed around local midnight.

    L1 alice Facebook, created Mon 00:30 (in range), called at 01:30, won Tue 10:00, value 1000.
    L2 alice Website, created Sun Jan 4 23:30 local (Jan 5 UTC: NOT in range), lost Sun Jan 11 23:30
       local (Monday Jan 12 in UTC: still this local week and range), value 500.
    L3 bob Facebook, created Sun Jan 11 23:30 local (in range, Jan 12 UTC), met Jan 12 01:30 (out of
       range, but it is L3's first contact: 2 h), open in New Lead, value 200.
    L4 bob Website, created Thu 09:00, e-mailed 09:30, to In Progress 12:00, won Fri 12:00, value 3000.
    L5 alice Facebook, soft-deleted, won in range, value 99999, with a call and overdue follow-up: excluded.
    L6 unassigned Website, created in December, moved to Reached Out Sat 15:00 by the manager, value 50.
    """
    settings.TIME_ZONE = "America/New_York"
    manager = UserFactory(role=Role.MANAGER, email="boss@test.example", first_name="Mia", last_name="Boss")
    alice = UserFactory(email="alice@test.example", first_name="Alice", last_name="Able")
    bob = UserFactory(email="bob@test.example", first_name="Bob", last_name="Baker")
    facebook, website = Source.objects.get(name="Facebook"), Source.objects.get(name="Website")
    new, won, lost = (Stage.objects.get(name=n) for n in ("New Lead", "Won", "Lost"))

    def lead(owner, source, created, stage, value):
        created_lead = LeadFactory(owner=owner, source=source, stage=new, value=Decimal(value))
        Lead.objects.filter(pk=created_lead.pk).update(created_at=created, stage=stage)
        created_lead.refresh_from_db()
        created_lead._was = new
        return created_lead

    l1 = lead(alice, facebook, local(2026, 1, 5, 0, 30), won, 1000)
    log(l1, Activity.Kind.CALL, local(2026, 1, 5, 1, 30))
    move(l1, "Won", local(2026, 1, 6, 10, 0), 120600)
    l2 = lead(alice, website, local(2026, 1, 4, 23, 30), lost, 500)
    move(l2, "Lost", local(2026, 1, 11, 23, 30), 604800)
    l3 = lead(bob, facebook, local(2026, 1, 11, 23, 30), new, 200)
    log(l3, Activity.Kind.MEETING, local(2026, 1, 12, 1, 30))
    l4 = lead(bob, website, local(2026, 1, 8, 9, 0), won, 3000)
    log(l4, Activity.Kind.EMAIL, local(2026, 1, 8, 9, 30))
    move(l4, "In Progress", local(2026, 1, 8, 12, 0), 10800)
    move(l4, "Won", local(2026, 1, 9, 12, 0), 86400)
    l5 = lead(alice, facebook, local(2026, 1, 6, 8, 0), won, 99999)
    log(l5, Activity.Kind.CALL, local(2026, 1, 6, 8, 30))
    move(l5, "Won", local(2026, 1, 6, 9, 0), 3600)
    Lead.objects.filter(pk=l5.pk).update(deleted_at=timezone.now())
    l6 = lead(None, website, local(2025, 12, 1, 12, 0), Stage.objects.get(name="Reached Out"), 50)
    move(l6, "Reached Out", local(2026, 1, 10, 15, 0), 100000, actor=manager)

    def follow_up(lead, who, due, done=None, cancelled=None):
        return FollowUp.objects.create(
            lead=lead, assigned_to=who, title="Call", due_at=due, done_at=done, cancelled_at=cancelled
        )

    follow_up(l1, alice, local(2026, 1, 6, 9, 0), done=local(2026, 1, 6, 8, 0))  # on time
    follow_up(l4, bob, local(2026, 1, 8, 9, 0), done=local(2026, 1, 9, 10, 0))  # late
    follow_up(l3, bob, local(2026, 1, 1, 9, 0))  # overdue
    follow_up(l5, alice, local(2026, 1, 1, 9, 0))  # overdue, but on a deleted lead
    follow_up(l1, alice, local(2026, 1, 2, 9, 0), cancelled=local(2026, 1, 2, 8, 0))  # cancelled
    return {
        "manager": manager,
        "alice": alice,
        "bob": bob,
        "facebook": facebook,
        "website": website,
        "leads": (l1, l2, l3, l4, l5, l6),
    }


def team(p, **params):
    return reports.parse_filters(
        {"start": START.isoformat(), "end": END.isoformat(), **params}, viewer=p["manager"]
    )


def test_kpis_for_the_team(pipeline, django_assert_num_queries):
    f = team(pipeline)
    with django_assert_num_queries(3):
        figures = reports.kpis(f)
    assert figures == {
        "open_leads": 2,  # L3, L6
        "new_leads": 3,  # L1, L3, L4 (L2 is the evening before in New York)
        "won_count": 2,
        "won_value": Decimal("4000.00"),
        "lost_count": 1,
        "conversion_rate": 0.6667,
        "median_first_contact": timedelta(hours=1),  # 1 h, 2 h, 30 min
        "overdue_follow_ups": 1,
    }


def test_median_of_an_even_count_is_the_mean_of_the_middle_two(pipeline):
    f = team(pipeline, owner=str(pipeline["bob"].pk))
    assert reports.kpis(f)["median_first_contact"] == timedelta(hours=1, minutes=15)  # 30 min and 2 h


def test_nothing_closed_gives_no_conversion_rate_and_no_median(pipeline):
    f = team(pipeline, start="2026-02-01", end="2026-02-03")
    figures = reports.kpis(f)
    assert figures["conversion_rate"] is None and figures["median_first_contact"] is None
    assert figures["new_leads"] == figures["won_count"] == 0 and figures["won_value"] == Decimal("0")


def test_salespeople_see_only_their_own_numbers_whatever_they_ask(pipeline):
    alice, bob = pipeline["alice"], pipeline["bob"]
    f = reports.parse_filters(
        {"start": "2026-01-05", "end": "2026-01-11", "owner": str(bob.pk)}, viewer=alice
    )
    assert f.owner == alice
    assert reports.kpis(f) == {
        "open_leads": 0,
        "new_leads": 1,
        "won_count": 1,
        "won_value": Decimal("1000.00"),
        "lost_count": 1,
        "conversion_rate": 0.5,
        "median_first_contact": timedelta(hours=1),
        "overdue_follow_ups": 0,
    }
    assert [row["user_id"] for row in reports.agent_performance(f)] == [alice.pk]
    assert [row["user_id"] for row in reports.top_salespeople(f)] == [alice.pk]


def test_leads_by_stage_is_the_board_now(pipeline, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = reports.leads_by_stage(team(pipeline))
    assert [(r["name"], r["kind"], r["count"], r["value"]) for r in rows] == [
        ("New Lead", "open", 1, Decimal("200.00")),
        ("Reached Out", "open", 1, Decimal("50.00")),
        ("No Response", "open", 0, Decimal("0.00")),
        ("In Progress", "open", 0, Decimal("0.00")),
        ("Won", "won", 2, Decimal("4000.00")),
        ("Lost", "lost", 1, Decimal("500.00")),
    ]
    by_source = reports.leads_by_stage(team(pipeline, source="website"))
    assert [r["count"] for r in by_source] == [0, 1, 0, 0, 1, 1]


def test_leads_by_source(pipeline, django_assert_num_queries):
    p = pipeline
    with django_assert_num_queries(1):
        rows = reports.leads_by_source(team(p))
    assert rows == [
        {"source_id": p["facebook"].pk, "name": "Facebook", "count": 2},
        {"source_id": p["website"].pk, "name": "Website", "count": 1},
    ]


def test_new_leads_per_day_counts_local_days_with_zeros(pipeline, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = reports.new_leads_per_day(team(pipeline))
    assert rows == [
        {"day": date(2026, 1, 5), "count": 1},
        {"day": date(2026, 1, 6), "count": 0},  # L5 was created that day, but is deleted
        {"day": date(2026, 1, 7), "count": 0},
        {"day": date(2026, 1, 8), "count": 1},
        {"day": date(2026, 1, 9), "count": 0},
        {"day": date(2026, 1, 10), "count": 0},
        {"day": date(2026, 1, 11), "count": 1},  # 23:30 in New York, Jan 12 in UTC
    ]


def test_days_follow_the_time_zone_setting(pipeline, settings):
    settings.TIME_ZONE = "UTC"
    f = reports.parse_filters({"start": "2026-01-05", "end": "2026-01-11"}, viewer=pipeline["manager"])
    counts = {r["day"]: r["count"] for r in reports.new_leads_per_day(f)}
    assert counts[date(2026, 1, 5)] == 2  # L1 and L2 (04:30 and 05:30 UTC)
    assert sum(counts.values()) == 3  # L3 is on Jan 12 in UTC, out of the range


def test_won_lost_per_week_uses_local_mondays(pipeline, django_assert_num_queries):
    f = team(pipeline, start="2026-01-01", end="2026-01-11")
    with django_assert_num_queries(1):
        rows = reports.won_lost_per_week(f)
    assert rows == [
        {"week_start": date(2025, 12, 29), "won": 0, "lost": 0},
        # L2's loss is Monday 04:30 in UTC, but Sunday in New York: this week.
        {"week_start": date(2026, 1, 5), "won": 2, "lost": 1},
    ]


def test_time_in_stage_averages_the_recorded_durations(pipeline, django_assert_num_queries):
    with django_assert_num_queries(2):
        rows = reports.time_in_stage(team(pipeline))
    by_name = {r["name"]: r for r in rows}
    assert by_name["New Lead"] == {
        "stage_id": Stage.objects.get(name="New Lead").pk,
        "name": "New Lead",
        "average": timedelta(seconds=(120600 + 604800 + 10800 + 100000) / 4),
        "samples": 4,  # not L5's: deleted
    }
    assert by_name["In Progress"]["average"] == timedelta(days=1)
    assert by_name["In Progress"]["samples"] == 1
    assert by_name["Won"] == {**by_name["Won"], "average": None, "samples": 0}


def test_top_salespeople_by_won_value(pipeline, django_assert_num_queries):
    p = pipeline
    with django_assert_num_queries(1):
        rows = reports.top_salespeople(team(p))
    assert rows == [
        {"user_id": p["bob"].pk, "name": "Bob Baker", "won_count": 1, "won_value": Decimal("3000.00")},
        {"user_id": p["alice"].pk, "name": "Alice Able", "won_count": 1, "won_value": Decimal("1000.00")},
    ]
    assert reports.top_salespeople(team(p), limit=1)[0]["user_id"] == p["bob"].pk


def test_agent_performance(pipeline, django_assert_num_queries):
    p = pipeline
    with django_assert_num_queries(4):
        rows = {r["user_id"]: r for r in reports.agent_performance(team(p))}
    assert rows[p["alice"].pk] == {
        "user_id": p["alice"].pk,
        "name": "Alice Able",
        "leads_owned": 2,
        "new_leads": 1,
        "contacted": 1,  # L1; the call on deleted L5 does not count
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
    bob = rows[p["bob"].pk]
    assert (bob["leads_owned"], bob["new_leads"], bob["contacted"], bob["emails"], bob["meetings"]) == (
        2,
        2,
        1,
        1,
        0,  # the meeting on L3 is on Jan 12
    )
    assert (bob["follow_ups_on_time"], bob["follow_ups_late"], bob["won"], bob["conversion_rate"]) == (
        0,
        1,
        1,
        1.0,
    )
    assert rows[p["manager"].pk]["leads_owned"] == 0 and rows[p["manager"].pk]["conversion_rate"] is None


def test_source_effectiveness(pipeline, django_assert_num_queries):
    p = pipeline
    with django_assert_num_queries(1):
        rows = reports.source_effectiveness(team(p))
    assert rows == [
        {"source_id": p["facebook"].pk, "name": "Facebook", "leads": 2, "won": 1, "conversion_rate": 1.0},
        {"source_id": p["website"].pk, "name": "Website", "leads": 1, "won": 1, "conversion_rate": 1.0},
    ]


def test_daily_summary(pipeline, django_assert_num_queries):
    p = pipeline
    with django_assert_num_queries(3):
        thursday = reports.daily_summary(date(2026, 1, 8), viewer=p["manager"])
    assert thursday == {
        "date": date(2026, 1, 8),
        "new_leads": 1,
        "won": 0,
        "won_value": Decimal("0.00"),
        "lost": 0,
        "activities": {"note": 0, "call": 0, "meeting": 0, "email": 1, "stage_changed": 1},
        "follow_ups_done": 0,
        "follow_ups_due": 1,
    }
    friday = reports.daily_summary(date(2026, 1, 9), viewer=p["manager"])
    assert (friday["won"], friday["won_value"], friday["follow_ups_done"]) == (1, Decimal("3000.00"), 1)
    sunday = reports.daily_summary(date(2026, 1, 11), viewer=p["manager"])
    assert (sunday["new_leads"], sunday["lost"]) == (1, 1)
    # Alice asking for Bob's day gets her own.
    assert reports.daily_summary(date(2026, 1, 8), viewer=p["alice"], owner=p["bob"])["new_leads"] == 0


def test_dashboard_runs_a_fixed_number_of_queries(pipeline, django_assert_num_queries):
    with django_assert_num_queries(15):
        reports.dashboard(team(pipeline))
    LeadFactory.create_batch(5, owner=pipeline["bob"])
    with django_assert_num_queries(15):
        reports.dashboard(team(pipeline))


# --- filters ---------------------------------------------------------------------------------


def test_presets_count_back_from_today(pipeline, monkeypatch):
    monkeypatch.setattr(reports.timezone, "localdate", lambda *a, **k: date(2026, 5, 20))
    viewer = pipeline["manager"]
    spans = {p: reports.parse_filters({"range": p}, viewer=viewer) for p in ("today", "7d", "30d", "quarter")}
    assert (spans["today"].start, spans["today"].end) == (date(2026, 5, 20), date(2026, 5, 20))
    assert spans["7d"].start == date(2026, 5, 14)
    assert spans["30d"].start == date(2026, 4, 21)
    assert spans["quarter"].start == date(2026, 4, 1)
    assert reports.parse_filters({}, viewer=viewer).preset == "30d"


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"start": "2026-13-01", "end": "2026-12-01"}, "start", "not a date"),
        ({"start": "yesterday"}, "start", "YYYY-MM-DD"),
        ({"start": "2026-02-10", "end": "2026-02-01"}, "end", "before the start"),
        ({"start_date": "2026-02-10", "end_date": "2026-02-01"}, "end_date", "before the start"),
        ({"range": "custom"}, "start", "needs a start"),
        ({"range": "decade"}, "range", "Unknown range"),
        ({"source": "Carrier pigeon"}, "source", "Unknown source"),
        ({"owner": "999999"}, "owner", "no user"),
        ({"start": "2000-01-01", "end": "2026-01-01"}, "end", "at most"),
    ],
)
def test_bad_filters_say_what_is_wrong(pipeline, params, field, words):
    with pytest.raises(ValidationError) as caught:
        reports.parse_filters(params, viewer=pipeline["manager"])
    assert words in " ".join(caught.value.message_dict[field])


def test_source_by_name_and_owner_by_id(pipeline):
    p = pipeline
    f = reports.parse_filters({"source": "FACEBOOK", "owner": str(p["bob"].pk)}, viewer=p["manager"])
    assert (f.source, f.owner) == (p["facebook"], p["bob"])


def test_board_query_links_a_number_to_its_leads(pipeline):
    p = pipeline
    f = team(p, source=str(p["facebook"].pk), owner=str(p["bob"].pk))
    query = f.board_query(stage=7)
    assert f"source={p['facebook'].pk}" in query and f"owner={p['bob'].pk}" in query and "stage=7" in query
    assert "created_after=2026-01-05T00%3A00%3A00-05%3A00" in query
    assert "created_before=2026-01-12T00%3A00%3A00-05%3A00" in query
    assert "created_after" not in f.board_query(created_after=None, created_before=None)


def test_a_custom_range_with_one_date(pipeline, monkeypatch):
    monkeypatch.setattr(reports.timezone, "localdate", lambda *a, **k: date(2026, 5, 20))
    viewer = pipeline["manager"]
    only_start = reports.parse_filters({"start": "2026-05-01"}, viewer=viewer)
    assert (only_start.preset, only_start.start, only_start.end) == (
        "custom",
        date(2026, 5, 1),
        date(2026, 5, 20),
    )
    only_end = reports.parse_filters({"end_date": "2026-05-03"}, viewer=viewer)
    assert (only_end.start, only_end.end) == (date(2026, 5, 3), date(2026, 5, 3))
