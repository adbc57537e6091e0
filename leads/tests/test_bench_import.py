"""bench_import: refuses where it could hurt real data, and a tiny run prints the three rates."""

import csv
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import User
from leads.management.commands.bench_import import BENCH_DOMAIN, HEADERS, RowGenerator
from leads.models import ImportJob, Lead

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="bench_import needs PostgreSQL")


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite refusal")
def test_refuses_on_sqlite_and_says_how_to_run_it():
    with pytest.raises(CommandError) as refused:
        call_command("bench_import", "--rows", "10", "--yes")
    assert "PostgreSQL" in str(refused.value)
    assert "bench_import --rows 100000" in str(refused.value)
    assert not Lead.objects.exists()


@pytest.mark.django_db
@on_postgresql
def test_refuses_a_database_not_named_bench_without_yes(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "NAME", "leadboard")
    with pytest.raises(CommandError) as refused:
        call_command("bench_import", "--rows", "10")
    assert "_bench" in str(refused.value) and "--yes" in str(refused.value)
    assert not User.objects.filter(email__endswith=BENCH_DOMAIN).exists()


def test_generated_file_is_deterministic_and_realistic(tmp_path):
    generator = RowGenerator(seed=1)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    counts = generator.write_csv(first, 2000)
    RowGenerator(seed=1).write_csv(second, 2000)
    assert first.read_bytes() == second.read_bytes()
    with open(first, newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    assert rows[0] == HEADERS and len(rows) == 2001
    assert 10 < counts["invalid"] < 80 and 20 < counts["duplicate"] < 120 and counts["existing"] > 60
    notes = [row[10] for row in rows[1:]]
    assert any("\n" in note for note in notes) and any('"' in note for note in notes)
    assert any(re.search(r"[éüö]", row[0] + row[1]) for row in rows[1:])


@pytest.mark.django_db
@on_postgresql
def test_tiny_run_prints_copy_floor_ours_and_peer_and_cleans_up(tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    call_command(
        "bench_import",
        *("--rows", "300", "--repeat", "1", "--peer-rows", "100", "--yes", "--in-process"),
        *("--json", str(report_path)),
    )
    out = capsys.readouterr().out
    assert re.search(r"PostgreSQL COPY.*\d", out)
    assert re.search(r"COPY of cleaned rows, lead tables.*\d", out)
    assert re.search(r"Leadboard import.*\d", out)
    assert re.search(r"django-import-export.*\d", out)
    assert "extrapolated" in out and "validates less" in out
    report = json.loads(report_path.read_text())
    (run,) = report["runs"]
    assert run["ours"]["created"] > 200 and run["ours"]["failed"] > 0
    assert run["peer"]["rows"] == 100
    assert all(run[name]["rows_per_second"] > 0 for name in ("copy", "floor", "ours", "peer"))
    # The floor writes the leads our import creates: the same number, then rolled back.
    assert run["floor"]["leads"] == run["ours"]["created"]
    # Nothing the benchmark made is left behind.
    assert not User.objects.filter(email__endswith=BENCH_DOMAIN).exists()
    assert not Lead.objects.filter(email__contains=BENCH_DOMAIN).exists()
    assert not ImportJob.objects.exists()
