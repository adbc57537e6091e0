"""The activity timeline is append-only in the database too: a trigger refuses UPDATE and DELETE.

PostgreSQL only (SQLite is the demo database; the models refuse there). The one exception is
leads.activity_guard.permit_activity_purge, for the benchmark commands' own scratch rows.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION leads_activity_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('leadboard.purge_activities', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'The activity timeline is append-only: % of leads_activity row % refused', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation',
              HINT = 'Record a new activity instead of changing or removing one.';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER leads_activity_append_only
    BEFORE UPDATE OR DELETE ON leads_activity
    FOR EACH ROW EXECUTE FUNCTION leads_activity_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS leads_activity_append_only ON leads_activity;
DROP FUNCTION IF EXISTS leads_activity_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the % in RAISE are PL/pgSQL placeholders, not the driver's.
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0007_lead_counts"),
    ]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
