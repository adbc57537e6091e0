"""Idempotency-Key on POST: the same key from the same user with the same body replays the first response.

The whole request runs inside one transaction that holds the key's row, so a concurrent
retry with the same key waits on the row's unique index, then finds the stored response
and replays it instead of writing again.
"""

import hashlib
import json

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from leads.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers worth replaying (Location of a created resource, for one).
KEPT_HEADERS = ("Location",)


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used with a different request body or endpoint."


def _fingerprint(request):
    data = request.data
    if hasattr(data, "lists"):  # form or multipart: a QueryDict, maybe with files
        data = {key: values for key, values in data.lists()}
        data |= {f"file:{k}": [f.name, f.size] for k, files in request.FILES.lists() for f in files}
    canonical = json.dumps([request.method, request.path, data], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(record):
    headers = {**record.response_headers, REPLAYED_HEADER: "true"}
    return Response(json.loads(record.response_body), status=record.response_status, headers=headers)


class IdempotentPostMixin:
    """For API views: POSTs carrying an Idempotency-Key run at most once per key and body."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        key = request.headers.get(HEADER)
        if request.method == "POST" and key is not None and request.user.is_authenticated:
            # dispatch() looks the handler up after initial(), so this wraps this request only.
            self.post = self._once_per_key(self.post, key.strip())

    def _once_per_key(self, handler, key):
        if not key or len(key) > 255 or "\x00" in key:  # PostgreSQL refuses NUL in text
            raise ValidationError(
                {HEADER: ["Send an Idempotency-Key of 1 to 255 characters, none of them NUL."]}
            )

        def run(request, *args, **kwargs):
            fingerprint = _fingerprint(request)
            with transaction.atomic():
                mine = IdempotencyKey.objects.filter(user=request.user, key=key)
                mine.filter(created_at__lt=timezone.now() - settings.IDEMPOTENCY_KEY_TTL).delete()
                record, created = mine.select_for_update().get_or_create(
                    user=request.user, key=key, defaults={"request_fingerprint": fingerprint}
                )
                if not created:
                    if record.request_fingerprint != fingerprint:
                        raise IdempotencyKeyReused()
                    return _replay(record)
                response = handler(request, *args, **kwargs)
                record.response_status = response.status_code
                record.response_body = json.dumps(response.data, cls=JSONEncoder)
                record.response_headers = {h: response[h] for h in KEPT_HEADERS if response.has_header(h)}
                record.save(update_fields=["response_status", "response_body", "response_headers"])
            return response

        return run
