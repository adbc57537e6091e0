"""Schemathesis on the live OpenAPI schema: every operation as each role; no 5xx, every answer documented.

The schema is fetched from the WSGI application itself (/api/schema/), so what is tested is what
integrators download. Requests go through the WSGI app in this thread, inside this test's database
transaction, so pytest-django's ordinary `db` isolation holds.

Bounded for CI: a fixed seed, derandomized generation, no example database and no shrinking;
SCHEMATHESIS_MAX_EXAMPLES (default 10) fuzzed examples per operation and role, plus the schema's
own examples. For a longer hunt, raise it and add the coverage phase (every boundary value):

    SCHEMATHESIS_MAX_EXAMPLES=300 SCHEMATHESIS_COVERAGE=1 \
        .venv/bin/pytest leads/tests/api/test_schemathesis.py
"""

import os
import zlib
from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import User
from accounts.roles import Role
from config.wsgi import application
from leads import services
from leads.follow_ups import schedule_follow_up
from leads.models import FollowUp, ImportJob, Lead, Source, Stage
from leads.tests.factories import UserFactory

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
# The coverage phase walks every boundary of every parameter and body field: thousands of
# requests per role, so minutes rather than seconds. Off in CI, on for a long hunt.
COVERAGE = os.environ.get("SCHEMATHESIS_COVERAGE", "") not in ("", "0")
SEED = 20240611
ROLES = ("anonymous", "sales", "manager", "admin")


def our_error_shape(ctx, response, case):
    """Every 4xx with a JSON body is the one error shape: {"error": {"code", "message", "fields"}}.

    The schema documents it too, but a documented shape can be loose (an extra key, a field
    that is not a list); this is what integrators parse.
    """
    # schemathesis keeps headers with lower-case names and list values.
    if not 400 <= response.status_code < 500 or "json" not in response.headers.get("content-type", [""])[0]:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r:.300}"
    error = body["error"]
    assert {"code", "message", "fields"} <= set(error), f"error lacks code/message/fields: {error!r:.300}"
    assert (
        isinstance(error["code"], str)
        and error["code"]
        and isinstance(error["message"], str)
        and error["message"]
    )
    assert isinstance(error["fields"], dict), f"fields is not an object: {error!r:.300}"
    for name, messages in error["fields"].items():
        assert isinstance(messages, list) and all(isinstance(m, str) and m for m in messages), (
            name,
            messages,
        )
    return None


# No 5xx; every answer is one the schema documents (status code, content type, headers, body);
# every 4xx in our error shape; invalid data (negative generation mode) refused with a 4xx; and
# an operation that needs a login refuses the same request without credentials.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    our_error_shape,
    negative_data_rejection,
    ignored_auth,
]
# Rows the fuzzed /{id}/ routes may be pointed at, per collection, read when each case is sent
# (deletes and archives during the run take rows out).
LIVE_IDS = {
    "leads": lambda: Lead.objects.live(),
    "stages": lambda: Stage.objects.all(),
    "sources": lambda: Source.objects.all(),
    "users": lambda: User.objects.all(),
    "follow-ups": lambda: FollowUp.objects.all(),
    "imports": lambda: ImportJob.objects.all(),
}

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def api_schema(role, tokens_by_role, _requests_keep_the_test_connection):
    phases = ["examples", "fuzzing"] + (["coverage"] if COVERAGE else [])
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "no-shrink": True,
            },
            "phases": {name: {"enabled": name in phases} for name in ("examples", "coverage", "fuzzing")},
            # Random strings almost never name a stage, a source, a user or a fresh valid e-mail,
            # so without these only the 400 paths of creates, moves and filters would be tested.
            "dictionaries": {
                "stages": {"values": [*Stage.objects.values_list("name", flat=True), "in progress"]},
                "sources": {"values": [*Source.objects.values_list("name", flat=True), "facebook"]},
                "users": {"values": [str(pk) for pk in User.objects.values_list("pk", flat=True)]},
                "owners": {"values": ["me", "unassigned"]},
                "emails": {"values": [f"fuzz-new{i}@prospect.example" for i in range(25)]},
            },
            "parameters": {
                "body.stage": {"dictionary": "stages", "probability": 0.5},
                "body.source": {"dictionary": "sources", "probability": 0.5},
                "body.owner": {"dictionary": "users", "probability": 0.5},
                "body.email": {"dictionary": "emails", "probability": 0.5},
                "query.stage": {"dictionary": "stages", "probability": 0.3},
                "query.source": {"dictionary": "sources", "probability": 0.3},
                "query.owner": {"dictionary": "owners", "probability": 0.3},
            },
        }
    )
    return schemathesis.openapi.from_wsgi("/api/schema/", application, config=config)


@pytest.fixture
def tokens_by_role(db, settings):
    """An access token per role, for users in a world of leads, activities, stages and sources.

    Everything is written through the services, as the API itself would write it.
    """
    # Thousands of requests from one caller: throttling has tests of its own.
    settings.API_THROTTLE_RATES = {"anon": None, "user": None}
    users = {
        "sales": UserFactory(role=Role.SALES, email="fuzz-sales@test.example"),
        "other": UserFactory(role=Role.SALES, email="fuzz-other@test.example"),
        "manager": UserFactory(role=Role.MANAGER, email="fuzz-manager@test.example"),
        "admin": UserFactory(role=Role.ADMIN, email="fuzz-admin@test.example"),
    }
    owners = [users["sales"], users["sales"], users["other"], None, users["manager"]]
    leads = [
        services.create_lead(
            actor=users["manager"],
            name=f"Fuzz Lead{i}",
            email=f"fuzz{i}@prospect.example",
            phone=f"+1 212 555 01{i:02d}" if i % 2 else "",
            company=f"Fuzz Co {i}",
            owner=owners[i % len(owners)],
        )
        for i in range(12)
    ]
    services.move_lead(
        lead=leads[2], stage=Stage.objects.get(name="Lost"), actor=users["manager"], lost_reason="Budget"
    )
    services.log_activity(lead=leads[0], actor=users["sales"], kind="note", body="Asked for a demo")
    services.log_activity(
        lead=leads[0], actor=users["sales"], kind="call", outcome="connected", duration_minutes=5
    )
    for i, lead in enumerate(leads[:4]):
        schedule_follow_up(
            lead=lead, actor=users["manager"], kind="call", title=f"Fuzz follow-up {i}",
            due_at=timezone.now() + timedelta(hours=i * 12 - 18), assigned_to=lead.owner or users["manager"],
        )  # fmt: skip
    services.save_stage(actor=users["manager"], name="Unused Stage", position=950)
    services.save_source(actor=users["manager"], name="Unused Source")
    return {role: str(RefreshToken.for_user(user).access_token) for role, user in users.items()}


@pytest.fixture
def _requests_keep_the_test_connection():
    # Django's test client does this too: a bare WSGI call closes the connection at the end of
    # each request (close_old_connections), which would end the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _aim_at_real_rows(case):
    """Send about half the cases for /{id}/ routes to a row that exists, so more than 404 is tested.

    Which half, and which row, follow from the generated id, so a run stays reproducible.
    """
    if "id" not in (case.path_parameters or {}):
        return
    collection = case.path.strip("/").split("/")[1]  # /api/<collection>/{id}/...
    ids = list(LIVE_IDS[collection]().order_by("pk").values_list("pk", flat=True))
    pick = zlib.crc32(repr(case.path_parameters["id"]).encode())
    if ids and pick % 2 == 0:
        case.path_parameters["id"] = ids[pick // 2 % len(ids)]


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
@hypothesis_settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_answers_as_documented(case, role, tokens_by_role):
    headers = {"Authorization": f"Bearer {tokens_by_role[role]}"} if role != "anonymous" else {}
    _aim_at_real_rows(case)
    # A savepoint per case: on PostgreSQL one failed query aborts the whole transaction, and the
    # failures of every later case would hide the one that matters.
    with transaction.atomic():
        case.call_and_validate(headers=headers, checks=CHECKS)
