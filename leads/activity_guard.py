"""The database's guard of the append-only timeline, and its one narrow exception (benchmark scratch rows).

Migration 0008 puts a trigger on leads_activity (PostgreSQL) that refuses every UPDATE and
DELETE, so no door (raw SQL, a shell, a future bug) can rewrite the audit trail. The benchmark
commands insert and later remove their own scratch leads with their timelines; they remove them
inside `with activity_purge(connection):`, which lets DELETE (never UPDATE) through for that
block of that transaction only. Nothing else uses it.
"""

from contextlib import contextmanager

PURGE_SETTING = "leadboard.purge_activities"


@contextmanager
def activity_purge(connection):
    """Within this block of the current transaction, DELETE on leads_activity passes (PostgreSQL)."""
    if connection.vendor != "postgresql":
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("activity_purge needs a transaction: the permission is local to one.")
    with connection.cursor() as cursor:
        # set_config(..., true) is SET LOCAL: it can never outlive the transaction.
        cursor.execute("SELECT set_config(%s, 'on', true)", [PURGE_SETTING])
    try:
        yield
    finally:
        if not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, 'off', true)", [PURGE_SETTING])
