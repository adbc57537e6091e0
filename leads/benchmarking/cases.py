"""What manage.py bench measures: each case's request, its raw-SQL limit and its peer request, and the timing.

A case is timed three ways: through our real endpoint in-process (django.test.Client, a signed-in
manager, queries counted), as the hand-written SQL the page essentially needs run through a bare
psycopg connection (the limit), and, for the list and search cases, through the DRF-default peer.
"""

import json
import statistics
import time
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from leads import reports
from leads.filters import _looks_like_phone
from leads.normalization import phone_digits

EXPORT_ROWS = 100_000
DEEP_PAGE = 5_000
PAGE_SIZE = 20
ADMIN_PAGE = 100  # the changelist's list_per_page
ADMIN_COUNT_CAP = 10_000  # CappedCountPaginator.cap
BOARD_PAGE = 25  # BOARD_COLUMN_PAGE_SIZE's default
TIMELINE_PAGE = 50  # leads.views.TIMELINE_PAGE_SIZE
PEER_PATH = "/bench-peer/leads/"

# --- the raw SQL: what each page needs, written by hand -----------------------------------------

JOINS = (
    "FROM leads_lead l JOIN leads_source s ON s.id = l.source_id JOIN leads_stage st ON st.id = l.stage_id"
    " LEFT JOIN accounts_user o ON o.id = l.owner_id"
)
LIST_PAGE_SQL = (
    "SELECT l.id, l.first_name, l.last_name, l.email, l.phone, l.company, l.title, l.stage_changed_at,"
    " l.lost_reason, l.value, l.priority, l.notes, l.created_by_id, l.created_at, l.updated_at, l.version,"
    " s.id, s.name, st.id, st.name, st.kind, o.id, o.first_name, o.last_name, o.email "
    + JOINS
    + " WHERE l.deleted_at IS NULL{where} ORDER BY l.created_at DESC, l.id DESC"
    " LIMIT %(limit)s OFFSET %(offset)s"
)
COUNT_SQL = "SELECT count(*) FROM leads_lead l WHERE l.deleted_at IS NULL{where}"
CAPPED_COUNT_SQL = (
    "SELECT count(*) FROM (SELECT l.id FROM leads_lead l WHERE l.deleted_at IS NULL{where}"
    " LIMIT %(cap)s) AS capped"
)
BOARD_TOTALS_SQL = (
    "SELECT l.stage_id, count(*), sum(l.value) FROM leads_lead l"
    " WHERE l.deleted_at IS NULL AND l.stage_id = ANY(%(stages)s){where} GROUP BY l.stage_id"
)
BOARD_CARDS_SQL = (
    "SELECT st.id, c.* FROM leads_stage st CROSS JOIN LATERAL ("
    " SELECT l.id AS lead_id, l.first_name, l.last_name, l.company, l.value, l.priority,"
    " l.stage_changed_at, l.owner_id, o.first_name AS owner_first, o.last_name AS owner_last"
    " FROM leads_lead l LEFT JOIN accounts_user o ON o.id = l.owner_id"
    " WHERE l.deleted_at IS NULL AND l.stage_id = st.id{where}"
    " ORDER BY l.stage_changed_at DESC, l.id DESC LIMIT %(board_page)s) AS c"
    " WHERE st.id = ANY(%(stages)s) ORDER BY st.position, st.id"
)
LEAD_SQL = [
    "SELECT l.*, s.name, st.name, st.kind, o.email, o.first_name, o.last_name "
    + JOINS
    + " WHERE l.id = %(lead)s",
    "SELECT a.id, a.kind, a.body, a.data, a.occurred_at, u.first_name, u.last_name FROM leads_activity a"
    " LEFT JOIN accounts_user u ON u.id = a.actor_id WHERE a.lead_id = %(lead)s"
    " ORDER BY a.occurred_at DESC, a.id DESC LIMIT %(timeline_page)s",
    "SELECT count(*) FROM leads_activity WHERE lead_id = %(lead)s",
    "SELECT f.id, f.kind, f.title, f.due_at, f.assigned_to_id FROM leads_followup f"
    " WHERE f.lead_id = %(lead)s AND f.done_at IS NULL AND f.cancelled_at IS NULL ORDER BY f.due_at",
    "SELECT id, name, kind FROM leads_stage WHERE NOT archived ORDER BY position, id",
]
EXPORT_COPY_SQL = (
    "COPY (SELECT l.first_name, l.last_name, l.email, l.phone, l.company, l.title, s.name,"
    " coalesce(o.email, ''), st.name, l.value, l.notes, l.id, l.created_at "
    + JOINS
    + " WHERE l.deleted_at IS NULL AND l.created_at >= %(since)s ORDER BY l.created_at DESC, l.id DESC)"
    " TO STDOUT (FORMAT csv, HEADER)"
)


def search_where(term):
    """The search's condition as LeadFilter applies it, in plain ILIKE (one word)."""
    condition = "l.first_name ILIKE %(like)s OR l.last_name ILIKE %(like)s OR l.email ILIKE %(like)s" + (
        " OR l.company ILIKE %(like)s"
    )
    params = {"like": f"%{term}%"}
    if _looks_like_phone(term):
        condition += " OR l.phone LIKE %(digits)s"
        params["digits"] = f"%{phone_digits(term)}%"
    return f" AND ({condition})", params


@dataclass
class Case:
    name: str
    group: str
    ours: object  # (path, params) for a request, or a callable
    raw: list  # [(sql, params)]: the limit, through psycopg
    peer: tuple | None = None  # (path, params) on the peer
    stream: bool = False  # a CSV download: consume the streamed body, count its rows
    heavy: bool = False  # seconds a run: timed --heavy-runs times instead of --runs
    copy: bool = False  # the raw side is a COPY … TO STDOUT
    search_term: str | None = None
    result: dict = field(default_factory=dict)


def build_cases(data, *, stages, since):
    """Every case over the data set `data` (leads.benchmarking.data.DataSet)."""
    owner, source, stage = data.big_owner_id, data.big_source_id, data.stage_id
    pages = max(1, -(-data.live_leads // PAGE_SIZE))
    deep = min(DEEP_PAGE, pages)
    page1 = {"limit": PAGE_SIZE, "offset": 0}
    filtered = " AND l.source_id = %(source)s AND l.owner_id = %(owner)s"
    ids = {"source": source, "owner": owner, "stage": stage}

    def listing(where, offset=0, **extra):
        params = {**ids, **page1, "offset": offset, **extra}
        return [(LIST_PAGE_SQL.format(where=where), params), (COUNT_SQL.format(where=where), params)]

    cases = [
        Case("API list, page 1", "list", ("/api/leads/", {}), listing(""), (PEER_PATH, {})),
        Case(
            "API list, source + owner",
            "list",
            ("/api/leads/", {"source": source, "owner": owner}),
            listing(filtered),
            (PEER_PATH, {"source": source, "owner": owner}),
        ),
        Case(
            "API list, stage",
            "list",
            ("/api/leads/", {"stage": stage}),
            listing(" AND l.stage_id = %(stage)s"),
            (PEER_PATH, {"stage": stage}),
        ),
        Case(
            f"API list, page {deep:,}",
            "list",
            ("/api/leads/", {"page": deep, "limit": PAGE_SIZE}),
            listing("", offset=(deep - 1) * PAGE_SIZE),
            (PEER_PATH, {"page": deep}),
        ),
    ]
    for name, term in data.terms.items():
        where, params = search_where(term)
        cases.append(
            Case(
                f"search, {name} ({term})",
                "search",
                ("/api/leads/", {"query": term}),
                listing(where, **params),
                (PEER_PATH, {"search": term}),
                search_term=term,
            )
        )
    board = {"stages": stages, "board_page": BOARD_PAGE, **ids}
    cases += [
        Case(
            "board, all columns",
            "pages",
            ("/board/", {}),
            [(BOARD_TOTALS_SQL.format(where=""), board), (BOARD_CARDS_SQL.format(where=""), board)],
        ),
        Case(
            "board, source + owner",
            "pages",
            ("/board/", {"source": source, "owner": owner}),
            [
                (BOARD_TOTALS_SQL.format(where=filtered), board),
                (BOARD_CARDS_SQL.format(where=filtered), board),
            ],
        ),
        Case(
            f"lead page, {data.big_timeline} activities",
            "pages",
            (f"/leads/{data.big_lead_id}/", {}),
            [(sql, {"lead": data.big_lead_id, "timeline_page": TIMELINE_PAGE}) for sql in LEAD_SQL],
        ),
    ]
    admin = {**ids, "limit": ADMIN_PAGE, "offset": 0, "cap": ADMIN_COUNT_CAP + 1}
    admin_filtered = " AND l.stage_id = %(stage)s AND l.source_id = %(source)s"
    admin_page = LIST_PAGE_SQL
    cases += [
        Case(
            "admin changelist",
            "admin",
            ("/admin/leads/lead/", {}),
            [(admin_page.format(where=""), admin), (CAPPED_COUNT_SQL.format(where=""), admin)],
        ),
        Case(
            "admin changelist, stage + source",
            "admin",
            ("/admin/leads/lead/", {"stage__id__exact": stage, "source__id__exact": source}),
            [
                (admin_page.format(where=admin_filtered), admin),
                (CAPPED_COUNT_SQL.format(where=admin_filtered), admin),
            ],
        ),
        Case(
            f"CSV export, {data.export_rows:,} leads",
            "export",
            ("/api/leads/export/", {"created_after": since.isoformat()}),
            [(EXPORT_COPY_SQL, {"since": since})],
            stream=True,
            heavy=True,
            copy=True,
        ),
    ]
    figures = reports.parse_filters({"range": "30d"}, viewer=data.manager)
    cases += [
        Case("dashboard page (30 days)", "dashboard", ("/dashboard/", {"range": "30d"}), [], heavy=True),
        Case(
            "reports.dashboard() (30 days)", "dashboard", lambda: reports.dashboard(figures), [], heavy=True
        ),
    ]
    return cases


# --- timing ---------------------------------------------------------------------------------------


def percentiles(samples):
    """(median, p95) in milliseconds: p95 the nearest rank, the largest sample when there are few."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return round(statistics.median(ordered) * 1000, 3), round(p95 * 1000, 3)


def timed(run, runs, warmup):
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def raw_connection():
    """A psycopg connection of its own, from the same settings: no Django between us and PostgreSQL."""
    params = connection.get_connection_params()
    keep = {"dbname", "user", "password", "host", "port", "sslmode", "options", "service", "sslrootcert"}
    return psycopg.connect(
        **{k: v for k, v in params.items() if k in keep and v not in (None, "")}, autocommit=True
    )


class Runner:
    """Runs the cases: ours through the Client, the limit through psycopg, the peer through the Client."""

    def __init__(self, *, manager, runs, warmup, heavy_runs, raw, write):
        self.client = Client(raise_request_exception=True)
        self.client.force_login(manager)
        self.host = next(
            (h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")), "localhost"
        )
        self.runs, self.warmup, self.heavy_runs = runs, warmup, heavy_runs
        self.raw = raw
        self.write = write

    def request(self, path, params, *, stream=False):
        def run():
            response = self.client.get(path, params, HTTP_HOST=self.host)
            if response.status_code != 200:
                body = b"".join(response.streaming_content) if response.streaming else response.content
                raise RuntimeError(f"GET {path} {params} answered {response.status_code}: {body[:300]!r}")
            if stream:
                # The export streams: the rows are read from the database while this is consumed.
                rows = sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1
                response.close()
                return {"rows": rows}
            if response.get("Content-Type", "").startswith("application/json"):
                payload = json.loads(response.content)
                if isinstance(payload, dict) and "count" in payload:
                    return {"matched": payload["count"]}
            return {}

        return run

    def counted(self, run):
        """One run with its queries counted (a request resets Django's log; this context does not)."""
        with CaptureQueriesContext(connection) as captured:
            info = run() or {}
        return len(captured.captured_queries), info, captured.captured_queries

    def raw_run(self, statements, *, copy=False, session=()):
        def run():
            rows = 0
            with self.raw.cursor() as cursor:
                if session:
                    # The planner settings hold for this transaction only.
                    with self.raw.transaction():
                        for setting in session:
                            cursor.execute(setting)
                        rows = self._execute(cursor, statements, copy)
                else:
                    rows = self._execute(cursor, statements, copy)
            return rows

        return run

    @staticmethod
    def _execute(cursor, statements, copy):
        rows = 0
        for sql, params in statements:
            if copy:
                with cursor.copy(sql, params) as out:
                    rows += sum(bytes(block).count(b"\n") for block in out) - 1
            elif params is None:
                cursor.execute(sql.encode())
                rows += len(cursor.fetchall())
            else:
                cursor.execute(sql, params)
                rows += len(cursor.fetchall())
        return rows

    def measure(self, case):
        runs = min(self.runs, self.heavy_runs) if case.heavy else self.runs
        warmup = min(self.warmup, 1) if case.heavy else self.warmup
        ours = case.ours if callable(case.ours) else self.request(*case.ours, stream=case.stream)
        queries, info, captured = self.counted(ours)
        p50, p95 = timed(ours, runs, warmup)
        result = {
            "case": case.name,
            "group": case.group,
            "request": None if callable(case.ours) else _describe(*case.ours),
            "runs": runs,
            "warmup": warmup,
            "ours": {"p50_ms": p50, "p95_ms": p95, "queries": queries, **info},
        }
        raw = case.raw
        if not raw:
            # The dashboard's limit is its own figures' SQL, replayed through psycopg: the ORM,
            # the request and the template are what is left.
            raw = [
                (q["sql"], None) for q in captured if q["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
            ]
            result["raw_is_replay"] = True
        raw_run = self.raw_run(raw, copy=case.copy)
        raw_rows = raw_run()
        p50, p95 = timed(raw_run, runs, warmup)
        result["raw"] = {"p50_ms": p50, "p95_ms": p95, "statements": len(raw), "rows": raw_rows}
        result["raw"]["sql"] = [sql if isinstance(sql, str) else str(sql) for sql, _ in raw][:10]
        result["ours_over_raw"] = _ratio(result["ours"]["p50_ms"], p50)
        if case.stream:
            rows = info.get("rows", 0)
            result["ours"]["rows_per_second"] = round(rows / (result["ours"]["p50_ms"] / 1000)) if rows else 0
            result["raw"]["rows_per_second"] = round(raw_rows / (p50 / 1000)) if raw_rows else 0
        if case.peer:
            peer = self.request(*case.peer)
            peer_queries, peer_info, _ = self.counted(peer)
            p50, p95 = timed(peer, runs, warmup)
            result["peer"] = {
                "p50_ms": p50,
                "p95_ms": p95,
                "queries": peer_queries,
                "request": _describe(*case.peer),
                **peer_info,
            }
            result["ours_over_peer"] = _ratio(result["ours"]["p50_ms"], p50)
        else:
            result["peer"] = None
            result["ours_over_peer"] = None
        if case.search_term is not None:
            # Without the trigram index: the same limit with bitmap scans (the only way a GIN
            # trigram index is read) turned off for its transaction. Seconds a run on a million
            # leads, and a diagnostic rather than a page: timed --heavy-runs times.
            no_index = self.raw_run(raw, session=("SET LOCAL enable_bitmapscan = off",))
            heavy_runs = min(self.runs, self.heavy_runs)
            p50, p95 = timed(no_index, heavy_runs, min(self.warmup, 1))
            result["raw_without_trigram_index"] = {"p50_ms": p50, "p95_ms": p95, "runs": heavy_runs}
        case.result = result
        return result


def _describe(path, params):
    from urllib.parse import urlencode

    return f"{path}?{urlencode(params)}" if params else path


def _ratio(ours, other):
    return round(ours / other, 4) if other else None
