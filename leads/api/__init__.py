"""The REST API for integrators: serializers, views, pagination, errors and idempotency."""
