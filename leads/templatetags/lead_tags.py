"""Template helpers for the board and lead page: column paging links, readable field names."""

from django import template
from django.utils.timesince import timesince

register = template.Library()


@register.simple_tag(takes_context=True)
def column_page_url(context, column, page):
    params = context["request"].GET.copy()
    key = f"page_{column.stage.pk}"
    if page <= 1:
        params.pop(key, None)
    else:
        params[key] = page
    encoded = params.urlencode()
    return f"?{encoded}#col-{column.stage.pk}" if encoded else f"?#col-{column.stage.pk}"


@register.filter
def spaced(name):
    """first_name -> "First name", for field names recorded on the timeline."""
    return str(name).replace("_", " ").capitalize()


@register.filter
def age(value):
    """How long ago, in its largest unit only ("3 days"), so it fits on a card."""
    return timesince(value, depth=1)
