"""Lead counters: exact counts and value sums of live leads without scanning leads_lead.

On PostgreSQL, leads_leadcount holds rows per (stage, source, owner) whose SUM is exact, written
by the statement-level triggers of migration 0007 in the same transaction as every write
(services, COPY imports, bulk updates, raw SQL): delta rows, folded now and then (see 0007).
Elsewhere (SQLite: small data, no triggers) the same filters are applied to the live leads
themselves, so both paths answer the same question:

    q = counter_q(user, {"stage": stage, "owner": "me"})   # None: not expressible, COUNT(*)
    count, value = totals(q)

A filter is expressible when it is the user's visibility (policies.visible_leads_q) plus any of
stage, source and owner: the three columns a counter row is keyed by. Lead and LeadCount
name them alike, so one Q filters either table.
"""

from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from leads.models import Lead, LeadCount
from leads.policies import visible_leads_q

# The filters a counter row can answer; any other active filter (search, dates) needs COUNT(*).
COUNTED_FILTERS = {"stage", "source", "owner"}
# Filters that change the order of rows, never which rows: they do not stop counting.
ORDER_ONLY_FILTERS = {"ordering"}


def uses_counters():
    """Whether this database keeps the counter table (PostgreSQL, with the 0007 triggers)."""
    return connection.vendor == "postgresql"


def _visibility_as_counter_q(q):
    """policies.visible_leads_q(user) with its live-row condition dropped (counters hold only
    live leads), or None when it says something a counter row cannot (a rule added later)."""
    if not isinstance(q, Q):
        return None
    children = []
    for child in q.children:
        if isinstance(child, Q):
            inner = _visibility_as_counter_q(child)
            if inner is None:
                return None
            children.append(inner)
            continue
        lookup, value = child
        if lookup == "deleted_at__isnull" and value is True:
            continue  # every counted lead is live
        if lookup == "pk__in" and not list(value):
            children.append(Q(pk__in=[]))  # nobody: an inactive or anonymous user
        elif lookup in {"owner", "owner_id", "owner__isnull", "stage", "stage_id", "source", "source_id"}:
            children.append(Q((lookup, value)))
        else:
            return None
    result = Q(*children, _connector=q.connector, _negated=q.negated)
    return result


def counter_q(user, filters):
    """A Q over (stage, source, owner) equal to visible_leads(user) narrowed by `filters` (a
    LeadFilter's active_filters()), or None when the filters need the leads themselves."""
    extra = set(filters) - COUNTED_FILTERS - ORDER_ONLY_FILTERS
    if extra:
        return None
    q = _visibility_as_counter_q(visible_leads_q(user))
    if q is None:
        return None
    if filters.get("stage") is not None:
        q &= Q(stage_id=filters["stage"].pk)
    if filters.get("source") is not None:
        q &= Q(source_id=filters["source"].pk)
    owner = filters.get("owner")
    if owner == "unassigned":
        q &= Q(owner__isnull=True)
    elif owner == "me":
        # As LeadFilter's OwnerFilter: "me" for nobody signed in matches nothing.
        q &= Q(owner_id=user.pk) if user is not None and user.is_authenticated else Q(pk__in=[])
    elif owner not in (None, ""):
        q &= Q(owner_id=owner.pk)
    return q


def _rows(q):
    """The rows the counts are summed from: counters on PostgreSQL, the live leads elsewhere."""
    if uses_counters():
        return LeadCount.objects.filter(q).order_by(), "count", "value_sum"
    return Lead.objects.live().filter(q).order_by(), None, "value"


def totals(q):
    """(count, total value) of the live leads `q` (from counter_q) selects, in one query."""
    rows, count_field, value_field = _rows(q)
    result = rows.aggregate(count=Sum(count_field) if count_field else Count("pk"), value=Sum(value_field))
    return result["count"] or 0, result["value"] or Decimal(0)


def totals_by_stage(q, stages):
    """{stage id: (count, total value)} of the live leads `q` selects, in one query; stages
    without leads are left out (as selectors.board_column_totals)."""
    rows, count_field, value_field = _rows(q & Q(stage_id__in=[stage.pk for stage in stages]))
    grouped = rows.values("stage_id").annotate(
        n=Sum(count_field) if count_field else Count("pk"), value=Sum(value_field)
    )
    return {row["stage_id"]: (row["n"], row["value"] or Decimal(0)) for row in grouped if row["n"]}


# --- keeping the counters honest -------------------------------------------------------------

_REAL = """
SELECT stage_id, source_id, owner_id, count(*) AS n, sum(value) AS value
FROM leads_lead WHERE deleted_at IS NULL GROUP BY stage_id, source_id, owner_id
"""

DRIFT_SQL = f"""
SELECT COALESCE(r.stage_id, c.stage_id), COALESCE(r.source_id, c.source_id),
       COALESCE(r.owner_id, c.owner_id),
       COALESCE(c.count, 0), COALESCE(r.n, 0), COALESCE(c.value_sum, 0), COALESCE(r.value, 0)
FROM ({_REAL}) AS r
FULL OUTER JOIN (
    SELECT stage_id, source_id, owner_id, sum(count) AS count, sum(value_sum) AS value_sum
    FROM leads_leadcount GROUP BY stage_id, source_id, owner_id
) AS c
  ON c.stage_id = r.stage_id AND c.source_id = r.source_id
 AND c.owner_id IS NOT DISTINCT FROM r.owner_id
WHERE COALESCE(c.count, 0) <> COALESCE(r.n, 0) OR COALESCE(c.value_sum, 0) <> COALESCE(r.value, 0)
ORDER BY 1, 2, 3 NULLS FIRST
"""


def counter_drift():
    """Every counter that disagrees with a real COUNT(*)/SUM of live leads, as dicts
    {stage_id, source_id, owner_id, counted, actual, counted_value, actual_value}; [] when exact.

    One scan of leads_lead (seconds at a million rows): for integrity checks, not for pages.
    Without counters (SQLite) the counts come from the rows themselves and cannot drift: [].
    """
    if not uses_counters():
        return []
    with connection.cursor() as cursor:
        cursor.execute(DRIFT_SQL)
        keys = ("stage_id", "source_id", "owner_id", "counted", "actual", "counted_value", "actual_value")
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


def compact_lead_counts():
    """Fold the counters' delta rows into one row per key now (the triggers do it now and then);
    False when another transaction is folding them at this moment."""
    if not uses_counters():
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT leads_lead_count_compact()")
        return cursor.fetchone()[0]


def rebuild_lead_counts():
    """Recount every counter from leads_lead; returns how many counter rows there are now.

    For after writes the triggers did not see (session_replication_role = replica, as some bulk
    loaders and the bench generator use; a restore with triggers disabled). Writers wait for the
    rebuild (SHARE lock), readers do not; the old counts stay visible until it commits.
    """
    if not uses_counters():
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE leads_lead IN SHARE MODE")
        # A compaction writes no leads, so the SHARE lock does not stop one; if it committed while
        # the DELETE below waited on its rows, its folded rows would survive beside the recount.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('leads_leadcount compact'))")
        cursor.execute("DELETE FROM leads_leadcount")
        cursor.execute(
            "INSERT INTO leads_leadcount (stage_id, source_id, owner_id, count, value_sum)"
            f" SELECT stage_id, source_id, owner_id, n, value FROM ({_REAL}) AS r"
        )
        return cursor.rowcount
