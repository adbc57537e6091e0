"""The pipeline app: leads, stages, sources, the timeline, and who hears about changes."""

from django.apps import AppConfig

# Who hears about a change to a lead, each after the change commits (see leads.events).
LEAD_CHANGE_RECEIVERS = {
    "leads.emails.send_lead_emails": "leads.emails:send_lead_emails",
    "leads.notifications.on_lead_changed": "leads.notifications:on_lead_changed",
    "leads.realtime.broadcast_lead_change": "leads.realtime:broadcast_lead_change",
}


class LeadsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "leads"

    def ready(self):
        from importlib import import_module

        from leads.events import lead_changed

        for dispatch_uid, target in LEAD_CHANGE_RECEIVERS.items():
            module, function = target.split(":")
            lead_changed.connect(getattr(import_module(module), function), dispatch_uid=dispatch_uid)

        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from leads.realtime import reconnect_user_sockets

        post_save.connect(
            reconnect_user_sockets,
            sender=get_user_model(),
            dispatch_uid="leads.realtime.reconnect_user_sockets",
        )

        # Lead search on SQLite folds case with Python's str.lower (see leads.search).
        from django.db.backends.signals import connection_created

        from leads.search import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="leads.search.sqlite_functions")
