"""Data integrity checks behind manage.py check_integrity: timeline vs leads, duplicates, files, references.

Every check is one set-based query (or a stream in fixed-size batches for the files), returning at
most `examples` rows plus the total, so a million leads are checked in bounded memory. Nothing
here writes: a problem is reported for a person to look at, never "fixed" behind their back.
"""

import os
from dataclasses import dataclass, field

from django.core.files.storage import default_storage
from django.db import connection

from leads.models import Activity, Attachment, FollowUp, Lead, Stage

ATTACHMENTS_FOLDER = "attachments"
# Files are checked against the database this many names at a time.
FILE_BATCH = 1000

# Each kind of problem, in report order, with what it means for the person reading the report.
KINDS = {
    "missing_history": "live leads with no created/imported entry on their timeline",
    "stage_mismatch": "live leads whose stage differs from their timeline's last stage record",
    "owner_mismatch": "live leads whose owner differs from their timeline's last owner record",
    "duplicate_email": "e-mail addresses shared by live leads (compared lower-cased)",
    "duplicate_phone": "phone numbers shared by live leads (compared without spaces and punctuation)",
    "dangling_activity": "activities pointing at a lead that does not exist",
    "dangling_attachment": "attachments pointing at a lead that does not exist",
    "dangling_follow_up": "follow-ups pointing at a lead that does not exist",
    "missing_file": "attachment rows whose file is not in storage",
    "orphan_file": "files under attachments/ that no attachment row names",
    "counter_drift": "lead counters that differ from a real count of live leads",
}


@dataclass
class Problem:
    kind: str
    count: int = 0
    examples: list = field(default_factory=list)

    def add(self, example, limit):
        self.count += 1
        if len(self.examples) < limit:
            self.examples.append(example)


@dataclass
class Report:
    checked: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)

    @property
    def ok(self):
        return not any(problem.count for problem in self.problems.values())

    def as_dict(self):
        return {
            "ok": self.ok,
            "checked": self.checked,
            "problems": {
                kind: {"description": KINDS[kind], "count": p.count, "examples": p.examples}
                for kind, p in self.problems.items()
                if p.count
            },
        }


# --- SQL that runs on PostgreSQL and SQLite ---------------------------------------------------


def _json(column, key):
    """The text (or number, on SQLite) at data[key]; NULL when missing or JSON null."""
    if connection.vendor == "postgresql":
        return f"({column} ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def _same(left, right):
    """Null-safe equality."""
    op = "IS NOT DISTINCT FROM" if connection.vendor == "postgresql" else "IS"
    return f"({left} {op} {right})"


def _as_id(expression):
    return f"CAST({expression} AS BIGINT)"


def _tables():
    return {
        "lead": Lead._meta.db_table,
        "activity": Activity._meta.db_table,
        "attachment": Attachment._meta.db_table,
        "follow_up": FollowUp._meta.db_table,
        "stage": Stage._meta.db_table,
        "user": Lead._meta.get_field("owner").related_model._meta.db_table,
    }


def _last_record(kinds):
    """Join `r`: each lead's latest activity among `kinds` or a CSV import's creation, in timeline order."""
    t = _tables()
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    return f"""
        LEFT JOIN {t["activity"]} r ON r.id = (
            SELECT a.id FROM {t["activity"]} a
            WHERE a.lead_id = l.id
              AND (a.kind IN ({listed}) OR (a.kind = 'imported' AND {_json("a.data", "action")} = 'created'))
            ORDER BY a.occurred_at DESC, a.id DESC
            LIMIT 1
        )
    """


def _fetch(sql, examples, params=()):
    """At most `examples` rows of `sql`, and the total (`sql` selects `COUNT(*) OVER ()` last)."""
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} LIMIT %s", [*params, examples])
        rows = cursor.fetchall()
    total = rows[0][-1] if rows else 0
    return [row[:-1] for row in rows], total


def _record(report, kind, rows_total, describe):
    rows, total = rows_total
    report.problems[kind] = Problem(kind, total, [describe(*row) for row in rows])


def check_history(report, examples):
    t = _tables()
    sql = f"""
        SELECT l.id, COUNT(*) OVER () AS total FROM {t["lead"]} l
        WHERE l.deleted_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM {t["activity"]} a WHERE a.lead_id = l.id
              AND (a.kind = 'created' OR (a.kind = 'imported' AND {_json("a.data", "action")} = 'created'))
        )
        ORDER BY l.id
    """
    _record(report, "missing_history", _fetch(sql, examples), lambda lead: f"lead #{lead}")


def check_stages(report, examples):
    t = _tables()
    expected = f"""CASE
        WHEN r.kind = 'stage_changed' THEN {_as_id(_json("r.data", "to_id"))}
        WHEN {_json("r.data", "stage_id")} IS NOT NULL THEN {_as_id(_json("r.data", "stage_id"))}
        -- Entries written before ids were recorded name the stage.
        ELSE (SELECT s.id FROM {t["stage"]} s WHERE s.name = {_json("r.data", "stage")})
    END"""
    sql = f"""
        SELECT id, stage_id, record_id, record_kind, expected, COUNT(*) OVER () AS total FROM (
            SELECT l.id, l.stage_id, r.id AS record_id, r.kind AS record_kind, {expected} AS expected
            FROM {t["lead"]} l {_last_record(["created", "stage_changed"])}
            WHERE l.deleted_at IS NULL AND r.id IS NOT NULL
        ) x
        WHERE expected IS NULL OR expected <> stage_id
        ORDER BY id
    """

    def describe(lead, stage, record, record_kind, expected):
        return (
            f"lead #{lead} is in stage #{stage}, but its last stage record "
            f"(activity #{record}, {record_kind}) says stage #{expected if expected is not None else '?'}"
        )

    _record(report, "stage_mismatch", _fetch(sql, examples), describe)


def check_owners(report, examples):
    t = _tables()
    display = "COALESCE(NULLIF(TRIM(u.first_name || ' ' || u.last_name), ''), u.email)"
    matches = f"""CASE
        WHEN r.kind = 'owner_changed' THEN {_same(_as_id(_json("r.data", "to_id")), "l.owner_id")}
        WHEN {_json("r.data", "owner_id")} IS NOT NULL THEN {_as_id(_json("r.data", "owner_id"))} = l.owner_id
        WHEN {_json("r.data", "owner")} IS NULL THEN l.owner_id IS NULL
        -- Entries written before ids were recorded name the owner as str(user) did then.
        ELSE COALESCE({display} = {_json("r.data", "owner")}, FALSE)
    END"""
    sql = f"""
        SELECT l.id, l.owner_id, r.id, r.kind, COUNT(*) OVER () AS total
        FROM {t["lead"]} l {_last_record(["created", "owner_changed"])}
        LEFT JOIN {t["user"]} u ON u.id = l.owner_id
        WHERE l.deleted_at IS NULL AND r.id IS NOT NULL AND NOT ({matches})
        ORDER BY l.id
    """

    def describe(lead, owner, record, record_kind):
        owner = f"user #{owner}" if owner is not None else "unassigned"
        record = f"activity #{record}, {record_kind}"
        return f"lead #{lead} is {owner}, but its last owner record ({record}) disagrees"

    _record(report, "owner_mismatch", _fetch(sql, examples), describe)


def check_duplicates(report, examples):
    t = _tables()
    phone = "l.phone"
    for character in (" ", "-", "(", ")", ".", "/"):
        phone = f"REPLACE({phone}, '{character}', '')"
    for kind, column, key in (
        ("duplicate_email", "email", "LOWER(TRIM(l.email))"),
        ("duplicate_phone", "phone", phone),
    ):
        sql = f"""
            SELECT k, n, first_id, last_id, COUNT(*) OVER () AS total FROM (
                SELECT {key} AS k, COUNT(*) AS n, MIN(l.id) AS first_id, MAX(l.id) AS last_id
                FROM {t["lead"]} l
                WHERE l.deleted_at IS NULL AND l.{column} <> ''
                GROUP BY {key}
                HAVING COUNT(*) > 1
            ) x
            ORDER BY k
        """

        def describe(value, count, first, last, column=column):
            return f"{column} {value!r} is on {count} live leads (#{first} … #{last})"

        _record(report, kind, _fetch(sql, examples), describe)


def check_references(report, examples):
    t = _tables()
    for kind, table in (
        ("dangling_activity", t["activity"]),
        ("dangling_attachment", t["attachment"]),
        ("dangling_follow_up", t["follow_up"]),
    ):
        sql = f"""
            SELECT x.id, x.lead_id, COUNT(*) OVER () AS total FROM {table} x
            LEFT JOIN {t["lead"]} l ON l.id = x.lead_id
            WHERE l.id IS NULL
            ORDER BY x.id
        """
        noun = kind.removeprefix("dangling_").replace("_", "-")
        _record(
            report, kind, _fetch(sql, examples), lambda row, lead, noun=noun: f"{noun} #{row} → lead #{lead}"
        )


def check_files(report, examples, storage=None):
    """Every attachment row's file exists; every file under attachments/ has a row. Streams both."""
    storage = storage or default_storage
    missing = report.problems["missing_file"] = Problem("missing_file")
    rows = Attachment.objects.order_by("pk").values_list("pk", "lead_id", "file")
    files = 0
    for pk, lead_id, name in rows.iterator(chunk_size=FILE_BATCH):
        if not name or not storage.exists(name):
            missing.add(f"attachment #{pk} of lead #{lead_id}: {name or '(no file name)'}", examples)
    orphans = report.problems["orphan_file"] = Problem("orphan_file")
    batch = []
    for name in _stored_files(storage, ATTACHMENTS_FOLDER):
        files += 1
        batch.append(name)
        if len(batch) >= FILE_BATCH:
            _report_orphans(batch, orphans, examples)
            batch = []
    _report_orphans(batch, orphans, examples)
    report.checked["files"] = files


def _report_orphans(names, orphans, examples):
    if not names:
        return
    known = set(Attachment.objects.filter(file__in=names).values_list("file", flat=True))
    for name in names:
        if name not in known:
            orphans.add(name, examples)


def _stored_files(storage, folder):
    """Every file name under `folder`, one at a time (os.scandir on disk, listdir on S3)."""
    try:
        root = storage.path(folder)
    except NotImplementedError:
        root = None
    if root is not None:
        if not os.path.isdir(root):
            return
        base = storage.path("")
        stack = [root]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        yield os.path.relpath(entry.path, base).replace(os.sep, "/")
        return
    directories, names = storage.listdir(folder)
    for name in names:
        yield f"{folder}/{name}"
    for directory in directories:
        yield from _stored_files(storage, f"{folder}/{directory}")


def check_counters(report, examples):
    """Counters (leads/counts.py) against real counts, when this checkout has them."""
    try:
        from leads.counts import counter_drift
    except ImportError:
        return
    problem = report.problems["counter_drift"] = Problem("counter_drift")
    for row in counter_drift():
        problem.add(
            "stage #{stage_id} source #{source_id} owner #{owner_id}: counted {counted} (value "
            "{counted_value}), actually {actual} (value {actual_value})".format(**row),
            examples,
        )


def run_checks(*, examples=10, storage=None):
    report = Report()
    report.checked = {
        "live_leads": Lead.objects.filter(deleted_at__isnull=True).count(),
        "leads": Lead.objects.count(),
        "activities": Activity.objects.count(),
        "attachments": Attachment.objects.count(),
        "follow_ups": FollowUp.objects.count(),
    }
    check_history(report, examples)
    check_stages(report, examples)
    check_owners(report, examples)
    check_duplicates(report, examples)
    check_references(report, examples)
    check_files(report, examples, storage)
    check_counters(report, examples)
    return report
