"""Anti-abuse checks shared by the public capture form and endpoint: body size, per-IP rate, honeypot."""

import math
import time

from django.conf import settings
from django.core.cache import cache

from leads.attachments import max_upload_bytes

# The hidden field people never see and bots fill in; a filled one is answered like success.
HONEYPOT_FIELD = "website"
# Room for the text fields and multipart framing on top of the largest allowed file.
BODY_ALLOWANCE_BYTES = 1024 * 1024
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def client_ip(request):
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client wants it to be unless a trusted
    # proxy sets it, and a limit keyed on a header the abuser writes limits nobody.
    return request.META.get("REMOTE_ADDR") or "unknown"


def max_body_bytes():
    return max_upload_bytes() + BODY_ALLOWANCE_BYTES


def body_too_large(request):
    """True when the declared body is over the limit; decided from the header, before reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > max_body_bytes()


def too_large_message():
    limit_mb = max_upload_bytes() / (1024 * 1024)
    return f"That submission is too large. Attach a file of at most {limit_mb:g} MB and try again."


def _parsed_rate():
    """settings.PUBLIC_FORM_RATE as (requests, seconds); None when no limit is set."""
    rate = settings.PUBLIC_FORM_RATE
    if not rate:
        return None
    count, period = rate.split("/")
    return int(count), PERIODS[period.strip()[0].lower()]


def take_submission_slot(request):
    """Count one submission from this IP. Returns None if allowed, else the seconds to wait.

    A fixed window per IP in Django's cache: add() then incr() are atomic on the cache backends
    we use (local memory, Redis), so concurrent submissions cannot slip past the count.
    """
    parsed = _parsed_rate()
    if parsed is None:
        return None
    allowed, seconds = parsed
    now = time.time()
    window = int(now // seconds)
    key = f"capture-rate:{client_ip(request)}:{seconds}:{window}"
    cache.add(key, 0, timeout=seconds + 1)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, timeout=seconds + 1)
        used = 1
    if used <= allowed:
        return None
    return max(1, math.ceil((window + 1) * seconds - now))


def wait_text(seconds):
    minutes = math.ceil(seconds / 60)
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
