"""Domain errors the services raise; every door turns them into a message a person can act on."""

from django.core.exceptions import ValidationError
from django.utils import timezone


class DuplicateLead(ValidationError):
    """A live lead already has this e-mail or phone; `existing` is that lead.

    `visible` says whether the person acting may see it: if not, the message names no one.
    """

    def __init__(self, *, field, existing, visible=True):
        self.field = field
        self.existing = existing
        self.visible = visible
        label = "e-mail" if field == "email" else "phone number"
        who = f"{existing.name} (lead #{existing.pk})" if visible else "A lead you cannot see"
        hint = "" if visible else " Ask a manager to reassign or merge it."
        super().__init__({field: [f"{who} already has this {label}.{hint}"]})


class StaleLead(Exception):
    """The change was made against an old version; `current` is the lead as it is now."""

    def __init__(self, *, current, changed_by, changed_at):
        self.current = current
        self.changed_by = changed_by
        self.changed_at = changed_at
        who = str(changed_by) if changed_by else "someone else"
        when = timezone.localtime(changed_at).strftime("%Y-%m-%d %H:%M %Z") if changed_at else "just now"
        super().__init__(
            f"This lead was changed by {who} at {when}. Here it is as it is now; "
            "check it and make your change again."
        )
