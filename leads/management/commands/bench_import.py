"""manage.py bench_import: the CSV import's rows/s beside PostgreSQL COPY and django-import-export."""

import argparse
import csv
import io
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from decimal import Decimal
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from leads.activity_guard import activity_purge
from leads.management.commands.seed_demo import COMPANIES, FIRST_NAMES, LAST_NAMES, TITLES
from leads.models import (
    Activity,
    ImportJob,
    ImportRecord,
    ImportRowError,
    Lead,
    Notification,
    OutgoingEmail,
    Source,
    Stage,
)
from leads.normalization import normalize_email, normalize_phone

HOW_TO_RUN = (
    "DATABASE_URL=postgres://postgres@127.0.0.1:5432/leadboard_bench python manage.py migrate && "
    "python manage.py bench_import --rows 100000"
)
# The targets from issue #6, printed beside the figures.
TARGET_ROWS_PER_SECOND = 20_000
TARGET_SHARE_OF_COPY = 0.25
TARGET_TIMES_PEER = 10

HEADERS = [
    "First name", "Last name", "E-mail", "Phone", "Company", "Title", "Source", "Owner e-mail", "Stage",
    "Value", "Notes",
]  # fmt: skip
MAPPING = {
    str(index): field
    for index, field in enumerate(
        ["first_name", "last_name", "email", "phone", "company", "title", "source", "owner_email", "stage",
         "value", "notes"]
    )
}  # fmt: skip
COPY_TABLE = "bench_import_copy_scratch"

# Everything the benchmark creates hangs off these users (and e-mail domains nobody else uses), so
# the clean-up can find it again and never touches anyone else's leads.
BENCH_DOMAIN = "leadboard-bench.example"
BENCH_MANAGER = f"bench-manager@{BENCH_DOMAIN}"
BENCH_SALES = [f"bench-sales-{n}@{BENCH_DOMAIN}" for n in range(1, 5)]
UNKNOWN_OWNER = f"left-the-company@{BENCH_DOMAIN}"

# Shares of the file's rows. A row is one of: invalid, a duplicate of an earlier row, or a new person;
# every 20th new person (index % 20 == 3) is created in the database before the run.
INVALID_SHARE = 0.02
DUPLICATE_SHARE = 0.03
EXISTING_EVERY = 20
EXISTING_REMAINDER = 3
DUPLICATE_WINDOW = 5000  # duplicates point back at most this many rows, as in real exports

SOURCE_SPELLINGS = [
    ("Website", 30), ("LinkedIn", 20), ("linkedin", 3), ("Referral", 14), ("Facebook", 12), ("Manual", 6),
    ("WEBSITE", 2), ("Trade show", 2), ("Podcast", 1),
]  # fmt: skip
STAGE_SPELLINGS = [
    ("New Lead", 50), ("", 20), ("Reached Out", 10), ("In Progress", 8), ("No Response", 5), ("Won", 2),
    ("Lost", 2), ("new lead", 2), ("Qualified", 1),
]  # fmt: skip
VALUES = ["", "", "0", "500", "1200", "2500", "4000.00", "6000", "8500.50", "12000", "25000", "65000"]
NOTES = [
    "", "", "", "",
    "Met at the \"Future of Sales\" expo, wants a demo.",
    "Budget approved for Q3, decision by the board.",
    "Prefers e-mail; call only after 3pm, never Fridays.",
    "Asked about pricing for 50 seats,\nthen about the API.",
    'Said "maybe next year", follow up in January.',
    "Referred by an existing customer; knows our product, competitor contract ends in May.",
    "Café owner, three locations — Zürich, Genève, Lyon.",
]  # fmt: skip
US_AREAS = ["212", "312", "415", "617", "512", "303", "206", "404", "305", "713"]


def _ascii_slug(text):
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isalnum() and c.isascii()).lower()


def _weighted(rng, choices):
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights)[0]


class RowGenerator:
    """Deterministic CSV rows: row i depends only on the seed and i, so nothing is kept in memory."""

    def __init__(self, seed):
        self.seed = seed
        self.source_spellings = SOURCE_SPELLINGS
        self.stage_spellings = STAGE_SPELLINGS

    def _rng(self, salt, index):
        return random.Random((self.seed * 1_000_003 + salt) * 10_000_019 + index)

    def kind(self, index):
        """ "invalid", "duplicate" or "new" (a duplicate needs an earlier row to point at)."""
        draw = self._rng(1, index).random()
        if draw < INVALID_SHARE:
            return "invalid"
        if draw < INVALID_SHARE + DUPLICATE_SHARE and index >= 10:
            return "duplicate"
        return "new"

    def is_existing(self, index):
        return index % EXISTING_EVERY == EXISTING_REMAINDER and self.kind(index) == "new"

    def person(self, index):
        """The person behind row `index`: a unique e-mail and phone derived from the index."""
        rng = self._rng(2, index)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company, domain = rng.choice(COMPANIES)
        domain = domain.replace(".example", f".{BENCH_DOMAIN}")
        local = f"{_ascii_slug(first)}.{_ascii_slug(last)}{index}"
        email = f"{local}@{domain}"
        has_email, has_phone = rng.random() < 0.92, rng.random() < 0.8
        if not has_email and not has_phone:
            has_phone = True
        return {
            "first_name": first,
            "last_name": last,
            "email": email if has_email else "",
            "phone_parts": self._phone_parts(index) if has_phone else None,
            "company": company,
            "title": rng.choice(TITLES),
        }

    @staticmethod
    def _phone_parts(index):
        # Three in five numbers are American, one British (London), one German (Berlin); each index
        # gets its own number, so only deliberate duplicates share one.
        country = index % 5
        if country < 3:
            number = (index // 5) * 3 + country
            area, rest = US_AREAS[number % len(US_AREAS)], number // len(US_AREAS)
            return ("US", area, f"{230 + rest // 10_000}", f"{rest % 10_000:04d}")
        if country == 3:
            rest = index // 5
            return ("GB", "20", f"7{300 + rest // 10_000}", f"{rest % 10_000:04d}")
        return ("DE", "30", f"{2_300_000 + index // 5}", "")

    @staticmethod
    def format_phone(parts, rng):
        """Mixed national and international spellings of one number."""
        country, area, middle, last = parts
        if country == "US":
            spellings = [
                f"({area}) {middle}-{last}", f"{area}-{middle}-{last}", f"{area}.{middle}.{last}",
                f"+1 {area} {middle} {last}", f"+1-{area}-{middle}-{last}",
            ]  # fmt: skip
        elif country == "GB":
            spellings = [
                f"+44 {area} {middle} {last}", f"+44 (0){area} {middle} {last}", f"+44{area}{middle}{last}",
            ]  # fmt: skip
        else:
            spellings = [f"+49 {area} {middle}", f"+49 (0){area} {middle}", f"+49{area}{middle}"]
        return rng.choice(spellings)

    def _earlier_new_row(self, index, rng):
        for _ in range(20):
            earlier = index - 1 - rng.randrange(min(index, DUPLICATE_WINDOW))
            if self.kind(earlier) == "new":
                return earlier
        return None

    def row(self, index):
        """(kind, cells) for data row `index` (0-based)."""
        kind = self.kind(index)
        rng = self._rng(3, index)
        person_index = index
        if kind == "duplicate":
            earlier = self._earlier_new_row(index, rng)
            if earlier is None:
                kind = "new"
            else:
                person_index = earlier
        person = self.person(person_index)
        email = person["email"]
        phone = self.format_phone(person["phone_parts"], rng) if person["phone_parts"] else ""
        first, last, title = person["first_name"], person["last_name"], person["title"]
        if kind == "duplicate":
            # The same person typed again: other capitals, stray spaces, another phone spelling.
            email = f" {email.upper()} " if email and rng.random() < 0.5 else email
            title = rng.choice(TITLES)
        elif kind == "invalid":
            problem = rng.choice(["email", "phone", "name"])
            if problem == "email":
                email = (email or f"someone{index}@{BENCH_DOMAIN}").replace("@", "@@", 1)
            elif problem == "phone":
                phone = rng.choice(["12345", "call after 5", "+1 212 555"])
            else:
                first = last = ""
        owner_draw = rng.random()
        owner = "" if owner_draw < 0.25 else UNKNOWN_OWNER if owner_draw < 0.26 else rng.choice(BENCH_SALES)
        cells = [
            first,
            last,
            email,
            phone,
            person["company"],
            title,
            _weighted(rng, self.source_spellings),
            owner,
            _weighted(rng, self.stage_spellings),
            rng.choice(VALUES),
            rng.choice(NOTES),
        ]
        return kind, cells

    def write_csv(self, path, rows):
        """Writes header + `rows` rows; returns how many of each kind (streams, keeps no rows)."""
        counts = {"invalid": 0, "duplicate": 0, "new": 0, "existing": 0}
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(HEADERS)
            for index in range(rows):
                kind, cells = self.row(index)
                counts[kind] += 1
                counts["existing"] += kind == "new" and index % EXISTING_EVERY == EXISTING_REMAINDER
                writer.writerow(cells)
        return counts


def _median(values):
    return statistics.median(values) if values else None


def _postgresql_version(number):
    return f"{number // 10_000}.{number % 10_000}"


def _peak_rss_kb():
    """This process's peak resident memory, in kilobytes.

    Linux: VmHWM, the high-water mark of the process's own memory. Not ru_maxrss: exec carries the
    parent's high-water mark over into it, so a worker started by a big parent (this command, after
    building the COPY baselines in memory) would report the parent's peak as its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_mb(kilobytes):
    # ru_maxrss is in kilobytes on Linux (bytes on macOS, where this benchmark is not the reference).
    return round(kilobytes / 1024, 1)


class Command(BaseCommand):
    help = (
        "Benchmarks the CSV import on PostgreSQL: generates a realistic file, imports it through the real "
        "job and prints rows/s beside PostgreSQL COPY and django-import-export. Needs a *_bench database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000, help="Rows in the generated file (100000).")
        parser.add_argument("--repeat", type=int, default=3, help="Runs; the median is reported (3).")
        parser.add_argument(
            "--peer-rows",
            type=int,
            default=None,
            help="Rows given to django-import-export, which is slow (default min(rows, 20000)).",
        )
        parser.add_argument("--seed", type=int, default=6, help="Seed of the generated file (6).")
        parser.add_argument(
            "--duplicate-mode",
            choices=[ImportJob.DuplicateMode.UPDATE, ImportJob.DuplicateMode.SKIP],
            default=ImportJob.DuplicateMode.UPDATE,
            help="What our import does with rows matching a lead (update).",
        )
        parser.add_argument("--keep", action="store_true", help="Keep the generated file, leads and jobs.")
        parser.add_argument("--json", dest="json_path", help="Also write every run's figures to this file.")
        parser.add_argument(
            "--yes", action="store_true", help="Run even if the database name does not end in _bench."
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="Run our import in this process instead of a fresh one (its peak RSS is then less exact).",
        )
        # Internal: the fresh process that runs one prepared job and reports its time and peak RSS.
        parser.add_argument("--only", choices=["ours"], help=argparse.SUPPRESS)
        parser.add_argument("--job-id", type=int, help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        self._refuse_unless_safe(options["yes"])
        if options["only"] == "ours":
            self.stdout.write(json.dumps(self._run_ours_here(options["job_id"])))
            return
        rows = options["rows"]
        if rows < 1 or options["repeat"] < 1:
            raise CommandError("--rows and --repeat must be at least 1.")
        peer_rows = min(rows, options["peer_rows"] or 20_000)
        generator = RowGenerator(options["seed"])
        workdir = Path(tempfile.mkdtemp(prefix="bench_import_"))
        csv_path = workdir / "leads.csv"
        self._clean_up(quiet=False)
        users = self._create_bench_users()

        started = time.perf_counter()
        counts = generator.write_csv(csv_path, rows)
        generate_seconds = time.perf_counter() - started
        self.stdout.write(
            f"Generated {rows:,} rows ({csv_path.stat().st_size / 1_048_576:.1f} MB) "
            f"in {generate_seconds:.1f} s: "
            f"{counts['invalid']:,} invalid, {counts['duplicate']:,} duplicates within the file, "
            f"{counts['existing']:,} matching leads created before each run."
        )
        report = {
            "rows": rows,
            "peer_rows": peer_rows,
            "seed": options["seed"],
            "duplicate_mode": str(options["duplicate_mode"]),
            "file_bytes": csv_path.stat().st_size,
            "file_counts": counts,
            "database": connection.settings_dict["NAME"],
            "postgresql": _postgresql_version(connection.cursor().connection.info.server_version),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "runs": [],
        }
        try:
            for run in range(1, options["repeat"] + 1):
                self._reset_leads(generator, rows, users)
                copy = self._run_copy(csv_path, rows)
                floor = self._run_floor(csv_path, rows, users)
                self._reset_leads(generator, rows, users)
                ours = self._run_ours(csv_path, users, options["duplicate_mode"], options["in_process"])
                self._reset_leads(generator, rows, users)
                peer = self._run_peer(csv_path, peer_rows, users)
                report["runs"].append({"run": run, "copy": copy, "floor": floor, "ours": ours, "peer": peer})
                self.stdout.write(
                    f"Run {run}: COPY {copy['rows_per_second']:,.0f} rows/s, "
                    f"COPY into the lead tables {floor['rows_per_second']:,.0f} rows/s, "
                    f"ours {ours['rows_per_second']:,.0f} rows/s (created {ours['created']:,}, "
                    f"updated {ours['updated']:,}, skipped {ours['skipped']:,}, failed {ours['failed']:,}, "
                    f"peak RSS {ours['peak_rss_mb']:,.0f} MB), peer {peer['rows_per_second']:,.0f} rows/s"
                )
        finally:
            if options["keep"]:
                self.stdout.write(f"Kept the file {csv_path} and the bench users' leads and jobs (--keep).")
            else:
                self._clean_up(quiet=True)
                csv_path.unlink(missing_ok=True)
                workdir.rmdir()
        self._summarise(report)
        self.stdout.write(self._table(report))
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(report, indent=2, default=str) + "\n")
            self.stdout.write(f"Every run's figures: {options['json_path']}")

    # --- safety -------------------------------------------------------------------------------

    def _refuse_unless_safe(self, yes):
        if connection.vendor != "postgresql":
            raise CommandError(
                "bench_import measures PostgreSQL (COPY is the baseline) and refuses to run on "
                f"{connection.vendor}. "
                f"Point DATABASE_URL at a scratch PostgreSQL database:\n  {HOW_TO_RUN}"
            )
        name = connection.settings_dict["NAME"] or ""
        if not name.endswith("_bench") and not yes:
            raise CommandError(
                f"bench_import creates and deletes many leads; it runs only on a database whose name ends in "
                f"_bench (this one is {name!r}), or with --yes. For example:\n  {HOW_TO_RUN}"
            )

    # --- set-up and clean-up ---------------------------------------------------------------------

    def _create_bench_users(self):
        manager = User.objects.create_user(
            BENCH_MANAGER, first_name="Bench", last_name="Manager", role=Role.MANAGER
        )
        sales = [
            User.objects.create_user(email, first_name="Bench", last_name=f"Sales {n}", role=Role.SALES)
            for n, email in enumerate(BENCH_SALES, 1)
        ]
        return {"manager": manager, "sales": sales}

    def _bench_lead_ids(self):
        bench_users = User.objects.filter(email__endswith=f"@{BENCH_DOMAIN}")
        created_by_import = ImportRecord.objects.filter(
            job__created_by__in=bench_users, action=ImportRecord.Action.CREATED
        ).values("lead_id")
        return list(
            Lead.objects.filter(
                Q(created_by__in=bench_users) | Q(owner__in=bench_users) | Q(pk__in=created_by_import)
            ).values_list("pk", flat=True)
        )

    def _delete_leads(self, lead_ids):
        """Deletes these leads and every row pointing at them (the timeline is append-only for
        people; a benchmark's scratch leads are not anybody's history)."""
        for start in range(0, len(lead_ids), 20_000):
            chunk = lead_ids[start : start + 20_000]
            # Scratch leads' timelines go with them: the one exception the database's guard allows.
            with transaction.atomic(), activity_purge(connection):
                for relation in Lead._meta.get_fields(include_hidden=True):
                    # Reverse foreign keys, including those hidden by related_name="+".
                    if not (relation.auto_created and not relation.concrete and relation.one_to_many):
                        continue
                    related = relation.related_model
                    if related is Lead:
                        continue
                    rows = related._base_manager.filter(**{f"{relation.field.name}__in": chunk})
                    if relation.on_delete.__name__ == "SET_NULL":
                        rows.update(**{relation.field.name: None})
                    else:
                        rows._raw_delete(rows.db)
                Lead._base_manager.filter(merged_into__in=chunk).update(merged_into=None)
                Lead._base_manager.filter(pk__in=chunk)._raw_delete(Lead._base_manager.db)

    def _delete_jobs(self):
        jobs = ImportJob.objects.filter(created_by__email__endswith=f"@{BENCH_DOMAIN}")
        for job in jobs:
            if job.file:
                job.file.delete(save=False)
        with transaction.atomic():
            ImportRecord.objects.filter(job__in=jobs)._raw_delete(connection.alias)
            ImportRowError.objects.filter(job__in=jobs)._raw_delete(connection.alias)
            jobs._raw_delete(connection.alias)

    def _clean_up(self, *, quiet):
        users = User.objects.filter(email__endswith=f"@{BENCH_DOMAIN}")
        if not users.exists():
            return
        lead_ids = self._bench_lead_ids()
        self._delete_jobs()
        self._delete_leads(lead_ids)
        with transaction.atomic(), activity_purge(connection):
            Activity._base_manager.filter(actor__in=users)._raw_delete(connection.alias)
        Notification.objects.filter(user__in=users).delete()
        OutgoingEmail.objects.filter(to__endswith=f"@{BENCH_DOMAIN}").delete()
        users.delete()
        if not quiet:
            self.stdout.write(f"Removed {len(lead_ids):,} leads left by an earlier bench_import --keep.")

    def _reset_leads(self, generator, rows, users):
        """Back to the same start for every run: no bench leads but the ones 'already in the CRM'."""
        self._delete_jobs()
        self._delete_leads(self._bench_lead_ids())
        # The previous run's deleted rows would otherwise bloat the tables and indexes and slow
        # each later run (measured: half the speed by the third run without this). VACUUM cannot
        # run inside a transaction, as under the test suite's.
        if not connection.in_atomic_block:
            with connection.cursor() as cursor:
                cursor.execute("VACUUM (ANALYZE) leads_lead, leads_activity, leads_importrecord")
        # VACUUM leaves the indexes as large as the deleted rows made them (the trigram GIN indexes
        # tripled in size over a few runs, each run slower than the last): rebuild them, so every
        # contender starts from the same compact indexes. A scratch database's few thousand leads
        # take a second; a big database would take long, which is one more reason for a _bench one.
        with connection.cursor() as cursor:
            for table in ("leads_lead", "leads_activity", "leads_importrecord", "leads_importrowerror"):
                cursor.execute(f"REINDEX TABLE {table}")
        source = Source.objects.get(name="Referral")
        stage = Stage.objects.filter(archived=False).order_by("position", "id").first()
        batch = []
        for index in range(EXISTING_REMAINDER, rows, EXISTING_EVERY):
            if generator.kind(index) != "new":
                continue
            person = generator.person(index)
            phone = person["phone_parts"]
            # A benchmark fixture, like the test factories: written directly, removed afterwards.
            batch.append(
                Lead(
                    first_name=person["first_name"],
                    last_name=person["last_name"],
                    email=normalize_email(person["email"]),
                    phone=normalize_phone(generator.format_phone(phone, random.Random())) if phone else "",
                    company=person["company"],
                    source=source,
                    stage=stage,
                    owner=users["sales"][index % len(users["sales"])],
                    created_by=users["manager"],
                )
            )
            if len(batch) == 2000:
                Lead.objects.bulk_create(batch)
                batch = []
        Lead.objects.bulk_create(batch)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE leads_lead")

    # --- the three contenders ----------------------------------------------------------------------

    def _run_copy(self, csv_path, rows):
        columns = ", ".join(f"{_ascii_slug(h)} text" for h in HEADERS)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
            # A normal (logged) table, as leads are: a TEMP table would skip the WAL and flatter COPY.
            cursor.execute(f"CREATE TABLE {COPY_TABLE} ({columns})")
            try:
                started = time.perf_counter()
                with (
                    open(csv_path, "rb") as source,
                    cursor.copy(f"COPY {COPY_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
                ):
                    while chunk := source.read(1 << 20):
                        copy.write(chunk)
                seconds = time.perf_counter() - started
                cursor.execute(f"SELECT count(*) FROM {COPY_TABLE}")
                copied = cursor.fetchone()[0]
            finally:
                cursor.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        if copied != rows:
            raise CommandError(f"COPY loaded {copied} rows, expected {rows}.")
        return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": rows / seconds}

    def _run_floor(self, csv_path, rows, users):
        """COPY of the rows our import creates, already cleaned, into the tables it writes: the limit
        of the destination itself (leads_lead's 18 indexes, five of them trigram GIN, its counter
        triggers and foreign keys, plus one `imported` activity and one import record per lead),
        where COPY into a bare text table is the limit of the server. No validation, no duplicate
        lookups, one transaction (ours commits every batch); foreign keys are checked before the
        clock stops, then everything is rolled back."""
        from leads import imports

        job = self._prepare_job(csv_path, users, ImportJob.DuplicateMode.UPDATE)
        ctx = imports._Context(job, create_missing_source=True)
        # Cleaned outside the clock, with our own cleaning, so these are the leads our import creates.
        # The e-mails and phones live leads hold already (the "existing" ones _reset_leads made).
        taken = {
            ("email", email)
            for email in Lead.objects.live().exclude(email="").values_list("email", flat=True)
        }
        taken |= {
            ("phone", phone)
            for phone in Lead.objects.live().exclude(phone="").values_list("phone", flat=True)
        }
        now = timezone.now()
        actor = users["manager"].pk
        body = f"Imported from {job.filename} (import #{job.pk})"
        # Written as COPY text straight away, so a million rows cost their bytes, not their objects.
        payloads = {
            "leads_lead": io.BytesIO(),
            "leads_activity": io.BytesIO(),
            "leads_importrecord": io.BytesIO(),
        }
        ids, created = iter(()), 0
        for record in imports._Reader(job):
            if record.cells is not None and not any(record.cells):
                continue
            values, errors = imports._cleaned(ctx, record)
            keys = {(name, values[name]) for name in ("email", "phone") if values and values.get(name)}
            if errors:
                continue  # fails in our import too: no lead, and its e-mail/phone stays free
            if keys & taken:
                taken |= keys  # a duplicate: our import updates or skips it
                continue
            if imports._new_lead_problems(values):
                continue  # e.g. a new lead in the lost stage: fails in our import too
            taken |= keys
            pk = next(ids, None)
            if pk is None:
                ids = iter(_reserve_lead_ids(10_000))
                pk = next(ids)
            created += 1
            owner = values["owner"].pk if values["owner"] else None
            payloads["leads_lead"].write(_copy_line(
                (pk, values.get("first_name", ""), values.get("last_name", ""), values.get("email", ""),
                 values.get("phone", ""), values.get("company", ""), values.get("title", ""),
                 values["source"].pk, owner, values["stage"].pk, now, "", values.get("value", Decimal("0")),
                 Lead.Priority.NORMAL, values.get("notes", ""), actor, now, now, 1)
            ))  # fmt: skip
            # The same activity and record our import writes for a created lead.
            data = {
                "job_id": job.pk, "line": record.line, "action": "created", "source": values["source"].name,
                "stage": values["stage"].name, "owner": str(values["owner"]) if owner else None,
                "stage_id": values["stage"].pk, "owner_id": owner,
            }  # fmt: skip
            payloads["leads_activity"].write(
                _copy_line(
                    (pk, actor, Activity.Kind.IMPORTED, body, json.dumps(data, ensure_ascii=False), now)
                )
            )
            payloads["leads_importrecord"].write(
                _copy_line((job.pk, pk, ImportRecord.Action.CREATED, record.line, "{}"))
            )
        columns = {
            "leads_lead": imports._LEAD_COPY_COLUMNS,
            "leads_activity": ("lead_id", "actor_id", "kind", "body", "data", "occurred_at"),
            "leads_importrecord": ("job_id", "lead_id", "action", "line", "old_values"),
        }
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                started = time.perf_counter()
                for table, payload in payloads.items():
                    payload = payload.getbuffer()
                    with cursor.copy(f"COPY {table} ({', '.join(columns[table])}) FROM STDIN") as copy:
                        for start in range(0, len(payload), 1 << 20):
                            copy.write(payload[start : start + (1 << 20)])
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign keys, checked now
                seconds = time.perf_counter() - started
                raise _RollBack
        except _RollBack:
            pass
        return {
            "rows": rows,
            "leads": created,
            "seconds": round(seconds, 3),
            "rows_per_second": rows / seconds,
        }

    def _prepare_job(self, csv_path, users, duplicate_mode):
        from leads import imports

        manager = users["manager"]
        with open(csv_path, "rb") as upload:
            job = imports.start_upload(actor=manager, file=File(upload, name="bench-leads.csv"))
        defaults = {
            "source": Source.objects.get(name="Import").pk,
            "stage": Stage.objects.filter(archived=False).order_by("position", "id").first().pk,
        }
        job = imports.configure_import(
            job=job, actor=manager, mapping=MAPPING, defaults=defaults, duplicate_mode=duplicate_mode
        )
        # Queued as the import page queues it, but not handed to the tasks backend: the in-process
        # default would run it right here, and the benchmark wants to time (and measure) the worker alone.
        with mock.patch("leads.tasks.run_import_task"):
            return imports.queue_import(job=job, actor=manager)

    def _run_ours(self, csv_path, users, duplicate_mode, in_process):
        started = time.perf_counter()
        job = self._prepare_job(csv_path, users, duplicate_mode)
        prepare_seconds = time.perf_counter() - started
        if in_process:
            result = self._run_ours_here(job.pk)
            result["worker"] = "this process"
        else:
            # A fresh process, like a db_worker picking the job up: its peak RSS is the import's own.
            completed = subprocess.run(
                [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_import", "--only", "ours",
                 "--job-id", str(job.pk), "--yes"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if completed.returncode:
                raise CommandError(f"The import worker failed:\n{completed.stderr[-3000:]}")
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            result["worker"] = "fresh process"
        result["upload_and_configure_seconds"] = round(prepare_seconds, 3)
        return result

    def _run_ours_here(self, job_id):
        from leads import imports

        rss_before = _peak_rss_kb()
        started = time.perf_counter()
        job = imports.run_import(job_id)
        seconds = time.perf_counter() - started
        rss_peak = _peak_rss_kb()
        job.refresh_from_db()
        if job.status != ImportJob.Status.DONE:
            raise CommandError(f"The import ended {job.status}: {job.error}")
        rows = job.total_rows or job.rows_done
        return {
            "rows": rows,
            "seconds": round(seconds, 3),
            "rows_per_second": rows / seconds,
            "status": job.status,
            "created": job.created_count,
            "updated": job.updated_count,
            "skipped": job.skipped_count,
            "failed": job.failed_count,
            "peak_rss_mb": _rss_mb(rss_peak),
            "rss_growth_mb": _rss_mb(rss_peak - rss_before),
        }

    def _run_peer(self, csv_path, peer_rows, users):
        """django-import-export as its bulk-import docs recommend, on the file's first `peer_rows` rows,
        in a transaction rolled back afterwards."""
        import tablib

        text = io.StringIO()
        writer = csv.writer(text)
        with open(csv_path, newline="", encoding="utf-8") as source:
            for number, cells in enumerate(csv.reader(source)):
                if number > peer_rows:
                    break
                writer.writerow(cells)
        text = text.getvalue()
        resource_class = _peer_resource_class()
        before = Lead.objects.count()
        try:
            with transaction.atomic():
                started = time.perf_counter()
                dataset = tablib.Dataset().load(text, format="csv")
                result = resource_class().import_data(dataset, dry_run=False, raise_errors=False)
                seconds = time.perf_counter() - started
                landed = Lead.objects.count() - before
                raise _RollBack
        except _RollBack:
            pass
        return {
            "rows": peer_rows,
            "seconds": round(seconds, 3),
            "rows_per_second": peer_rows / seconds,
            "leads_written": landed,
            "row_errors": len(result.row_errors()),
            "batch_errors": len(result.base_errors),
        }

    # --- the report ----------------------------------------------------------------------------------

    def _summarise(self, report):
        runs = report["runs"]
        median = {
            name: _median([run[name]["rows_per_second"] for run in runs])
            for name in ("copy", "floor", "ours", "peer")
        }
        median["ours_share_of_copy"] = median["ours"] / median["copy"]
        median["ours_share_of_floor"] = median["ours"] / median["floor"]
        median["ours_times_peer"] = median["ours"] / median["peer"]
        median["ours_peak_rss_mb"] = max(run["ours"]["peak_rss_mb"] for run in runs)
        report["median"] = median
        report["targets"] = {
            f"at least {TARGET_ROWS_PER_SECOND:,} rows/s": median["ours"] >= TARGET_ROWS_PER_SECOND,
            f"at least {TARGET_SHARE_OF_COPY:.0%} of COPY": (
                median["ours_share_of_copy"] >= TARGET_SHARE_OF_COPY
            ),
            f"at least {TARGET_TIMES_PEER}x django-import-export": (
                median["ours_times_peer"] >= TARGET_TIMES_PEER
            ),
        }

    def _table(self, report):
        runs, median = report["runs"], report["median"]

        def each(name):
            return "  ".join(f"{run[name]['rows_per_second']:>9,.0f}" for run in runs)

        last, peer = runs[-1]["ours"], runs[-1]["peer"]
        lines = [
            "",
            f"Import benchmark: {report['rows']:,} rows, {len(runs)} run(s), "
            f"PostgreSQL {report['postgresql']}, {report['cpus']} CPUs, "
            f"duplicate mode {report['duplicate_mode']!r}",
            f"{'':<34}{'rows/s (median)':>16}   {'vs COPY':>8}   each run",
            f"{'PostgreSQL COPY (text table)':<34}{median['copy']:>16,.0f}   {1:>8.0%}   {each('copy')}",
            f"{'COPY of cleaned rows, lead tables':<34}{median['floor']:>16,.0f}   "
            f"{median['floor'] / median['copy']:>8.1%}   {each('floor')}",
            f"{'Leadboard import (the real job)':<34}{median['ours']:>16,.0f}   "
            f"{median['ours_share_of_copy']:>8.1%}   {each('ours')}",
            f"{'django-import-export 4.4.3 (peer)':<34}{median['peer']:>16,.0f}   "
            f"{median['peer'] / median['copy']:>8.2%}   {each('peer')}",
            "",
            f"Leadboard / peer: {median['ours_times_peer']:.1f}x.  "
            f"Leadboard / COPY: {median['ours_share_of_copy']:.1%}.  "
            f"Leadboard / COPY into the lead tables: {median['ours_share_of_floor']:.0%}.",
            "COPY into the lead tables writes the leads our import creates, already cleaned, plus their "
            "activity and import record, into the real tables (indexes, trigram GIN, triggers, foreign keys "
            "checked), in one transaction rolled back: the limit of the destination.",
            f"Our import: created {last['created']:,}, updated {last['updated']:,}, "
            f"skipped {last['skipped']:,}, failed {last['failed']:,} (last run); "
            f"worker peak RSS {median['ours_peak_rss_mb']:,.0f} MB "
            f"(grew {last['rss_growth_mb']:,.0f} MB during the import, {last['worker']}).",
            f"The peer ran on the first {report['peer_rows']:,} rows (its rate is per row, extrapolated); "
            "it is configured as its bulk docs recommend (use_bulk, skip_diff, force_init_instance, "
            "batch_size 1000) and validates less: no e-mail/phone normalisation, no duplicate rules, "
            f"a batch with one bad row fails whole (last run: {peer['leads_written']:,} leads written, "
            f"{peer['row_errors']:,} row errors, {peer['batch_errors']:,} failed batches; rolled back).",
            "Targets: "
            + "; ".join(f"{name}: {'yes' if met else 'NO'}" for name, met in report["targets"].items())
            + ".",
        ]
        return "\n".join(lines)


class _RollBack(Exception):
    pass


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_line(row):
    """One row in COPY's text format, as bytes (built before the clock starts)."""
    cells = []
    for value in row:
        if value is None:
            cells.append("\\N")
        elif isinstance(value, str):
            cells.append(value.translate(_COPY_ESCAPES))
        elif hasattr(value, "isoformat"):
            cells.append(value.isoformat())
        else:
            cells.append(str(value))
    return ("\t".join(cells) + "\n").encode()


def _reserve_lead_ids(count):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('leads_lead', 'id')) FROM generate_series(1, %s)", [count]
        )
        return [pk for (pk,) in cursor.fetchall()]


def _peer_resource_class():
    from import_export import fields, resources, widgets

    import_source = Source.objects.get(name="Import")
    first_stage = Stage.objects.filter(archived=False).order_by("position", "id").first()

    class LeadPeerResource(resources.ModelResource):
        first_name = fields.Field(attribute="first_name", column_name="First name")
        last_name = fields.Field(attribute="last_name", column_name="Last name")
        email = fields.Field(attribute="email", column_name="E-mail")
        phone = fields.Field(attribute="phone", column_name="Phone")
        company = fields.Field(attribute="company", column_name="Company")
        title = fields.Field(attribute="title", column_name="Title")
        # Empty source/stage fall back to the same defaults our import is given.
        source = fields.Field(
            attribute="source",
            column_name="Source",
            widget=widgets.ForeignKeyWidget(Source, "name"),
            default=import_source,
        )
        owner = fields.Field(
            attribute="owner", column_name="Owner e-mail", widget=widgets.ForeignKeyWidget(User, "email")
        )
        stage = fields.Field(
            attribute="stage",
            column_name="Stage",
            widget=widgets.ForeignKeyWidget(Stage, "name"),
            default=first_stage,
        )
        value = fields.Field(
            attribute="value", column_name="Value", widget=widgets.DecimalWidget(), default=Decimal("0")
        )
        notes = fields.Field(attribute="notes", column_name="Notes")

        class Meta:
            model = Lead
            fields = (
                "first_name", "last_name", "email", "phone", "company", "title", "source", "owner", "stage",
                "value", "notes",
            )  # fmt: skip
            use_bulk = True
            skip_diff = True
            force_init_instance = True
            batch_size = 1000

    return LeadPeerResource
