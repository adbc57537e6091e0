"""One error shape for every API failure: {"error": {"code", "message", "fields"}}."""

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.db_outage import RETRY_AFTER_SECONDS, is_database_outage, unavailable_body, unavailable_response
from leads.exceptions import DuplicateLead, StaleLead

logger = logging.getLogger("leadboard.api")
SERVER_ERROR_MESSAGE = "Something went wrong on our side; nothing was half-saved. Try again."

MESSAGES = {
    "not_authenticated": "Log in first: send a JWT as 'Authorization: Bearer <token>' or use a session.",
    "invalid": "Some fields are not valid; see fields.",
    "parse_error": "The request body is not valid JSON.",
}


def error_body(code, message, fields=None, **extra):
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


def _fields(detail):
    """DRF's nested error detail as {field: [messages]}; nested objects use dotted names."""
    if isinstance(detail, dict):
        flat = {}
        for name, value in detail.items():
            name = "non_field_errors" if name == "__all__" else name
            inner = _fields(value)
            if isinstance(inner, dict):
                flat.update({f"{name}.{k}": v for k, v in inner.items()})
            else:
                flat[name] = inner
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [str(item) for item in detail]
        return {str(i): _fields(item) for i, item in enumerate(detail) if item}
    return [str(detail)]


def _domain_error(exc, context):
    """Errors the services raise, turned into responses (None when `exc` is not one)."""
    if isinstance(exc, DuplicateLead):
        message = exc.messages[0]
        body = error_body("duplicate", message, {exc.field: [message]}, existing_id=exc.existing.pk)
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, StaleLead):
        from leads.api.serializers import LeadSerializer

        current = LeadSerializer(exc.current, context=context).data
        return Response(
            error_body("stale_version", str(exc), current=current), status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        fields = {("non_field_errors" if k == "__all__" else k): v for k, v in fields.items()}
        return Response(
            error_body("invalid", MESSAGES["invalid"], fields), status=status.HTTP_400_BAD_REQUEST
        )
    return None


def api_exception_handler(exc, context):
    if is_database_outage(exc):
        # The database went away mid-request: its transaction is gone with the connection.
        logger.error("Database unavailable", exc_info=exc)
        return Response(
            unavailable_body(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
        )
    response = _domain_error(exc, context)
    if response is not None:
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found, or you cannot see it.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unexpected API error", exc_info=exc)
        return Response(
            error_body("server_error", SERVER_ERROR_MESSAGE),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    code = _code(exc)
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        if isinstance(fields, list):
            fields = {"non_field_errors": fields}
        message = MESSAGES["invalid"]
        if len(fields) == 1:
            ((name, messages),) = fields.items()
            message = f"{name}: {' '.join(messages)}" if name != "non_field_errors" else " ".join(messages)
        response.data = error_body("invalid", message, fields)
    else:
        response.data = error_body(code, MESSAGES.get(code) or _message(exc.detail))
    return response


def _message(detail):
    # simplejwt nests its own {"detail", "code", "messages"} inside the exception's detail.
    if isinstance(detail, dict):
        return str(detail.get("detail") or next(iter(detail.values()), ""))
    return str(detail)


def _code(exc):
    codes = exc.get_codes() if hasattr(exc, "get_codes") else getattr(exc, "default_code", "error")
    if isinstance(codes, str):
        return codes
    return getattr(exc, "default_code", "error")


def _is_api(request):
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """404 when no route matched: JSON under /api/, the HTML page elsewhere."""
    if _is_api(request):
        return JsonResponse(error_body("not_found", "There is no such API endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    # A middleware (sessions, auth) that hit a dead database fails before any view: still a 503.
    if is_database_outage(sys.exc_info()[1]):
        return unavailable_response(request)
    if _is_api(request):
        return JsonResponse(error_body("server_error", SERVER_ERROR_MESSAGE), status=500)
    return defaults.server_error(request)
