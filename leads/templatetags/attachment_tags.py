"""The lead page's Files panel, fed here so the lead view needs no change: one query for the list."""

from django import template

from leads import attachments, policies, selectors

register = template.Library()


@register.inclusion_tag("leads/_attachments_panel.html", takes_context=True)
def attachments_panel(context, lead):
    user = context["request"].user
    files = list(selectors.lead_attachments(lead))
    for attachment in files:
        attachment.lead = lead  # the policy reads the lead; it is loaded already
        attachment.deletable = policies.can_delete_attachment(user, attachment)
    return {
        "lead": lead,
        "attachments": files,
        "can_attach": policies.can_attach(user, lead),
        "accept": attachments.ACCEPT_ATTRIBUTE,
        "max_megabytes": attachments.max_upload_bytes() // (1024 * 1024),
        "csrf_token": context.get("csrf_token"),
    }
