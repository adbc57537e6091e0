"""The response shapes the API promises, and helpers for API tests: clients per user, many leads at once."""

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from leads.models import Lead, Source, Stage

PAGE_KEYS = {"count", "totalPages", "page", "next", "previous"}
LEAD_PAGE_KEYS = {"leads", *PAGE_KEYS}
ACTIVITY_PAGE_KEYS = {"activities", *PAGE_KEYS}
LEAD_KEYS = {
    "id",
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "title",
    "source",
    "stage",
    "owner",
    "stage_changed_at",
    "lost_reason",
    "value",
    "priority",
    "notes",
    "created_by",
    "created_at",
    "updated_at",
    "version",
}
SOURCE_REF_KEYS = {"id", "name"}
STAGE_REF_KEYS = {"id", "name", "kind"}
USER_REF_KEYS = {"id", "name", "email"}
ACTIVITY_KEYS = {"id", "kind", "body", "data", "occurred_at", "actor"}
STAGE_KEYS = {"id", "name", "position", "kind", "archived"}
SOURCE_KEYS = {"id", "name", "archived"}
USER_KEYS = {"id", "name", "email", "role", "active"}
ERROR_KEYS = {"code", "message", "fields"}


def client_for(user):
    """An APIClient acting as `user` (anonymous for None), as after a JWT login."""
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def assert_error(response, status, code=None, fields=None, extra=()):
    """The one error shape: {"error": {"code", "message", "fields"}} (plus `extra` keys), and nothing else.

    `fields`, when given, is the exact set of field names the error must name.
    Returns the inner error object.
    """
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ERROR_KEYS | set(extra)
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    for name, messages in error["fields"].items():
        assert isinstance(name, str)
        assert messages and all(isinstance(m, str) and m for m in messages), (name, messages)
    if code is not None:
        assert error["code"] == code, error
    if fields is not None:
        assert set(error["fields"]) == set(fields), error
    return error


def assert_lead_shape(lead):
    assert set(lead) == LEAD_KEYS
    assert set(lead["source"]) == SOURCE_REF_KEYS
    assert set(lead["stage"]) == STAGE_REF_KEYS
    assert lead["owner"] is None or set(lead["owner"]) == USER_REF_KEYS


def bulk_leads(count, *, owners, sources=None, stages=None, prefix="bulk", created_at=None):
    """`count` live leads in one INSERT, owners, sources and stages taken in turn.

    Leads are created one second apart, newest last, so the default order is predictable.
    """
    sources = sources or list(Source.objects.all())
    stages = stages or list(Stage.objects.all())
    start = created_at or timezone.now() - timedelta(days=1)
    leads = []
    for i in range(count):
        # Sources turn every lead, stages every len(sources) leads: every combination occurs.
        stage = stages[(i // len(sources)) % len(stages)]
        leads.append(
            Lead(
                first_name=f"{prefix.title()}{i}",
                last_name="Person",
                email=f"{prefix}{i}@bulk.example",
                company=f"{prefix.title()} Co {i % 7}",
                source=sources[i % len(sources)],
                stage=stage,
                lost_reason="Went elsewhere" if stage.is_lost else "",
                owner=owners[i % len(owners)],
                value=i * 10,
                created_at=start + timedelta(seconds=i),
                stage_changed_at=start + timedelta(seconds=i),
            )
        )
    return Lead.objects.bulk_create(leads)
