"""Announcing lead changes after their transaction commits (live board, notifications)."""

from django.db import transaction
from django.dispatch import Signal

# Sent with: event (e.g. "lead.moved"), lead_id, actor_id, payload (dict). Receivers run
# after commit, so nothing is announced that was rolled back.
lead_changed = Signal()


def announce(event, *, lead, actor, **payload):
    lead_id, actor_id = lead.pk, getattr(actor, "pk", None)
    transaction.on_commit(
        lambda: lead_changed.send(
            sender=type(lead), event=event, lead_id=lead_id, actor_id=actor_id, payload=payload
        )
    )
