"""Brute-force protection glue for django-axes: who is counted, from where, and what a lockout answers.

Every login door (the login page, /api/auth/token/, the admin login) authenticates through
AxesStandaloneBackend, which refuses a locked-out e-mail or IP before the password is checked.
The forms in accounts.login_forms and the token view turn that refusal into a message saying
when to try again; `lockout_response` (AXES_LOCKOUT_CALLABLE) is the answer of last resort.
"""

import math
from datetime import timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.identity import canonical_email


def client_ip(request):
    """REMOTE_ADDR, or the address TRUSTED_PROXY_COUNT proxies up X-Forwarded-For.

    Each trusted proxy appends the address it received the request from, so the client is the
    entry that many places from the right; anything further left is whatever the client sent.
    """
    meta = getattr(request, "META", {})
    hops = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if hops > 0:
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return meta.get("REMOTE_ADDR") or None


def attempted_email(request, credentials):
    """The e-mail a login tried, canonical (accounts.identity), so every spelling that reaches an account
    counts as that account: Sales@Example.com and sales@example.com are one.

    The login page and admin send `username`, the token endpoint `email` (our USERNAME_FIELD).
    """
    value = None
    if credentials:
        value = credentials.get("username") or credentials.get("email")
    if not value and request is not None:
        data = getattr(request, "POST", None) or {}
        value = data.get("username") or data.get("email")
    if not value or not isinstance(value, str):
        return None
    return canonical_email(value) or None


def _cool_off():
    cool_off = settings.AXES_COOLOFF_TIME
    return cool_off if isinstance(cool_off, timedelta) else timedelta(minutes=15)


def time_until_unlocked(request, credentials=None):
    """How long until this request's e-mail and IP may try again (zero when neither is locked).

    A lock holds while the failures recorded within the cool-off reach the limit; each
    AccessAttempt row's attempt_time is its latest failure, so the lock lifts one cool-off after
    the newest row that still brings the count to the limit.
    """
    cool_off, limit, now = _cool_off(), settings.AXES_FAILURE_LIMIT, timezone.now()
    values = {
        "username": attempted_email(request, credentials),
        "ip_address": client_ip(request),
        "user_agent": getattr(request, "META", {}).get("HTTP_USER_AGENT", "<unknown>")[:255],
    }
    until = now
    for parameter in settings.AXES_LOCKOUT_PARAMETERS:
        names = [parameter] if isinstance(parameter, str) else list(parameter)
        if any(values[name] is None for name in names):
            continue
        rows = (
            AccessAttempt.objects.filter(attempt_time__gte=now - cool_off, **{n: values[n] for n in names})
            .order_by("-attempt_time")
            .values_list("attempt_time", "failures_since_start")
        )
        failures = 0
        for attempt_time, count in rows:
            failures += count
            if failures >= limit:
                until = max(until, attempt_time + cool_off)
                break
    return until - now


def _remaining(request, credentials):
    # Worked out once per request: the form, the token view and the response all ask.
    remaining = getattr(request, "_lockout_remaining", None)
    if remaining is None:
        remaining = time_until_unlocked(request, credentials) or _cool_off()
        request._lockout_remaining = remaining
    return remaining


def lockout_message(request, credentials=None):
    remaining = _remaining(request, credentials)
    minutes = max(1, math.ceil(remaining.total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Too many failed attempts to log in. Try again in {minutes} {unit} "
        "or ask an administrator to unlock your account."
    )


def retry_after_seconds(request, credentials=None):
    remaining = _remaining(request, credentials)
    return max(1, math.ceil(remaining.total_seconds()))


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the answer to a login refused because of a lockout.

    Pages: the login page the form already rendered with the lockout message, as 429. The API:
    our one error shape. Anything else (a login form we do not know): a plain page saying so.
    """
    from leads.api.errors import error_body

    # axes 8.3.1's middleware, under ASGI (uvicorn in production, daphne in `make run`), calls
    # this as (request, credentials), without the page the login view rendered: a locked login
    # was a 500 there. Then the plain lockout page answers, with the same message.
    if isinstance(original_response, dict):
        original_response, credentials = None, original_response
    message = lockout_message(request, credentials)
    retry_after = str(retry_after_seconds(request, credentials))
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body("locked_out", message), status=429)
    elif original_response is not None and original_response.status_code == 200:
        response = original_response
        response.status_code = 429
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = retry_after
    return response
