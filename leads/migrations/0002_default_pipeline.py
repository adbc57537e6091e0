"""The pipeline every new installation starts with; managers edit it in admin afterwards."""

from django.db import migrations

DEFAULT_STAGES = [
    ("New Lead", "open"),
    ("Reached Out", "open"),
    ("No Response", "open"),
    ("In Progress", "open"),
    ("Won", "won"),
    ("Lost", "lost"),
]
DEFAULT_SOURCES = ["Facebook", "LinkedIn", "Website", "Referral", "Manual", "Import"]


def create_defaults(apps, schema_editor):
    Stage = apps.get_model("leads", "Stage")
    Source = apps.get_model("leads", "Source")
    for position, (name, kind) in enumerate(DEFAULT_STAGES, start=1):
        Stage.objects.get_or_create(name=name, defaults={"position": position * 10, "kind": kind})
    for name in DEFAULT_SOURCES:
        Source.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
