"""manage.py bench_dashboard: the dashboard's server time over a million generated leads, beside raw SQL."""

import statistics
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from leads import counts, reports
from leads.activity_guard import activity_purge
from leads.benchmarking import indexes
from leads.models import Lead, Source, Stage

BENCH_EMAIL_DOMAIN = "bench.example"
BENCH_SALESPEOPLE = 25
BENCH_TABLES = ("leads_lead", "leads_activity", "leads_followup")

# Leads: skewed sources and owners (a few take most), most created recently, ~2% soft-deleted.
LEADS_SQL = """
INSERT INTO leads_lead (
    first_name, last_name, email, phone, company, title, source_id, owner_id, stage_id, stage_changed_at,
    lost_reason, value, priority, notes, created_by_id, created_at, updated_at, version, deleted_at
)
SELECT
    'Bench', 'Lead ' || g, 'bench-' || g || '@{domain}', '', 'Bench Co', '',
    (%(sources)s::int[])[1 + floor(cardinality(%(sources)s::int[]) * power(r_source, 2))::int],
    CASE WHEN r_owner < 0.05 THEN NULL
         ELSE (%(owners)s::int[])[1 + floor(cardinality(%(owners)s::int[]) * power(r_owner, 1.7))::int] END,
    CASE WHEN r_stage < 0.35 THEN %(new)s WHEN r_stage < 0.50 THEN %(reached)s
         WHEN r_stage < 0.60 THEN %(no_response)s WHEN r_stage < 0.75 THEN %(in_progress)s
         WHEN r_stage < 0.88 THEN %(won)s ELSE %(lost)s END,
    CASE WHEN r_stage < 0.35 THEN created ELSE created + (now() - created) * r_moved END,
    CASE WHEN r_stage >= 0.88 THEN 'Bench' ELSE '' END,
    round((power(r_value, 3) * 50000)::numeric, 2), 'normal', '', NULL, created, now(), 1,
    CASE WHEN r_deleted < 0.02 THEN now() END
FROM (
    SELECT g, random() AS r_source, random() AS r_owner, random() AS r_stage, random() AS r_moved,
           random() AS r_value, random() AS r_deleted,
           now() - interval '365 days' * power(random(), 2) AS created
    FROM generate_series(1, %(count)s) AS g
) AS s
"""

# About three timeline entries per lead: "created", a first contact for most, a second for half,
# and the move out of New Lead (with how long it sat there) for every lead no longer in it.
ACTIVITIES_SQL = """
INSERT INTO leads_activity (lead_id, actor_id, kind, body, data, occurred_at)
SELECT l.id, l.owner_id, 'created', '', '{{}}'::jsonb, l.created_at
FROM leads_lead l WHERE l.email LIKE '%%@{domain}'
UNION ALL
SELECT l.id, l.owner_id, (ARRAY['call', 'meeting', 'email', 'note'])[1 + floor(4 * random())::int], '',
       '{{}}'::jsonb, l.created_at + interval '1 hour' * (1 + 200 * random())
FROM leads_lead l WHERE l.email LIKE '%%@{domain}' AND random() < 0.75
UNION ALL
SELECT l.id, l.owner_id, (ARRAY['call', 'note'])[1 + floor(2 * random())::int], '', '{{}}'::jsonb,
       l.created_at + interval '1 day' * (1 + 20 * random())
FROM leads_lead l WHERE l.email LIKE '%%@{domain}' AND random() < 0.5
UNION ALL
SELECT l.id, l.owner_id, 'stage_changed', '',
       jsonb_build_object('from', 'New Lead', 'to', st.name, 'from_id', %(new)s, 'to_id', l.stage_id,
                          'seconds_in_previous', extract(epoch FROM l.stage_changed_at - l.created_at)::int),
       l.stage_changed_at
FROM leads_lead l JOIN leads_stage st ON st.id = l.stage_id
WHERE l.email LIKE '%%@{domain}' AND l.stage_id <> %(new)s
"""

# Follow-ups on a fifth of the owned leads: most done (some late), the rest open (some overdue).
FOLLOW_UPS_SQL = """
INSERT INTO leads_followup (
    lead_id, kind, title, assigned_to_id, due_at, done_at, cancelled_at, outcome, notes,
    created_at, updated_at
)
SELECT id, 'call', 'Bench follow-up', owner_id, due,
       CASE WHEN r_done < 0.6 THEN due + interval '1 day' * (2 * random() - 1.2) END,
       NULL, '', '', created_at, now()
FROM (
    SELECT id, owner_id, created_at, random() AS r_done,
           created_at + interval '1 day' * (1 + 30 * random()) AS due
    FROM leads_lead WHERE email LIKE '%%@{domain}' AND owner_id IS NOT NULL AND random() < 0.2
) AS f
"""


def _ms(seconds):
    return f"{seconds * 1000:9.1f}"


def _timings(run, runs, warmup):
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


class Command(BaseCommand):
    help = (
        "Generate N leads (~3 activities each, follow-ups) with INSERT … SELECT generate_series in a "
        "PostgreSQL database whose name ends in _bench (or any, with --yes), then time each dashboard "
        "figure, all of them together and the /dashboard/ page, beside the raw SQL of the slowest aggregate."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--leads", type=int, default=1_000_000, help="How many leads (default 1,000,000)."
        )
        parser.add_argument("--runs", type=int, default=15, help="Timed runs per measurement (default 15).")
        parser.add_argument("--warmup", type=int, default=2, help="Untimed runs first (default 2).")
        parser.add_argument(
            "--yes", action="store_true", help="Write bench rows into a database whose name is not *_bench."
        )
        parser.add_argument(
            "--reuse", action="store_true", help="Keep the bench rows already there instead of regenerating."
        )

    def handle(self, *args, leads, runs, warmup, yes, reuse, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                "bench_dashboard measures PostgreSQL (generate_series, percentile_cont): run it with "
                "DATABASE_URL=postgres://…/<name>_bench. This database is "
                f"{connection.vendor}."
            )
        name = settings.DATABASES["default"]["NAME"]
        if not name.endswith("_bench") and not yes:
            raise CommandError(
                f"Refusing to add {leads:,} bench leads to “{name}”: use a database whose name ends in "
                "_bench (createdb leadboard_bench; migrate), or pass --yes."
            )
        if leads < 1:
            raise CommandError("--leads must be at least 1.")
        runs, warmup = max(runs, 1), max(warmup, 0)
        manager = self.people()
        if reuse and Lead.objects.filter(email__endswith=f"@{BENCH_EMAIL_DOMAIN}").exists():
            self.stdout.write("Reusing the bench rows already there.")
        else:
            self.generate(leads)
        self.measure(manager, runs, warmup)

    def people(self):
        """A bench manager (the dashboard's viewer) and the salespeople who own the bench leads."""
        manager, _ = User.objects.get_or_create(
            email=f"manager@{BENCH_EMAIL_DOMAIN}",
            defaults={"first_name": "Bench", "last_name": "Manager", "role": Role.MANAGER},
        )
        for n in range(BENCH_SALESPEOPLE):
            User.objects.get_or_create(
                email=f"sales{n}@{BENCH_EMAIL_DOMAIN}",
                defaults={"first_name": "Bench", "last_name": f"Seller {n}", "role": Role.SALES},
            )
        return manager

    def generate(self, count):
        stages = {s.name: s.pk for s in Stage.objects.all()}
        missing = {"New Lead", "Reached Out", "No Response", "In Progress", "Won", "Lost"} - stages.keys()
        if missing:
            raise CommandError(f"The default stages are missing ({', '.join(sorted(missing))}): run migrate.")
        params = {
            "count": count,
            "sources": list(Source.objects.order_by("pk").values_list("pk", flat=True)),
            "owners": list(
                User.objects.filter(email__endswith=f"@{BENCH_EMAIL_DOMAIN}", role=Role.SALES)
                .order_by("pk")
                .values_list("pk", flat=True)
            ),
            "new": stages["New Lead"],
            "reached": stages["Reached Out"],
            "no_response": stages["No Response"],
            "in_progress": stages["In Progress"],
            "won": stages["Won"],
            "lost": stages["Lost"],
        }
        steps = [
            ("Removing earlier bench rows", self.remove_bench_rows, None),
            (f"Inserting {count:,} leads", LEADS_SQL, params),
            ("Inserting activities", ACTIVITIES_SQL, params),
            ("Inserting follow-ups", FOLLOW_UPS_SQL, params),
            ("Rebuilding indexes", self.rebuild_indexes, None),
        ]
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            # Every id below comes from the tables themselves, so skip the deferred foreign-key checks
            # (minutes at commit for millions of rows). Needs a superuser; without one they just run.
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:
                cursor.execute("SET LOCAL session_replication_role = replica")
            # Building an index once is far faster than updating it row by row: set the tables'
            # secondary indexes aside (their definitions are kept) and rebuild them after the inserts.
            self.set_indexes_aside(cursor)
            for label, step, step_params in steps:
                self.stdout.write(f"{label}…", ending="")
                self.stdout.flush()
                step_started = time.perf_counter()
                if callable(step):
                    step(cursor)
                else:
                    cursor.execute(step.format(domain=BENCH_EMAIL_DOMAIN), step_params)
                self.stdout.write(f" {time.perf_counter() - step_started:.1f} s")
        # Replica mode above also skipped the lead-counter triggers (leads/counts.py): recount.
        step_started = time.perf_counter()
        counts.rebuild_lead_counts()
        self.stdout.write(f"Recounting leads… {time.perf_counter() - step_started:.1f} s")
        with connection.cursor() as cursor:
            step_started = time.perf_counter()
            cursor.execute("ANALYZE leads_lead, leads_activity, leads_followup, leads_stage, leads_source")
            self.stdout.write(f"ANALYZE… {time.perf_counter() - step_started:.1f} s")
            cursor.execute(
                "SELECT (SELECT count(*) FROM leads_lead), (SELECT count(*) FROM leads_activity),"
                " (SELECT count(*) FROM leads_followup)"
            )
            totals = cursor.fetchone()
        self.stdout.write(
            f"Generated in {time.perf_counter() - started:.1f} s: {totals[0]:,} leads, "
            f"{totals[1]:,} activities, {totals[2]:,} follow-ups in the database."
        )

    def set_indexes_aside(self, cursor):
        self.indexes_aside = indexes.set_indexes_aside(cursor, BENCH_TABLES)

    def rebuild_indexes(self, cursor):
        indexes.rebuild_indexes(cursor, self.indexes_aside)

    def remove_bench_rows(self, cursor):
        bench = f"SELECT id FROM leads_lead WHERE email LIKE '%%@{BENCH_EMAIL_DOMAIN}'"
        # Raw SQL on purpose: the timeline is append-only through the ORM, and these rows are ours.
        cursor.execute(f"DELETE FROM leads_followup WHERE lead_id IN ({bench})")
        with activity_purge(connection):
            cursor.execute(f"DELETE FROM leads_activity WHERE lead_id IN ({bench})")
        cursor.execute(f"DELETE FROM leads_lead WHERE email LIKE '%%@{BENCH_EMAIL_DOMAIN}'")

    def measure(self, manager, runs, warmup):
        f = reports.parse_filters({"range": "30d"}, viewer=manager)
        figures = [
            ("kpis", lambda: reports.kpis(f)),
            ("leads_by_stage", lambda: reports.leads_by_stage(f)),
            ("leads_by_source", lambda: reports.leads_by_source(f)),
            ("new_leads_per_day", lambda: reports.new_leads_per_day(f)),
            ("won_lost_per_week", lambda: reports.won_lost_per_week(f)),
            ("time_in_stage", lambda: reports.time_in_stage(f)),
            ("top_salespeople", lambda: reports.top_salespeople(f)),
            ("agent_performance", lambda: reports.agent_performance(f)),
            ("source_effectiveness", lambda: reports.source_effectiveness(f)),
            ("daily_summary", lambda: reports.daily_summary(timezone.localdate(), viewer=manager)),
            ("all dashboard figures", lambda: reports.dashboard(f)),
        ]
        page = self.page_request(manager)
        if page:
            figures.append(("GET /dashboard/ (page)", page))
        self.stdout.write(
            f"\nRange {f.start}..{f.end} ({settings.TIME_ZONE}), viewer a manager; "
            f"{runs} runs after {warmup} warm-up, milliseconds:"
        )
        self.stdout.write(f"{'measure':<26}{'queries':>8}{'median':>10}{'p95':>10}")
        slowest = None  # (seconds, figure name, sql)
        results = {}
        for label, run in figures:
            executed = []
            # Counted by a wrapper, not connection.queries: a request (the page) resets that log.
            with connection.execute_wrapper(
                lambda call, sql, *rest, log=executed: log.append(sql) or call(sql, *rest)
            ):
                with CaptureQueriesContext(connection) as captured:
                    run()
            median, p95 = _timings(run, runs, warmup)
            results[label] = median
            self.stdout.write(f"{label:<26}{len(executed):>8}{_ms(median):>10}{_ms(p95):>10}")
            if label in ("all dashboard figures", "daily_summary") or label.startswith("GET"):
                continue
            for query in captured.captured_queries:
                seconds = float(query["time"])
                if query["sql"].lstrip().upper().startswith("SELECT") and (
                    slowest is None or seconds > slowest[0]
                ):
                    slowest = (seconds, label, query["sql"])
        if slowest is None:
            return
        _, label, sql = slowest
        raw = connection.connection  # the psycopg connection itself: no Django in the timing

        def run_raw():
            with raw.cursor() as cursor:
                cursor.execute(sql.encode())
                cursor.fetchall()

        median, p95 = _timings(run_raw, runs, warmup)
        figure = results[label]
        self.stdout.write(f"\nSlowest aggregate: in {label}; its SQL through a bare psycopg cursor:")
        self.stdout.write(f"{'raw SQL':<26}{1:>8}{_ms(median):>10}{_ms(p95):>10}")
        self.stdout.write(
            f"{label} / raw SQL = {figure / median:.2f}×;  all figures / raw SQL = "
            f"{results['all dashboard figures'] / median:.2f}×"
            + (f";  page / raw SQL = {results['GET /dashboard/ (page)'] / median:.2f}×" if page else "")
        )
        self.stdout.write(f"\n{sql[:1500]}{' …' if len(sql) > 1500 else ''}")

    def page_request(self, manager):
        """GET /dashboard/ as the manager, when the page exists: the server time of the whole page."""
        try:
            url = reverse("leads:dashboard")
        except NoReverseMatch:
            return None
        client = Client(raise_request_exception=True)
        client.force_login(manager)
        host = next(
            (h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")), "localhost"
        )

        # The manifest of collected static files may not exist here; the page's time is what we measure.
        storages = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }

        def get():
            with override_settings(STORAGES=storages):
                response = client.get(url, {"range": "30d"}, HTTP_HOST=host)
            if response.status_code != 200:
                raise CommandError(f"GET {url} answered {response.status_code}.")

        return get
