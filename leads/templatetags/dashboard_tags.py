"""Dashboard figures as people read them: durations in words, percentages, money like the board's cards."""

from datetime import timedelta

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.template.defaultfilters import floatformat

register = template.Library()

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


@register.filter
def duration(value):
    """timedelta (or seconds) -> "2 days 3 hours": the two largest units; "—" when unknown."""
    if value is None or value == "":
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return "under a minute"
    words = []
    for name, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            words.append(f"{count} {name}{'' if count == 1 else 's'}")
        elif words:
            break  # "2 days 5 minutes" reads as a typo; stop at the first gap
        if len(words) == 2:
            break
    return " ".join(words)


@register.filter
def percent(value):
    """0.4286 -> "42.9%" (a ratio, one decimal); "—" when there is nothing to divide."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.1f}%"


@register.filter
def money(value):
    """As the board's cards show value: "$12,500", whole dollars."""
    return f"${intcomma(floatformat(value or 0, 0))}"
