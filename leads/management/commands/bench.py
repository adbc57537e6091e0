"""manage.py bench: lists, search, board, lead page, admin, export and dashboard over a million leads,
each beside its raw-SQL limit and, for the API, a DRF-default peer."""

import importlib.util
import os
import platform
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test.utils import override_settings

from leads.benchmarking import cases as bench_cases
from leads.benchmarking import data as bench_data
from leads.benchmarking import report as bench_report
from leads.models import Stage

HOW_TO_RUN = (
    "createdb leadboard_bench && export DATABASE_URL=postgres://postgres@127.0.0.1:5432/leadboard_bench && "
    "python manage.py migrate && python manage.py bench"
)


class Command(BaseCommand):
    help = (
        "Generate N realistic leads (INSERT … SELECT generate_series) in a PostgreSQL database whose name "
        "ends in _bench (or any, with --yes), then time the API lists and search, the board, the lead page, "
        "the admin, the CSV export and the dashboard: median and p95, queries, the raw SQL each needs "
        "(the limit) and a DRF-default peer endpoint."
    )

    def add_arguments(self, parser):
        parser.add_argument("--leads", type=int, default=1_000_000, help="Leads to generate (1,000,000).")
        parser.add_argument("--runs", type=int, default=20, help="Timed runs per measurement (20).")
        parser.add_argument("--warmup", type=int, default=2, help="Untimed runs first (2).")
        parser.add_argument(
            "--heavy-runs",
            type=int,
            default=5,
            help="Timed runs of what takes seconds: the 100,000-lead export, the dashboard and the search "
            "limits without the trigram index (5).",
        )
        parser.add_argument("--reuse", action="store_true", help="Keep the bench data set already there.")
        parser.add_argument(
            "--json", dest="json_path", default="bench-results.json", help="Where to write every figure."
        )
        parser.add_argument(
            "--extras",
            action="store_true",
            help="Also run the other teams' comparisons when present: leads/bench_lists.py (lists and board, "
            "on bench_dashboard's data) and leads/bench_search.py (search with and without its index).",
        )
        parser.add_argument(
            "--yes", action="store_true", help="Write bench rows into a database whose name is not *_bench."
        )

    def handle(self, *args, leads, runs, warmup, heavy_runs, reuse, json_path, extras, yes, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                "bench measures PostgreSQL (generate_series, COPY, the raw-SQL limits) and refuses to run on "
                f"{connection.vendor}. Point DATABASE_URL at a scratch PostgreSQL database:\n  {HOW_TO_RUN}"
            )
        name = connection.settings_dict["NAME"] or ""
        if not name.endswith("_bench") and not yes:
            raise CommandError(
                f"Refusing to write {leads:,} bench leads into “{name}”: bench runs only on a database whose "
                f"name ends in _bench, or with --yes. For example:\n  {HOW_TO_RUN}"
            )
        if leads < 1 or runs < 1 or warmup < 0 or heavy_runs < 1:
            raise CommandError("--leads, --runs and --heavy-runs must be at least 1, --warmup at least 0.")

        started = time.perf_counter()
        manager = bench_data.ensure_people()
        existing = bench_data.bench_lead_count(manager)
        generation_seconds, steps = None, {}
        if reuse and existing:
            self.stdout.write(f"Reusing the {existing:,} bench leads already there (--reuse).")
        else:
            self.stdout.write(f"Generating {leads:,} leads…")
            try:
                generation_seconds, steps = bench_data.Generator(manager, self.stdout.write).run(leads)
            except ValueError as error:
                raise CommandError(str(error)) from None
        data = bench_data.describe(manager, export_rows=bench_cases.EXPORT_ROWS)
        data.generation_seconds, data.steps = generation_seconds, steps
        self.stdout.write(
            (f"Generated in {generation_seconds:.1f} s: " if generation_seconds is not None else "Data set: ")
            + f"{data.leads:,} bench leads ({data.live_leads:,} live), {data.activities:,} activities, "
            f"{data.follow_ups:,} follow-ups; the long timeline is lead {data.big_lead_id} "
            f"({data.big_timeline} activities)."
        )

        stages = list(
            Stage.objects.filter(archived=False).order_by("position", "id").values_list("pk", flat=True)
        )
        case_list = bench_cases.build_cases(data, stages=stages, since=data.export_since)
        results = self.measure(case_list, manager, runs, warmup, heavy_runs)

        total_seconds = round(time.perf_counter() - started, 1)
        self.stdout.write(
            f"\n{data.leads:,} leads, {runs} runs after {warmup} warm-up ({min(runs, heavy_runs)} for the "
            "export and the dashboard), a manager signed in, milliseconds; raw = the hand-written SQL "
            "through psycopg, peer = DRF defaults (ModelViewSet, PageNumberPagination, SearchFilter):\n"
        )
        self.stdout.write(bench_report.table(results))
        for line in bench_report.export_lines(results):
            self.stdout.write("\n" + line)
        # The search cases' "without the trigram index" comparison: the limit's SQL with bitmap scans
        # (the only way PostgreSQL reads a GIN trigram index) off, then the search team's own, if any.
        self.stdout.write("\nSearch, raw SQL with and without the trigram index (bitmap scans off):")
        for line in bench_report.search_index_lines(results, self.external_search_note()):
            self.stdout.write("  " + line)
        if extras:
            self.run_extras(runs, warmup, heavy_runs)
        self.stdout.write(f"\nTotal {total_seconds:.0f} s (generation {generation_seconds or 0:.0f} s).")

        report = {
            "command": "manage.py bench "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in [("leads", leads), ("runs", runs)])
            + (" --reuse" if reuse else ""),
            "leads_requested": leads,
            "runs": runs,
            "warmup": warmup,
            "heavy_runs": min(runs, heavy_runs),
            "data": {
                "bench_leads": data.leads,
                "live_leads": data.live_leads,
                "activities": data.activities,
                "follow_ups": data.follow_ups,
                "generation_seconds": generation_seconds,
                "generation_steps": steps,
                "reused": generation_seconds is None,
                "big_timeline_lead": data.big_lead_id,
                "big_timeline_activities": data.big_timeline,
                "filters": {"owner": data.big_owner_id, "source": data.big_source_id, "stage": data.stage_id},
                "search_terms": data.terms,
                "export_rows": data.export_rows,
            },
            "environment": {
                "database": name,
                "postgresql": _version(connection.cursor().connection.info.server_version),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            "total_seconds": total_seconds,
            "cases": results,
        }
        path = bench_report.write_json(json_path, report)
        self.stdout.write(f"Every figure: {path}")

    def measure(self, case_list, manager, runs, warmup, heavy_runs):
        # The bench is one user asking thousands of times a minute: lift the API's rate limits (a rate
        # of None lets every request through), serve static files without the collected manifest, and
        # mount the peer beside the real URLs, for the duration of the measurements only.
        storages = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        results = []
        with (
            override_settings(
                API_THROTTLE_RATES={scope: None for scope in settings.API_THROTTLE_RATES},
                STORAGES=storages,
                ROOT_URLCONF="leads.benchmarking.peer",
            ),
            bench_cases.raw_connection() as raw,
        ):
            runner = bench_cases.Runner(
                manager=manager,
                runs=runs,
                warmup=warmup,
                heavy_runs=heavy_runs,
                raw=raw,
                write=self.stdout.write,
            )
            self.stdout.write(f"\nMeasuring {len(case_list)} cases…")
            for case in case_list:
                try:
                    result = runner.measure(case)
                except RuntimeError as error:
                    raise CommandError(f"{case.name}: {error}") from None
                self.stdout.write(
                    f"  {case.name}: ours {result['ours']['p50_ms']:,.1f} ms in {result['ours']['queries']} "
                    f"queries, raw {result['raw']['p50_ms']:,.1f} ms"
                    + (f", peer {result['peer']['p50_ms']:,.1f} ms" if result["peer"] else "")
                )
                results.append(result)
        return results

    def run_extras(self, runs, warmup, heavy_runs):
        """The comparisons other modules offer (each optional; a failure there does not lose ours)."""
        if importlib.util.find_spec("leads.bench_lists") is not None:
            from leads import bench_lists

            self.stdout.write("\nLists and board, leads/bench_lists.py (needs bench_dashboard's data):")
            try:
                bench_lists.print_lists(runs=runs, warmup=warmup, write=self.stdout.write)
            except Exception as error:  # noqa: BLE001 - reported, and our figures are already out
                self.stdout.write(f"  not run: {type(error).__name__}: {error}")
        if importlib.util.find_spec("leads.bench_search") is not None:
            from leads import bench_search

            self.stdout.write("\nSearch with and without the trigram index, leads/bench_search.py:")
            try:
                with connection.cursor() as cursor:
                    found = bench_search.measure_search(
                        cursor, runs=runs, warmup=warmup, baseline_runs=min(runs, heavy_runs)
                    )
                for line in bench_search.format_search_table(found):
                    self.stdout.write(f"  {line}")
            except Exception as error:  # noqa: BLE001 - reported, and our figures are already out
                self.stdout.write(f"  not run: {type(error).__name__}: {error}")

    @staticmethod
    def external_search_note():
        """Where the search engineers' own with/without-index comparison lives, when it is there."""
        if importlib.util.find_spec("leads.bench_search") is None:
            return None
        return "leads/bench_search.py is there: --extras also prints its comparison (Django's search SQL)."


def _version(number):
    return f"{number // 10_000}.{number % 10_000}"
