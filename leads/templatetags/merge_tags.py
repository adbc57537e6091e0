"""The lead page's "Possible duplicates" panel: look-alike leads and the merges into this one."""

from django import template
from django.utils import timezone

from leads import merging, policies

register = template.Library()


@register.inclusion_tag("leads/_duplicates_panel.html", takes_context=True)
def duplicates_panel(context, lead):
    """Two queries, whatever the number of duplicates or merges."""
    user = context["request"].user
    now = timezone.now()
    merges = list(merging.merges_into(lead))
    for merge in merges:
        merge.can_undo = merging.can_still_undo(merge, now)
        merge.undo_deadline = merging.undo_deadline(merge)
    return {
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
        "lead": lead,
        "duplicates": merging.possible_duplicates(lead, user=user),
        "merges": merges,
        "can_merge": policies.can_merge(user),
    }
