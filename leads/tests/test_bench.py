"""manage.py bench: refuses where it could hurt data; a tiny run measures every case and writes the JSON."""

import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import Resolver404, resolve

from accounts.models import User
from leads.benchmarking.data import BENCH_USER_DOMAIN, RARE_SURNAME
from leads.models import Activity, Lead

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="bench needs PostgreSQL")

EXPECTED_CASES = [
    "API list, page 1",
    "API list, source + owner",
    "API list, stage",
    "API list, page ",  # the deep page: 5,000, or the last page of a small data set
    "search, rare term",
    "search, common term",
    "search, e-mail fragment",
    "search, phone fragment",
    "board, all columns",
    "board, source + owner",
    "lead page, 500 activities",
    "admin changelist",
    "admin changelist, stage + source",
    "CSV export, ",
    "dashboard page (30 days)",
    "reports.dashboard() (30 days)",
]
PEER_GROUPS = {"list", "search"}


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite refusal")
def test_refuses_on_sqlite_and_says_how_to_run_it():
    with pytest.raises(CommandError) as refused:
        call_command("bench", "--leads", "10", "--yes")
    assert "PostgreSQL" in str(refused.value) and "sqlite" in str(refused.value)
    assert "DATABASE_URL" in str(refused.value)
    assert not Lead.objects.exists()
    assert not User.objects.filter(email__endswith=BENCH_USER_DOMAIN).exists()


@pytest.mark.django_db
@on_postgresql
def test_refuses_a_database_not_named_bench_without_yes(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "NAME", "leadboard")
    with pytest.raises(CommandError) as refused:
        call_command("bench", "--leads", "10")
    assert "“leadboard”" in str(refused.value)
    assert "_bench" in str(refused.value) and "--yes" in str(refused.value)
    assert not Lead.objects.exists()
    assert not User.objects.filter(email__endswith=BENCH_USER_DOMAIN).exists()


@pytest.mark.django_db
@on_postgresql
@pytest.mark.parametrize("option", [("--leads", "0"), ("--runs", "0"), ("--warmup", "-1")])
def test_refuses_nonsense_counts(option):
    with pytest.raises(CommandError, match="at least"):
        call_command("bench", *option, "--yes")
    assert not Lead.objects.exists()


def test_the_peer_is_mounted_only_in_the_bench_urlconf():
    with pytest.raises(Resolver404):
        resolve("/bench-peer/leads/")
    assert resolve("/bench-peer/leads/", urlconf="leads.benchmarking.peer").url_name == "bench-peer-lead-list"
    # The bench urlconf still serves every real page.
    assert resolve("/api/leads/", urlconf="leads.benchmarking.peer").url_name == "lead-list"


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@on_postgresql
def test_tiny_run_measures_every_case_and_writes_the_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    call_command("bench", "--leads", "3000", "--runs", "2", "--warmup", "1", "--yes", "--json", str(path))
    out = capsys.readouterr().out
    report = json.loads(path.read_text())

    # The data set: as many leads as asked, ~3 activities each, follow-ups, ~2% soft-deleted,
    # one lead with 500 activities, accented names and the rare surname.
    data = report["data"]
    assert data["bench_leads"] == 3000 == Lead.objects.count()
    assert 0.01 < 1 - data["live_leads"] / 3000 < 0.04
    assert 2.5 * 3000 < data["activities"] - 500 < 3.5 * 3000
    assert 0.1 * 3000 < data["follow_ups"] < 0.3 * 3000
    assert data["big_timeline_activities"] == 500
    assert Activity.objects.filter(lead_id=data["big_timeline_lead"]).count() == 500
    assert _number(data["generation_seconds"]) and data["reused"] is False
    assert Lead.objects.filter(last_name=RARE_SURNAME).exists()
    assert Lead.objects.filter(first_name__in=["Chloé", "Zoë", "Tomás"]).exists()
    # Skewed: the biggest owner has several times an average owner's share.
    biggest = Lead.objects.filter(owner_id=data["filters"]["owner"]).count()
    assert biggest > 3 * 3000 / 60
    assert set(data["search_terms"]) == {"rare term", "common term", "e-mail fragment", "phone fragment"}

    cases = report["cases"]
    assert len(cases) == len(EXPECTED_CASES)
    for expected, case in zip(EXPECTED_CASES, cases, strict=True):
        assert case["case"].startswith(expected)
        ours, raw = case["ours"], case["raw"]
        assert _number(ours["p50_ms"]) and _number(ours["p95_ms"]) and ours["p95_ms"] >= ours["p50_ms"]
        assert ours["queries"] > 0, case["case"]
        assert _number(raw["p50_ms"]) and raw["statements"] > 0, case["case"]
        assert _number(case["ours_over_raw"])
        if case["group"] in PEER_GROUPS:
            assert _number(case["peer"]["p50_ms"]) and case["peer"]["queries"] > 0
            assert _number(case["ours_over_peer"])
            # Ours and the peer answer the same question: the same number of matching leads.
            assert ours["matched"] == case["peer"]["matched"], case["case"]
        else:
            assert case["peer"] is None and case["ours_over_peer"] is None
        if case["group"] == "search":
            assert _number(case["raw_without_trigram_index"]["p50_ms"])
            assert ours["matched"] > 0, case["case"]
    by_name = {case["case"]: case for case in cases}
    common = next(case for name, case in by_name.items() if name.startswith("search, common term"))
    assert 0.015 < common["ours"]["matched"] / data["live_leads"] < 0.06
    export = next(case for name, case in by_name.items() if name.startswith("CSV export"))
    # Every live lead (fewer than 100,000 here), through the view and through COPY alike.
    assert export["ours"]["rows"] == export["raw"]["rows"] == data["live_leads"] == data["export_rows"]
    assert _number(export["ours"]["rows_per_second"]) and _number(export["raw"]["rows_per_second"])

    assert re.search(r"^case\s+ours p50\s+p95\s+queries\s+raw p50\s+ours/raw\s+peer p50", out, re.M)
    assert "without the index" in out and "rows/s" in out
    for case in cases:
        assert case["case"][:39] in out
