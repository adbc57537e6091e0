"""Lead counters: live leads and value per (stage, source, owner), kept exact by PostgreSQL triggers.

Why triggers and not the service layer: leads are written by services, but also by COPY (imports),
bulk UPDATEs (reassign_all_leads, admin actions), merges and raw maintenance SQL. A statement-level
trigger with transition tables sees every one of them, in the same transaction, with one INSERT
per statement (not per row).

Why delta rows and not an upsert of one row per key: a transaction holds the row locks it takes
until it commits, so two transactions that update the same keys in different orders over several
statements (two reassign_all_leads, an import batch and an admin action) deadlock; an upsert in
key order prevents that only within one statement (a test showed it). Here writers only INSERT,
so they never wait for each other. A count is the SUM over its key's rows; about one write in 50
folds all rows into one per key (leads_lead_count_compact), under an advisory lock so only one
transaction folds at a time. Folding deletes only rows its snapshot sees committed, so deltas of
transactions still running are kept, and readers see either the old rows or the folded ones.

The migration creates the triggers first, then backfills: creating a trigger locks leads_lead
against writes until the migration commits, so no write falls between the backfill and the
triggers. On SQLite there are no triggers: leads/counts.py counts the rows directly there.
"""

from django.conf import settings
from django.db import migrations, models

# One function per event: PostgreSQL allows transition tables only on single-event triggers.
# Only live rows (deleted_at IS NULL) count, so a soft delete is an update that leaves a key.
DELTA = {
    "INSERT": "SELECT stage_id, source_id, owner_id, 1 AS n, value FROM new_rows WHERE deleted_at IS NULL",
    "DELETE": "SELECT stage_id, source_id, owner_id, -1 AS n, -value FROM old_rows WHERE deleted_at IS NULL",
    "UPDATE": (
        "SELECT stage_id, source_id, owner_id, 1 AS n, value FROM new_rows WHERE deleted_at IS NULL"
        " UNION ALL"
        " SELECT stage_id, source_id, owner_id, -1 AS n, -value FROM old_rows WHERE deleted_at IS NULL"
    ),
}

FUNCTION = """
CREATE OR REPLACE FUNCTION leads_lead_count_{event}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO leads_leadcount (stage_id, source_id, owner_id, count, value_sum)
    SELECT stage_id, source_id, owner_id, sum(n), sum(value)
    FROM ({delta}) AS d (stage_id, source_id, owner_id, n, value)
    GROUP BY stage_id, source_id, owner_id
    -- An edit that moves nothing (a note, a phone) nets to zero: no row is written.
    HAVING sum(n) <> 0 OR sum(value) <> 0;
    IF random() < 0.02 THEN
        PERFORM leads_lead_count_compact();
    END IF;
    RETURN NULL;
END
$$;
"""

# Fold every counter row this statement sees into one per key. Skipped (false) while another
# transaction folds: it holds the lock until it commits, and its rows would be folded twice.
COMPACT = """
CREATE OR REPLACE FUNCTION leads_lead_count_compact() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('leads_leadcount compact')) THEN
        RETURN false;
    END IF;
    WITH gone AS (
        DELETE FROM leads_leadcount RETURNING stage_id, source_id, owner_id, count, value_sum
    )
    INSERT INTO leads_leadcount (stage_id, source_id, owner_id, count, value_sum)
    SELECT stage_id, source_id, owner_id, sum(count), sum(value_sum)
    FROM gone GROUP BY stage_id, source_id, owner_id
    HAVING sum(count) <> 0 OR sum(value_sum) <> 0;
    RETURN true;
END
$$;
"""

TRIGGER = """
CREATE TRIGGER leads_lead_count_{event}
AFTER {EVENT} ON leads_lead
REFERENCING {tables}
FOR EACH STATEMENT EXECUTE FUNCTION leads_lead_count_{event}();
"""

TABLES = {
    "INSERT": "NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}

TRUNCATE = """
CREATE OR REPLACE FUNCTION leads_lead_count_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM leads_leadcount;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_lead_count_truncate AFTER TRUNCATE ON leads_lead
FOR EACH STATEMENT EXECUTE FUNCTION leads_lead_count_truncate();
"""

BACKFILL = """
INSERT INTO leads_leadcount (stage_id, source_id, owner_id, count, value_sum)
SELECT stage_id, source_id, owner_id, count(*), sum(value)
FROM leads_lead WHERE deleted_at IS NULL
GROUP BY stage_id, source_id, owner_id
"""


def install_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(COMPACT)
    for event, delta in DELTA.items():
        schema_editor.execute(FUNCTION.format(event=event.lower(), delta=delta))
        schema_editor.execute(TRIGGER.format(event=event.lower(), EVENT=event, tables=TABLES[event]))
    schema_editor.execute(TRUNCATE)
    schema_editor.execute(BACKFILL)


def remove_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for event in (*DELTA, "TRUNCATE"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS leads_lead_count_{event.lower()} ON leads_lead")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS leads_lead_count_{event.lower()}()")
    schema_editor.execute("DROP FUNCTION IF EXISTS leads_lead_count_compact()")


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0006_search_trigram_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="LeadCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("count", models.BigIntegerField(default=0)),
                ("value_sum", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
                (
                    "owner",
                    models.ForeignKey(
                        db_constraint=False,
                        null=True,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "source",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="leads.source",
                    ),
                ),
                (
                    "stage",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="leads.stage",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=["-created_at", "-id"],
                include=["stage", "source", "owner"],
                name="lead_list_order",
            ),
        ),
        migrations.RunPython(install_triggers, remove_triggers, elidable=False),
    ]
