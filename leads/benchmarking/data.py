"""The bench data set: skewed users, sources and stages, realistic people, their timelines, in SQL."""

import time
import unicodedata
from dataclasses import dataclass, field

from django.db import connection, transaction

from accounts.models import User
from accounts.roles import Role
from leads.activity_guard import activity_purge
from leads.benchmarking import indexes
from leads.management.commands.seed_demo import COMPANIES, FIRST_NAMES, LAST_NAMES, TITLES
from leads.models import Lead, Source, Stage

# Everything the bench creates hangs off these users: the manager creates every bench lead
# (created_by), so a regeneration finds its own rows again and never touches anyone else's.
BENCH_USER_DOMAIN = "leadboard-bench-data.example"
BENCH_MANAGER_EMAIL = f"bench-manager@{BENCH_USER_DOMAIN}"
BENCH_SALESPEOPLE = 60
# A surname only every RARE_EVERY-th lead carries: the "rare term" search (50 in a million).
RARE_SURNAME = "Vanterpool"
RARE_EVERY = 20_000
# The lead whose page is measured: the first one generated, with this many timeline entries.
BIG_TIMELINE = 500
US_AREAS = ["212", "312", "415", "617", "512", "303", "206", "404", "305", "713"]
# Sources most leads come from first: power(random, k) over this order skews towards the start.
SOURCE_ORDER = ["Website", "Referral", "LinkedIn", "Facebook", "Manual", "Import"]
BENCH_TABLES = ("leads_lead", "leads_activity", "leads_followup")
DEFAULT_STAGES = ("New Lead", "Reached Out", "No Response", "In Progress", "Won", "Lost")


def ascii_slug(text):
    """Names as e-mail addresses keep them: "Chloé" -> "chloe", "O'Brien" -> "obrien"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isascii() and c.isalnum()).lower()


# Leads: first names skewed (some ~3 times as common as others, as in life), a rare surname,
# e-mail and phone unique per row (the live-uniqueness constraints), 8% phone-only and 20%
# e-mail-only; sources and owners skewed (a few big owners, many small, 5% unassigned); stages
# in pipeline proportions, created over two years (more recently), ~2% soft-deleted.
LEADS_SQL = """
INSERT INTO leads_lead (
    first_name, last_name, email, phone, company, title, source_id, owner_id, stage_id, stage_changed_at,
    lost_reason, value, priority, notes, created_by_id, created_at, updated_at, version, deleted_at
)
SELECT
    (%(first)s::text[])[fi],
    CASE WHEN g %% %(rare_every)s = 7 THEN %(rare)s ELSE (%(last)s::text[])[li] END,
    CASE WHEN r_contact < 0.08 THEN ''
         ELSE (%(first_slug)s::text[])[fi] || '.'
              || CASE WHEN g %% %(rare_every)s = 7 THEN %(rare_slug)s ELSE (%(last_slug)s::text[])[li] END
              || g || '@' || (%(domains)s::text[])[ci] END,
    CASE WHEN r_contact >= 0.08 AND r_contact < 0.28 THEN ''
         ELSE '+1' || (%(areas)s::text[])[1 + g %% 10] || (2000000 + g / 10)::text END,
    (%(companies)s::text[])[ci],
    (%(titles)s::text[])[1 + floor(cardinality(%(titles)s::text[]) * random())::int],
    (%(sources)s::int[])[1 + floor(cardinality(%(sources)s::int[]) * power(r_source, 2.2))::int],
    CASE WHEN r_owner < 0.05 AND g > 1 THEN NULL
         ELSE (%(owners)s::int[])[1 + floor(cardinality(%(owners)s::int[]) * power(r_owner, 2.5))::int] END,
    CASE WHEN r_stage < 0.35 THEN %(new)s WHEN r_stage < 0.50 THEN %(reached)s
         WHEN r_stage < 0.60 THEN %(no_response)s WHEN r_stage < 0.75 THEN %(in_progress)s
         WHEN r_stage < 0.88 THEN %(won)s ELSE %(lost)s END,
    CASE WHEN r_stage < 0.35 THEN created ELSE created + (now() - created) * r_moved END,
    CASE WHEN r_stage >= 0.88 THEN (ARRAY['Budget', 'Went with a competitor', 'No reply', 'Timing'])
         [1 + floor(4 * random())::int] ELSE '' END,
    round((power(r_value, 3) * 50000)::numeric, 2),
    CASE WHEN r_value < 0.2 THEN 'low' WHEN r_value < 0.8 THEN 'normal' ELSE 'high' END,
    CASE WHEN random() < 0.15 THEN 'Asked for a demo; call back after the budget review.' ELSE '' END,
    %(creator)s, created, created + (now() - created) * r_moved, 1,
    -- Never a rare-surname lead: a small run has one, and the rare-term search must find it.
    CASE WHEN r_deleted < 0.02 AND g > 1 AND g %% %(rare_every)s <> 7
         THEN now() - interval '1 day' * 30 * random() END
FROM (
    SELECT g,
           1 + floor(cardinality(%(first)s::text[]) * power(random(), 1.6))::int AS fi,
           1 + floor(cardinality(%(last)s::text[]) * random())::int AS li,
           1 + floor(cardinality(%(companies)s::text[]) * random())::int AS ci,
           random() AS r_contact, random() AS r_source, random() AS r_owner, random() AS r_stage,
           random() AS r_moved, random() AS r_value, random() AS r_deleted,
           now() - interval '730 days' * power(random(), 1.5) AS created
    FROM generate_series(1, %(count)s) AS g
) AS s
"""

# About three timeline entries per lead: "created", a first contact for most, a second for half,
# and the move out of New Lead for every lead no longer in it.
ACTIVITIES_SQL = """
INSERT INTO leads_activity (lead_id, actor_id, kind, body, data, occurred_at)
SELECT l.id, l.created_by_id, 'created', '', '{}'::jsonb, l.created_at
FROM leads_lead l WHERE l.created_by_id = %(creator)s
UNION ALL
SELECT l.id, l.owner_id, (ARRAY['call', 'meeting', 'email', 'note'])[1 + floor(4 * random())::int],
       (ARRAY['', 'Left a voicemail.', 'Interested, wants pricing.', 'Sent the brochure.'])
       [1 + floor(4 * random())::int], '{}'::jsonb, l.created_at + interval '1 hour' * (1 + 200 * random())
FROM leads_lead l WHERE l.created_by_id = %(creator)s AND random() < 0.75
UNION ALL
SELECT l.id, l.owner_id, (ARRAY['call', 'note'])[1 + floor(2 * random())::int], '', '{}'::jsonb,
       l.created_at + interval '1 day' * (1 + 20 * random())
FROM leads_lead l WHERE l.created_by_id = %(creator)s AND random() < 0.5
UNION ALL
SELECT l.id, l.owner_id, 'stage_changed', '',
       jsonb_build_object('from', 'New Lead', 'to', st.name, 'from_id', %(new)s, 'to_id', l.stage_id,
                          'seconds_in_previous', extract(epoch FROM l.stage_changed_at - l.created_at)::int),
       l.stage_changed_at
FROM leads_lead l JOIN leads_stage st ON st.id = l.stage_id
WHERE l.created_by_id = %(creator)s AND l.stage_id <> %(new)s
"""

# The one lead with a long history: notes and calls until it has BIG_TIMELINE entries.
BIG_TIMELINE_SQL = """
INSERT INTO leads_activity (lead_id, actor_id, kind, body, data, occurred_at)
SELECT %(lead)s, %(actor)s, (ARRAY['note', 'call', 'email'])[1 + n %% 3], 'Bench history entry ' || n,
       '{}'::jsonb, now() - interval '1 hour' * n
FROM generate_series(1, %(missing)s) AS n
"""

# Follow-ups on a fifth of the owned leads: most done (some late), the rest open (some overdue).
FOLLOW_UPS_SQL = """
INSERT INTO leads_followup (
    lead_id, kind, title, assigned_to_id, due_at, done_at, cancelled_at, outcome, notes,
    created_by_id, created_at, updated_at
)
SELECT id, (ARRAY['call', 'email', 'meeting'])[1 + floor(3 * random())::int], 'Follow up', owner_id, due,
       CASE WHEN r_done < 0.6 THEN due + interval '1 day' * (2 * random() - 1.2) END,
       CASE WHEN r_done >= 0.6 AND r_done < 0.65 THEN due END, '', '', created_by_id, created_at, now()
FROM (
    SELECT id, owner_id, created_by_id, created_at, random() AS r_done,
           created_at + interval '1 day' * (1 + 30 * random()) AS due
    FROM leads_lead
    WHERE created_by_id = %(creator)s AND owner_id IS NOT NULL AND random() < 0.2
) AS f
"""


@dataclass
class DataSet:
    """Who and what the cases measure: the viewer, the generated counts and the search terms."""

    manager: User
    leads: int = 0
    live_leads: int = 0
    activities: int = 0
    follow_ups: int = 0
    generation_seconds: float | None = None
    steps: dict = field(default_factory=dict)
    big_lead_id: int | None = None
    big_timeline: int = 0
    export_since: object = None  # the CSV export case: leads created since then (the newest ones)
    export_rows: int = 0
    big_owner_id: int | None = None
    big_source_id: int | None = None
    stage_id: int | None = None
    terms: dict = field(default_factory=dict)  # case name -> (term, leads it matches)


def ensure_people():
    """The bench manager (viewer and creator of every bench lead) and the salespeople."""
    manager, _ = User.objects.get_or_create(
        email=BENCH_MANAGER_EMAIL,
        defaults={"first_name": "Bench", "last_name": "Manager", "role": Role.MANAGER},
    )
    existing = set(
        User.objects.filter(email__endswith=f"@{BENCH_USER_DOMAIN}").values_list("email", flat=True)
    )
    for n in range(BENCH_SALESPEOPLE):
        email = f"sales{n:02d}@{BENCH_USER_DOMAIN}"
        if email not in existing:
            first, last = FIRST_NAMES[n % len(FIRST_NAMES)], LAST_NAMES[(n * 7) % len(LAST_NAMES)]
            User.objects.create(email=email, first_name=first, last_name=last, role=Role.SALES)
    return manager


def bench_lead_count(manager):
    return Lead.objects.filter(created_by=manager).count()


class Generator:
    """INSERT … SELECT generate_series in one transaction, secondary indexes rebuilt at the end."""

    def __init__(self, manager, write):
        self.manager = manager
        self.write = write  # a callable printing one progress line
        self.indexes_aside = []

    def params(self, count):
        stages = {s.name: s.pk for s in Stage.objects.filter(name__in=DEFAULT_STAGES)}
        missing = set(DEFAULT_STAGES) - stages.keys()
        if missing:
            raise ValueError(f"The default stages are missing ({', '.join(sorted(missing))}): run migrate.")
        sources = {s.name: s.pk for s in Source.objects.all()}
        ordered = [sources[n] for n in SOURCE_ORDER if n in sources]
        ordered += sorted(pk for name, pk in sources.items() if name not in SOURCE_ORDER)
        owners = list(
            User.objects.filter(email__endswith=f"@{BENCH_USER_DOMAIN}", role=Role.SALES)
            .order_by("email")
            .values_list("pk", flat=True)
        )
        return {
            "count": count,
            "creator": self.manager.pk,
            "first": FIRST_NAMES,
            "first_slug": [ascii_slug(n) for n in FIRST_NAMES],
            "last": LAST_NAMES,
            "last_slug": [ascii_slug(n) for n in LAST_NAMES],
            "rare": RARE_SURNAME,
            "rare_slug": ascii_slug(RARE_SURNAME),
            "rare_every": RARE_EVERY,
            "companies": [name for name, _ in COMPANIES],
            # Their own domains, so no generated address can collide with a real lead's.
            "domains": [domain.replace(".example", ".bench.example") for _, domain in COMPANIES],
            "titles": TITLES,
            "areas": US_AREAS,
            "sources": ordered,
            "owners": owners,
            "new": stages["New Lead"],
            "reached": stages["Reached Out"],
            "no_response": stages["No Response"],
            "in_progress": stages["In Progress"],
            "won": stages["Won"],
            "lost": stages["Lost"],
        }

    def run(self, count):
        params = self.params(count)
        steps = {}
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            # Skip the deferred foreign-key checks and the row triggers (minutes at commit for millions
            # of rows; every id comes from the tables themselves). Replica mode silences every trigger,
            # so the lead counters are recounted below. Needs a superuser; without one they just run.
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:
                cursor.execute("SET LOCAL session_replication_role = replica")
            self.set_indexes_aside(cursor)
            for label, sql in [
                ("remove earlier bench rows", None),
                (f"insert {count:,} leads", LEADS_SQL),
                ("insert activities", ACTIVITIES_SQL),
                ("insert the long timeline", None),
                ("insert follow-ups", FOLLOW_UPS_SQL),
                ("rebuild indexes", None),
                ("recount lead counters", None),
            ]:
                step_started = time.perf_counter()
                if label.startswith("remove"):
                    self.remove(cursor)
                elif label.startswith("insert the long"):
                    self.long_timeline(cursor)
                elif label.startswith("rebuild"):
                    self.rebuild_indexes(cursor)
                elif label.startswith("recount"):
                    recount_lead_counters()
                else:
                    cursor.execute(sql, params)
                steps[label] = round(time.perf_counter() - step_started, 2)
                self.write(f"  {label}: {steps[label]:.1f} s")
        if not connection.in_atomic_block:
            step_started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM (ANALYZE) leads_lead, leads_activity, leads_followup")
        else:  # under a test's transaction VACUUM cannot run; ANALYZE can
            step_started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE leads_lead, leads_activity, leads_followup")
        steps["vacuum analyze"] = round(time.perf_counter() - step_started, 2)
        self.write(f"  vacuum analyze: {steps['vacuum analyze']:.1f} s")
        return round(time.perf_counter() - started, 2), steps

    def set_indexes_aside(self, cursor):
        self.indexes_aside = indexes.set_indexes_aside(cursor, BENCH_TABLES)

    def rebuild_indexes(self, cursor):
        indexes.rebuild_indexes(cursor, self.indexes_aside)

    def remove(self, cursor):
        bench = "SELECT id FROM leads_lead WHERE created_by_id = %s"
        creator = [self.manager.pk]
        # Raw SQL on purpose: the timeline is append-only (a trigger, too), and these rows are ours:
        # the guard's one exception, for this transaction only.
        cursor.execute(f"DELETE FROM leads_followup WHERE lead_id IN ({bench})", creator)
        with activity_purge(connection):
            cursor.execute(f"DELETE FROM leads_activity WHERE lead_id IN ({bench})", creator)
        cursor.execute(
            f"UPDATE leads_lead SET merged_into_id = NULL WHERE merged_into_id IN ({bench})", creator
        )
        cursor.execute("DELETE FROM leads_lead WHERE created_by_id = %s", creator)

    def long_timeline(self, cursor):
        cursor.execute("SELECT min(id) FROM leads_lead WHERE created_by_id = %s", [self.manager.pk])
        lead = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM leads_activity WHERE lead_id = %s", [lead])
        missing = max(BIG_TIMELINE - cursor.fetchone()[0], 0)
        cursor.execute(BIG_TIMELINE_SQL, {"lead": lead, "actor": self.manager.pk, "missing": missing})


def recount_lead_counters():
    """The counters the triggers keep (leads/counts.py), recounted after a load that bypassed them."""
    try:
        from leads.counts import rebuild_lead_counts
    except ImportError:  # no counter table in this version
        return
    rebuild_lead_counts()


def describe(manager, data=None, *, export_rows=100_000):
    """Fill in (or build) the DataSet: counts, the long-timeline lead, the filters and search terms."""
    data = data or DataSet(manager=manager)
    data.manager = manager
    bench = Lead.objects.filter(created_by=manager)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE deleted_at IS NULL), min(id) FROM leads_lead"
            " WHERE created_by_id = %s",
            [manager.pk],
        )
        data.leads, data.live_leads, data.big_lead_id = cursor.fetchone()
        cursor.execute(
            "SELECT (SELECT count(*) FROM leads_activity a JOIN leads_lead l ON l.id = a.lead_id"
            " WHERE l.created_by_id = %s),"
            " (SELECT count(*) FROM leads_followup f JOIN leads_lead l ON l.id = f.lead_id"
            " WHERE l.created_by_id = %s)",
            [manager.pk, manager.pk],
        )
        data.activities, data.follow_ups = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM leads_activity WHERE lead_id = %s", [data.big_lead_id])
        data.big_timeline = cursor.fetchone()[0]
        # The newest EXPORT_ROWS live leads (all of them in a small data set), ties broken nowhere:
        # created_at is random to the microsecond.
        cursor.execute(
            "SELECT created_at FROM leads_lead WHERE deleted_at IS NULL"
            " ORDER BY created_at DESC OFFSET %s LIMIT 1",
            [export_rows - 1],
        )
        row = cursor.fetchone()
        if row is None:
            cursor.execute("SELECT min(created_at) FROM leads_lead WHERE deleted_at IS NULL")
            row = cursor.fetchone()
        data.export_since = row[0]
        cursor.execute(
            "SELECT count(*) FROM leads_lead WHERE deleted_at IS NULL AND created_at >= %s",
            [data.export_since],
        )
        data.export_rows = cursor.fetchone()[0]
    live = bench.filter(deleted_at__isnull=True)
    # The biggest owner and source: the "source + owner" filter is then a real slice (a few %).
    data.big_owner_id = (
        live.exclude(owner=None).values("owner").order_by().annotate(n=_count()).order_by("-n")[0]["owner"]
    )
    data.big_source_id = live.values("source").order_by().annotate(n=_count()).order_by("-n")[0]["source"]
    data.stage_id = Stage.objects.get(name="Won").pk
    data.terms = search_terms(live, data.live_leads)
    return data


def _count():
    from django.db.models import Count

    return Count("pk")


def search_terms(live, live_count):
    """The four searches: (term, leads matched). Common: the first name closest to 3% of leads that
    is no part of any other name or company; rare: the rare surname; fragments of a mid-table row."""
    names = {row["first_name"]: row["n"] for row in live.values("first_name").order_by().annotate(n=_count())}
    haystack = (
        [n.lower() for n in LAST_NAMES]
        + [c.lower() for c, _ in COMPANIES]
        + [d.lower() for _, d in COMPANIES]
    )
    # An ASCII name, as people type it: the peer folds no accents, so both then match the same leads.
    candidates = [
        name
        for name in names
        if name.isascii()
        and not any(name.lower() in other.lower() for other in FIRST_NAMES if other != name)
        and not any(name.lower() in text for text in haystack)
    ]
    common = min(candidates or names, key=lambda n: abs(names[n] / max(live_count, 1) - 0.03))
    middle = live.exclude(email="").exclude(phone="").order_by("id")[max(live_count // 2 - 1, 0)]
    local = middle.email.split("@")[0]
    # "olivia.smith123456" -> "olivia.smith1234": the person and a few of their neighbours.
    email_fragment = local[:-2] if sum(c.isdigit() for c in local) >= 3 else local
    phone_fragment = middle.phone[-6:]  # the subscriber number's last six digits
    return {
        "rare term": RARE_SURNAME,
        "common term": common,
        "e-mail fragment": email_fragment,
        "phone fragment": phone_fragment,
    }
