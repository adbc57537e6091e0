"""The live board: the WebSocket consumer and the broadcaster that tells it which leads changed."""

import logging

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from accounts import security_log
from leads.models import Lead

logger = logging.getLogger(__name__)

# Close code for "sign in again": the client stops reconnecting when it sees it.
CLOSE_UNAUTHENTICATED = 4401
# Close code for "reconnect now": the user's groups changed (role, deactivation).
CLOSE_RECONNECT = 4000
MANAGERS_GROUP = "managers"
# Everyone who is not a manager: they see shared leads (LEAD_SHARING read/write) and the
# unassigned pool (under private too).
TEAM_GROUP = "team"


def user_group(user_id):
    return f"user.{user_id}"


def groups_for(user):
    """The groups a signed-in user's socket joins; the broadcaster picks among these per lead."""
    return [user_group(user.pk), MANAGERS_GROUP if user.is_manager else TEAM_GROUP]


class BoardConsumer(AsyncJsonWebsocketConsumer):
    """Pushes "lead X changed" notes to a signed-in user; never HTML, never a lead's fields.

    What the user may see is decided again when the client fetches the card, so a note can at
    worst make a client ask about a lead it then gets a 404 for.
    """

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            reason = "not signed in" if user is None or not user.is_authenticated else "deactivated"
            security_log.log_socket_refused(self.scope, reason)
            # Accept, then close with a code the page understands ("sign in again"); a refused
            # handshake would look like a network error and be retried forever.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.joined = groups_for(user)
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """The client has nothing to say; whatever it sends is ignored."""

    async def lead_event(self, message):
        await self.send_json(message)

    async def lead_removed(self, message):
        await self.send_json(message)

    async def session_changed(self, message):
        """The user's role or status changed: close, so the client reconnects with fresh groups.

        A deactivated user's reconnect is then refused; a demoted manager's lands in the team group.
        """
        await self.close(code=CLOSE_RECONNECT)


# --- the broadcaster -------------------------------------------------------------------------


def _viewer_groups(*, owner_id, deleted, sharing):
    """The groups that may see a lead in this state: policies.visible_leads_q, as groups."""
    groups = {MANAGERS_GROUP}
    if deleted:
        return groups
    if sharing in {"read", "write"} or owner_id is None:
        groups.add(TEAM_GROUP)
    else:
        groups.add(user_group(owner_id))
    return groups


def audiences(*, event, owner_id, deleted, payload, sharing):
    """(groups told the lead changed, groups told it left their view), for one event."""
    now = _viewer_groups(owner_id=owner_id, deleted=deleted, sharing=sharing)
    before = set()
    if event == "lead.deleted" or deleted:
        # It was live a moment ago: whoever saw it then must drop the card.
        before = _viewer_groups(owner_id=owner_id, deleted=False, sharing=sharing)
    elif event == "lead.reassigned":
        before = _viewer_groups(owner_id=payload.get("from_owner"), deleted=False, sharing=sharing)
    return now, before - now


def broadcast_lead_change(sender, *, event, lead_id, actor_id, payload=None, **kwargs):
    """Receiver of leads.events.lead_changed: tell exactly the people who may see the lead.

    Runs after commit; a channel layer that is down (Redis stopped) costs a warning, never the
    request that made the change.
    """
    payload = payload or {}
    if "lead_ids" in payload:
        # A bulk change (a CSV import batch, its revert): one note per batch, no card, so open
        # boards reload their columns once instead of fetching a thousand cards (import engine).
        _broadcast_batch(event=event, actor_id=actor_id, count=len(payload["lead_ids"]))
        return
    try:
        state = (
            Lead.objects.filter(pk=lead_id).values("version", "stage_id", "owner_id", "deleted_at").first()
        )
        if state is None:  # gone for good: only managers could still have it open somewhere
            state = {"version": None, "stage_id": None, "owner_id": None, "deleted_at": True}
        deleted = state["deleted_at"] is not None
        message = {
            "type": "lead.event",
            "event": event,
            "lead_id": lead_id,
            "version": state["version"],
            "stage_id": state["stage_id"],
            "owner_id": state["owner_id"],
            "actor_id": actor_id,
            "deleted": deleted,
        }
        now, removed = audiences(
            event=event,
            owner_id=state["owner_id"],
            deleted=deleted,
            payload=payload,
            sharing=settings.LEAD_SHARING,
        )
        layer = get_channel_layer()
        if layer is None:
            return
        send = async_to_sync(layer.group_send)
        for group in sorted(removed):
            send(group, {**message, "type": "lead.removed", "from_owner": payload.get("from_owner")})
        for group in sorted(now):
            send(group, message)
    except Exception:
        logger.warning("Live board: could not announce %s for lead %s", event, lead_id, exc_info=True)


def _broadcast_batch(*, event, actor_id, count):
    """Tell every board "many leads changed, resync": no lead ids, so it reveals nothing per lead."""
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "lead.event", "event": event, "batch": True, "count": count, "actor_id": actor_id}
        send = async_to_sync(layer.group_send)
        for group in (MANAGERS_GROUP, TEAM_GROUP):
            send(group, message)
    except Exception:
        logger.warning("Live board: could not announce %s (%s leads)", event, count, exc_info=True)


def reconnect_user_sockets(sender, instance, created=False, update_fields=None, **kwargs):
    """post_save of User: any change but a login time makes that user's sockets reconnect.

    Groups are chosen at connect, so without this a deactivated or demoted user would keep
    hearing of every lead until their page reloaded.
    """
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    user_id = instance.pk

    def send():
        try:
            layer = get_channel_layer()
            if layer is not None:
                async_to_sync(layer.group_send)(user_group(user_id), {"type": "session.changed"})
        except Exception:
            logger.warning("Live board: could not reconnect the sockets of user %s", user_id, exc_info=True)

    transaction.on_commit(send)
