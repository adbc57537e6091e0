"""The pipeline app: leads, stages, sources and the activity timeline."""

from django.apps import AppConfig


class LeadsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "leads"
