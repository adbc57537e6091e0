"""Who may do what to a lead. Services and selectors ask here; views never re-implement a rule.

Managers and admins see and edit every lead. A salesperson sees the leads they own, the
unassigned pool (so they can claim from it), and, depending on settings.LEAD_SHARING,
everyone else's leads: "private" none, "read" read-only, "write" editable.
"""

from django.conf import settings
from django.db.models import Q


def _sharing():
    return settings.LEAD_SHARING


def _is_active_user(user):
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_manager(user):
    return _is_active_user(user) and user.is_manager


def visible_leads_q(user):
    """The rows of Lead that `user` may see, as a filter; the list twin of can_view()."""
    if not _is_active_user(user):
        return Q(pk__in=[])
    if is_manager(user):
        return Q()
    # As in can_view(): soft-deleted leads are for managers only, whatever the sharing.
    live = Q(deleted_at__isnull=True)
    if _sharing() in {"read", "write"}:
        return live
    return live & (Q(owner=user) | Q(owner__isnull=True))


def can_view(user, lead):
    if not _is_active_user(user) or lead.is_deleted and not is_manager(user):
        return False
    if is_manager(user) or _sharing() in {"read", "write"}:
        return True
    return lead.owner_id in (None, user.pk)


def can_edit(user, lead):
    """Edit fields, move between stages, log notes, calls and meetings."""
    if not can_view(user, lead) or lead.is_deleted:
        return False
    if is_manager(user) or lead.owner_id == user.pk:
        return True
    return _sharing() == "write"


def can_reassign(user, lead):
    return is_manager(user) and not lead.is_deleted


def can_claim(user, lead):
    """Anyone who can see an unassigned lead may take it."""
    return lead.owner_id is None and not lead.is_deleted and can_view(user, lead)


def can_delete(user, lead):
    return is_manager(user)


def can_restore(user, lead):
    return is_manager(user)


def can_create(user):
    """Signed-in staff create leads; the public form and system jobs act with actor=None."""
    return user is None or _is_active_user(user)


def can_assign_on_create(user, owner):
    """Sales create leads for themselves (or the pool); managers for anyone."""
    if user is None or is_manager(user):
        return True
    return owner is None or owner.pk == user.pk
