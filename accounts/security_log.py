"""The `leadboard.security` log: logins, failed logins, lockouts, logouts and refused requests.

Each line says who (user id and e-mail, or anonymous; for a failed login the e-mail tried, never
the password), what (event, method, path, reason), when (the record's time, also in the line)
and from where (the client IP, as the lockout counts it). Receivers are connected in
AccountsConfig.ready(); DeniedRequestLogMiddleware logs every 401 and 403.

Whatever a client typed or sent (the e-mail tried, the path, the method, reasons quoting them)
is logged capped and with control and other invisible characters escaped, text fields quoted:
a newline in a typed e-mail must not forge a second log line.
"""

import logging

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.utils import timezone

from accounts.lockout import attempted_email, client_ip

logger = logging.getLogger("leadboard.security")

# Longer values are cut: an e-mail address is at most 254 characters, and nobody reads more.
MAX_FIELD_CHARS = 200
NOT_AN_EMAIL = "<not an e-mail>"


def printable(value):
    """Text safe to put in one log line: capped, every non-printable character escaped as in repr()."""
    text = str(value)
    if len(text) > MAX_FIELD_CHARS:
        text = text[:MAX_FIELD_CHARS] + "…"
    # isprintable() is False for control characters (\n, \r, ESC), line and paragraph separators
    # and invisible format characters (bidi overrides), all of which can fake or hide text.
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def describe_attempted(value):
    """The e-mail a login tried, as logged: people type passwords into the e-mail field, so a
    value without "@" (no e-mail address, perhaps a password) is never written down."""
    if not value:
        return "-"
    if "@" not in value:
        return NOT_AN_EMAIL
    return printable(value)


def _who(user):
    if user is None or not getattr(user, "is_authenticated", False):
        return "anonymous"
    return f"user {user.pk} <{user.email}>"


def _quoted(value):
    # Text quoted (repr), so even spaces in it cannot pass for another "name=value"; numbers as they are.
    return repr(value) if isinstance(value, str) else str(value)


def log_event(event, *, request=None, user=None, level=logging.INFO, reason="", **fields):
    """One line: event, who, method and path, reason, IP, time; the same values as `extra` fields."""
    method = printable(getattr(request, "method", "") or "")
    path = printable(getattr(request, "path", "") or "")
    ip = client_ip(request) if request is not None else None
    at = timezone.now().isoformat(timespec="seconds")
    reason = printable(reason)
    fields = {name: printable(value) if isinstance(value, str) else value for name, value in fields.items()}
    details = "".join(f" {name}={_quoted(value)}" for name, value in fields.items())
    logger.log(
        level,
        "%s: %s %s %s%s%s ip=%s at=%s",
        event,
        _who(user),
        method,
        # A decoded %20 back as it came, so a path cannot pass for " ip=…" either.
        path.replace(" ", "%20"),
        f" reason={reason!r}" if reason else "",
        details,
        ip or "-",
        at,
        extra={
            "security_event": event,
            "user_id": getattr(user, "pk", None) if user is not None else None,
            "client_ip": ip,
            "method": method,
            "path": path,
            "reason": reason,
            **fields,
        },
    )


@receiver(user_logged_in, dispatch_uid="security_log_login")
def _logged_in(sender, request, user, **kwargs):
    log_event("login", request=request, user=user)


@receiver(user_login_failed, dispatch_uid="security_log_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # `credentials` is already cleansed by Django (the password masked); only the e-mail is logged.
    tried = describe_attempted(attempted_email(request, credentials))
    # django-axes' receiver runs first (its app loads first), so a lockout refusal is flagged by now.
    locked = getattr(request, "axes_locked_out", False)
    log_event(
        "login_failed",
        request=request,
        level=logging.WARNING,
        reason="locked out" if locked else "wrong e-mail or password",
        attempted=tried,
    )


@receiver(user_locked_out, dispatch_uid="security_log_locked_out")
def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    log_event(
        "login_locked_out",
        request=request,
        level=logging.WARNING,
        reason="too many failed logins",
        attempted=describe_attempted(username),
    )


@receiver(user_logged_out, dispatch_uid="security_log_logout")
def _logged_out(sender, request=None, user=None, **kwargs):
    log_event("logout", request=request, user=user)


class DeniedRequestLogMiddleware:
    """Logs each 401 and 403 answer (pages, admin, API): someone tried what they may not."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code in (401, 403):
            log_event(
                "denied",
                request=request,
                user=getattr(request, "user", None),
                level=logging.WARNING,
                reason=_reason(response),
                status=response.status_code,
            )
        return response


def _reason(response):
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        return f"{error.get('code')}: {error.get('message')}"
    if response.status_code == 401:
        return "not authenticated"
    return "forbidden"


def log_socket_refused(scope, reason):
    """A WebSocket the live board closed for want of a signed-in, active user."""
    client = scope.get("client") or (None,)
    user = scope.get("user")
    at = timezone.now().isoformat(timespec="seconds")
    path = printable(scope.get("path", ""))
    logger.warning(
        "denied: %s WEBSOCKET %s reason=%r ip=%s at=%s",
        _who(user),
        path,
        reason,
        client[0] or "-",
        at,
        extra={
            "security_event": "denied",
            "user_id": getattr(user, "pk", None),
            "client_ip": client[0],
            "method": "WEBSOCKET",
            "path": path,
            "reason": reason,
        },
    )
