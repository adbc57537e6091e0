"""The pipeline app: leads, stages, sources, the timeline, and who hears about changes."""

from django.apps import AppConfig


class LeadsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "leads"

    def ready(self):
        # Receivers of leads.events.lead_changed, each run after the change commits.
        # [receivers: e-mail]
        # [receivers: in-app notifications]
        # [receivers: live board]
        pass
