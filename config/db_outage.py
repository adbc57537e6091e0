"""When the database is unreachable: a 503 page (or the API's JSON error) instead of a 500."""

import logging

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger("leadboard.db")

# Seconds a client should wait before trying again: long enough for a failover or a restart.
RETRY_AFTER_SECONDS = 30
UNAVAILABLE_CODE = "service_unavailable"
# Each change is one transaction, but a request may make several (an admin bulk action saves
# lead by lead), so the message promises what holds: no change is ever half-saved.
UNAVAILABLE_MESSAGE = (
    "The database is unreachable for a moment. Each change is saved whole or not at all: "
    "check what you sent and try again in a few seconds."
)


# PostgreSQL error codes that mean the connection is gone: class 08 (connection exception) and
# the server shutting down or not yet accepting connections (57P01-57P03).
LOST_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_database_outage(exc):
    """Whether `exc` means the database connection is gone or was refused.

    OperationalError also covers deadlocks (40P01), lock and statement timeouts (55P03, 57014) and
    SQLite's "database is locked": those leave a working connection and are bugs or contention to
    see as a 500 (and in the error log under their own name), not an outage to wait out.
    """
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    # Django wraps the driver's error; psycopg's carries the server's SQLSTATE when there is one.
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(LOST_CONNECTION_SQLSTATES)
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.connection is None or connection.vendor == "postgresql":
        # Refused before it was made, or psycopg's own "connection failed / server closed the
        # connection unexpectedly", which has no SQLSTATE because no server sent one.
        return True
    try:
        return not connection.is_usable()
    except Exception:
        return True


def unavailable_body():
    # Imported here: leads.api.errors imports this module for the API's exception handler.
    from leads.api.errors import error_body

    return error_body(UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE)


def unavailable_response(request):
    """503 with Retry-After: JSON under /api/, the plain page elsewhere.

    The page is rendered without a request context: context processors would query the
    database that just went away.
    """
    if request.path.startswith("/api/"):
        response = JsonResponse(unavailable_body(), status=503)
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # Never cache an outage.
    response["Cache-Control"] = "no-store"
    return response


class DatabaseOutageMiddleware:
    """Answer 503 when a view fails because the database connection broke or was refused.

    The transaction the view was in is gone with the connection, so nothing half-written
    remains; Django drops the broken connection at the end of the request (errors_occurred +
    CONN_HEALTH_CHECKS), so the next request reconnects by itself once the database is back.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_database_outage(exception):
            return None
        logger.error("Database unavailable during %s %s", request.method, request.path, exc_info=exception)
        return unavailable_response(request)
