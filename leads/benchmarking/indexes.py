"""Setting a table's secondary indexes aside during a bulk load, and building them again after."""

# Building an index once is far faster than updating it row by row: the bench generators drop
# the secondary indexes of the tables they fill (keeping each definition) and rebuild them after
# the inserts. Indexes behind a constraint (primary keys, unique constraints) stay: rows need them.
_SECONDARY_INDEXES_SQL = (
    "SELECT i.indexname, i.indexdef FROM pg_indexes i"
    " WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)"
    " AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
    " WHERE c.conindid = (quote_ident(i.indexname))::regclass)"
)


def set_indexes_aside(cursor, tables):
    """Drop the secondary indexes of `tables`; returns [(name, definition)] for rebuild_indexes."""
    cursor.execute(_SECONDARY_INDEXES_SQL, [list(tables)])
    aside = cursor.fetchall()
    for name, _ in aside:
        cursor.execute(f'DROP INDEX "{name}"')
    return aside


def rebuild_indexes(cursor, aside):
    cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for _, definition in aside:
        cursor.execute(definition)
