"""Who may do what to a lead. Services and selectors ask here; views never re-implement a rule.

Managers and admins see and edit every lead. A salesperson sees the leads they own, the
unassigned pool (so they can claim from it), and, depending on settings.LEAD_SHARING,
everyone else's leads: "private" none, "read" read-only, "write" editable.
"""

from django.conf import settings
from django.db.models import Q

from accounts.roles import Role


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


# --- attachments -----------------------------------------------------------------------------


def can_attach(user, lead):
    """The public form and system jobs (user None) may attach to a live lead; people as can_edit()."""
    if user is None:
        return not lead.is_deleted
    return can_edit(user, lead)


def can_delete_attachment(user, attachment):
    """Managers remove any file; the uploader or the lead's owner theirs, while they may edit the lead."""
    lead = attachment.lead
    if is_manager(user):
        return not lead.is_deleted
    if not _is_active_user(user) or user.pk not in (attachment.uploaded_by_id, lead.owner_id):
        return False
    return can_edit(user, lead)


# --- merging duplicates ----------------------------------------------------------------------


def can_merge(user):
    """Merging two leads (and undoing it) rewrites both: managers and admins only."""
    return is_manager(user)


# --- users (invitations, deactivation) -----------------------------------------------------


def can_manage_users(user):
    """Managers and admins invite, deactivate and reactivate users and hand their leads on."""
    return is_manager(user)


def grantable_roles(user):
    """The roles `user` may give someone: only admins make admins (a manager would outrank themselves)."""
    if not can_manage_users(user):
        return []
    return [role for role in Role if role != Role.ADMIN or user.role == Role.ADMIN]


def can_manage_user(user, target):
    """Resend an invitation to, deactivate or reactivate `target`: managers cannot touch admins."""
    return can_manage_users(user) and (target.role != Role.ADMIN or user.role == Role.ADMIN)


# --- follow-ups ------------------------------------------------------------------------------
#
# Who schedules: anyone who can edit the lead, for themselves; managers for anyone active who
# can see the lead. Who completes, cancels or reschedules: the assignee (it is their task,
# even on a lead they may only read), managers, and anyone who can edit the lead (its owner,
# everyone under "write" sharing), so a lead's follow-ups never outlive the person working it.


def can_schedule_for(user, lead, assignee):
    if not can_edit(user, lead):
        return False
    return is_manager(user) or (assignee is not None and assignee.pk == user.pk)


def can_manage_follow_up(user, follow_up):
    lead = follow_up.lead
    if not can_view(user, lead) or lead.is_deleted:
        return False
    return follow_up.assigned_to_id == user.pk or is_manager(user) or can_edit(user, lead)


# --- notifications ---------------------------------------------------------------------------


def can_read_notifications(user):
    return _is_active_user(user)


def can_read_notification(user, notification):
    """A notice is for its own user only; anyone else is told it does not exist."""
    return _is_active_user(user) and notification.user_id == user.pk


# --- outgoing e-mail -------------------------------------------------------------------------


def can_view_outgoing_email(user):
    """The outbox (recipients, subjects, errors) is for managers and admins, who run the team."""
    return is_manager(user)


def can_retry_outgoing_email(user):
    return is_manager(user)


# --- CSV imports (import engine) --------------------------------------------------------------


def can_import(user):
    """Any active user may import; a salesperson's imported leads always become their own."""
    return _is_active_user(user)


def can_view_import(user, job):
    """Managers see every import; others only their own (its file holds other people's data)."""
    if not _is_active_user(user):
        return False
    return is_manager(user) or job.created_by_id == user.pk


def can_cancel_import(user, job):
    return can_view_import(user, job)


def can_revert_import(user, job):
    """Reverting deletes and rewrites leads in bulk: managers only."""
    return is_manager(user)
