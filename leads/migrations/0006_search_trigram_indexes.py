"""pg_trgm and trigram GIN indexes on the columns lead search reads (PostgreSQL only; nothing elsewhere).

leads.search emits `col ILIKE '%term%'` (words of 3+ characters), `col ILIKE 'te%'` (1-2
characters) and `phone LIKE '%digits%'` on PostgreSQL; a gin_trgm_ops index on the bare column
serves all three (the planner looks through the varchar->text relabel Django adds).

Why these choices:
- Not partial (no WHERE deleted_at IS NULL): the admin's search also runs over deleted leads
  (its Live/Deleted/All filter), so not every search implies that predicate, and a partial index
  would leave those searches a sequential scan. Deleted leads are a small share of the table.
- CREATE INDEX CONCURRENTLY, so that migrating a live database with a million leads does not
  block writes to leads_lead while five trigram indexes build (minutes, not seconds). That needs
  a non-atomic migration; an index a failed concurrent build left INVALID is dropped and rebuilt
  on the next run. When the functions run inside a transaction (a test calling them directly),
  they fall back to a plain CREATE/DROP INDEX, which a transaction allows.
- Not in Lead.Meta.indexes: a GinIndex there would be created on SQLite too and fail. Django's
  migration state therefore does not know these indexes; this migration alone owns them.
- CREATE EXTENSION needs a role allowed to create it (pg_trgm is a trusted extension since
  PostgreSQL 13: the database owner may). Reversing drops the indexes and keeps the extension,
  which other objects may use.
"""

from django.db import migrations

# Index name -> column. leads.bench_search and leads/tests/test_search_indexes.py read this too.
TRIGRAM_INDEXES = {
    "lead_first_name_trgm": "first_name",
    "lead_last_name_trgm": "last_name",
    "lead_email_trgm": "email",
    "lead_company_trgm": "company",
    "lead_phone_trgm": "phone",
}


def _concurrently(schema_editor):
    return "" if schema_editor.connection.in_atomic_block else " CONCURRENTLY"


def create_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: search runs as a scan there (see leads.search), no index to build
    concurrently = _concurrently(schema_editor)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        # An interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index that IF NOT EXISTS
        # would keep for ever: drop it so it is rebuilt.
        cursor.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE NOT i.indisvalid AND c.relname = ANY(%s)",
            [list(TRIGRAM_INDEXES)],
        )
        for (invalid,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX{concurrently} IF EXISTS "{invalid}"')
        for name, column in TRIGRAM_INDEXES.items():
            cursor.execute(
                f'CREATE INDEX{concurrently} IF NOT EXISTS "{name}" '
                f'ON leads_lead USING gin ("{column}" gin_trgm_ops)'
            )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    concurrently = _concurrently(schema_editor)
    with schema_editor.connection.cursor() as cursor:
        for name in TRIGRAM_INDEXES:
            cursor.execute(f'DROP INDEX{concurrently} IF EXISTS "{name}"')


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
    atomic = False

    dependencies = [("leads", "0005_imports")]

    operations = [
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes, elidable=False),
    ]
