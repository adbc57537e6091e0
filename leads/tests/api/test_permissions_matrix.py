"""Who may call which API endpoint: every route and method × caller × LEAD_SHARING, as one table.

Each cell is its own test: it sends one real request (JWT Bearer, as integrators do) and checks
the status, that a refused request changed nothing, and that an allowed write did what it says.
A route added under /api/ without a row here fails test_every_api_endpoint_is_in_the_matrix.
"""

import csv  # export: reading the CSV export
import io  # export
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.roles import Role
from leads import imports, services  # imports: the CSV import rows
from leads.attachments import add_attachment
from leads.follow_ups import schedule_follow_up
from leads.models import (  # ImportJob, ImportRecord: CSV imports
    Activity,
    Attachment,
    FollowUp,
    IdempotencyKey,
    ImportJob,
    ImportRecord,
    Lead,
    Source,
    Stage,
)
from leads.tests.api.contract import assert_error
from leads.tests.factories import DEFAULT_PASSWORD, UserFactory

ROLES = ("anonymous", "owner", "other_sales", "manager", "admin")
SHARINGS = ("private", "read", "write")


def S(private, read, write):
    """A cell that depends on settings.LEAD_SHARING."""
    return {"private": private, "read": read, "write": write}


# Rows: (method, route name in the "api" namespace). Columns: the caller.
#   owner        a salesperson who owns the lead under test (for routes without a lead: any salesperson)
#   other_sales  a salesperson who does not own it
# S(private, read, write) spells out a cell that changes with LEAD_SHARING. A lead the caller may
# not see is a 404, never a 403; a lead they see but may not change is a 403.
# fmt: off
MATRIX = {
    #                               anonymous  owner   other_sales        manager  admin
    ("GET",    "lead-list"):       (401,       200,    200,               200,     200),
    ("GET",    "lead-export"):     (401,       200,    200,               200,     200),  # export: CSV
    ("POST",   "lead-list"):       (401,       201,    201,               201,     201),
    ("GET",    "lead-detail"):     (401,       200,    S(404, 200, 200),  200,     200),
    ("PUT",    "lead-detail"):     (401,       200,    S(404, 403, 200),  200,     200),
    ("PATCH",  "lead-detail"):     (401,       200,    S(404, 403, 200),  200,     200),
    ("DELETE", "lead-detail"):     (401,       403,    S(404, 403, 403),  204,     204),
    ("PATCH",  "lead-stage"):      (401,       200,    S(404, 403, 200),  200,     200),
    ("PATCH",  "lead-owner"):      (401,       403,    S(404, 403, 403),  200,     200),
    # Claiming takes an unassigned lead (see POOL below); this lead has an owner, so a caller
    # who can see it is told so (400), and one who cannot gets the usual 404.
    ("POST",   "lead-claim"):      (401,       400,    S(404, 400, 400),  400,     400),
    ("GET",    "lead-activities"): (401,       200,    S(404, 200, 200),  200,     200),
    ("POST",   "lead-activities"): (401,       201,    S(404, 403, 201),  201,     201),
    ("GET",    "stage-list"):      (401,       200,    200,               200,     200),
    ("POST",   "stage-list"):      (401,       403,    403,               201,     201),
    ("GET",    "stage-detail"):    (401,       200,    200,               200,     200),
    ("PUT",    "stage-detail"):    (401,       403,    403,               200,     200),
    ("PATCH",  "stage-detail"):    (401,       403,    403,               200,     200),
    ("DELETE", "stage-detail"):    (401,       403,    403,               204,     204),
    ("GET",    "source-list"):     (401,       200,    200,               200,     200),
    ("POST",   "source-list"):     (401,       403,    403,               201,     201),
    ("GET",    "source-detail"):   (401,       200,    200,               200,     200),
    ("PUT",    "source-detail"):   (401,       403,    403,               200,     200),
    ("PATCH",  "source-detail"):   (401,       403,    403,               200,     200),
    ("DELETE", "source-detail"):   (401,       403,    403,               204,     204),
    ("GET",    "user-list"):       (401,       200,    200,               200,     200),
    ("GET",    "user-detail"):     (401,       200,    200,               200,     200),
    ("GET",    "me"):              (401,       200,    200,               200,     200),
    # Logging in, refreshing and logging out need no session: the credentials or the refresh
    # token in the body are the authority (the anonymous caller sends the owner's). Logout
    # ignores an Authorization header altogether, so an expired access token cannot block it.
    ("POST",   "token"):           (200,       200,    200,               200,     200),
    ("POST",   "token_refresh"):   (200,       200,    200,               200,     200),
    ("POST",   "logout"):          (204,       204,    204,               204,     204),
    # "Log out everywhere" acts on the caller's own sessions and tokens: any signed-in user.
    ("POST",   "logout_all"):      (401,       204,    204,               204,     204),
    # The schema and Swagger UI are public, so integrators can read them before they have an account.
    ("GET",    "schema"):          (200,       200,    200,               200,     200),
    ("GET",    "docs"):            (200,       200,    200,               200,     200),
    # DRF's router adds a browsable index of the API at /api/. It is a real endpoint (so it is
    # here), but drf-spectacular leaves it out of the OpenAPI schema.
    ("GET",    "api-root"):        (401,       200,    200,               200,     200),
    # The public capture endpoint answers everyone alike (202), so it reveals nothing.
    # The public capture endpoint ignores credentials: everyone's submission is received alike.
    ("POST",   "public_lead_create"): (202,    202,    202,               202,     202),
    # The file under test was uploaded by the owner: besides managers, the uploader or the lead's
    # owner deletes it, so another salesperson is refused even when "write" lets them edit the lead.
    ("GET",    "lead-attachments"):         (401, 200, S(404, 200, 200),  200, 200),
    ("POST",   "lead-attachments"):         (401, 201, S(404, 403, 201),  201, 201),
    ("GET",    "lead-attachment"):          (401, 200, S(404, 200, 200),  200, 200),
    ("DELETE", "lead-attachment"):          (401, 204, S(404, 403, 403),  204, 204),
    ("GET",    "lead-attachment-download"): (401, 200, S(404, 200, 200),  200, 200),
    # The follow-up under test is the owner's, on their lead. Completing, cancelling and changing
    # it is for its assignee, managers and whoever can edit the lead ("write" lets other_sales).
    # Scheduling on a lead the caller cannot see names the field (400), as the URL is not the lead's.
    ("GET",    "follow-up-list"):     (401, 200, 200,               200, 200),
    ("POST",   "follow-up-list"):     (401, 201, S(400, 403, 201),  201, 201),
    ("GET",    "follow-up-detail"):   (401, 200, S(404, 200, 200),  200, 200),
    ("PUT",    "follow-up-detail"):   (401, 200, S(404, 403, 200),  200, 200),
    ("PATCH",  "follow-up-detail"):   (401, 200, S(404, 403, 200),  200, 200),
    ("DELETE", "follow-up-detail"):   (401, 204, S(404, 403, 204),  204, 204),
    ("POST",   "follow-up-complete"): (401, 200, S(404, 403, 200),  200, 200),
    # CSV imports (whatever LEAD_SHARING says). The import under test was uploaded by the owner:
    # another salesperson's import is a 404; reverting is for managers, even on your own import.
    ("GET",    "import-list"):    (401, 200, 200, 200, 200),
    ("POST",   "import-list"):    (401, 201, 201, 201, 201),
    ("GET",    "import-detail"):  (401, 200, 404, 200, 200),
    ("PATCH",  "import-detail"):  (401, 200, 404, 200, 200),
    ("POST",   "import-start"):   (401, 202, 404, 202, 202),
    ("POST",   "import-cancel"):  (401, 200, 404, 200, 200),
    ("POST",   "import-revert"):  (401, 403, 404, 200, 200),
    ("GET",    "import-errors"):  (401, 200, 404, 200, 200),
    # Dashboard and reports: everyone signed in; salespeople get their own numbers (test_reports_api).
    ("GET",    "dashboard-stats"):           (401, 200, 200, 200, 200),
    ("GET",    "dashboard-leads-by-stage"):  (401, 200, 200, 200, 200),
    ("GET",    "dashboard-leads-by-source"): (401, 200, 200, 200, 200),
    ("GET",    "dashboard-top-sales"):       (401, 200, 200, 200, 200),
    ("GET",    "reports-daily-summary"):     (401, 200, 200, 200, 200),
    ("GET",    "reports-agent-performance"): (401, 200, 200, 200, 200),
}
# fmt: on

# HEAD answers like GET and OPTIONS is DRF's metadata answer; both run the same authentication
# and permission checks as the view's other methods, so the table lists only the methods the
# views implement themselves.
IMPLICIT_METHODS = {"head", "options", "trace"}


def expected_status(method, name, role, sharing):
    cell = MATRIX[(method, name)][ROLES.index(role)]
    return cell[sharing] if isinstance(cell, dict) else cell


# --- the table covers the URLconf -------------------------------------------------------------


def _view_methods(callback):
    actions = getattr(callback, "actions", None)  # a viewset route: {"get": "list", ...}
    if actions:
        return {method.upper() for method in actions if method not in IMPLICIT_METHODS}
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return {"<a function view: list its methods in MATRIX by hand>"}
    return {
        method.upper()
        for method in view_class.http_method_names
        if method not in IMPLICIT_METHODS and hasattr(view_class, method)
    }


def api_routes():
    """Every pattern under /api/ as (route, name, methods, is_format_suffix), walking includes."""
    found = []

    def walk(resolver, prefix):
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry, route)
            elif isinstance(entry, URLPattern) and route.startswith("api/"):
                is_suffix = "format" in entry.pattern.regex.groupindex
                found.append((route, entry.name, _view_methods(entry.callback), is_suffix))

    walk(get_resolver(), "")
    return found


def test_every_api_endpoint_is_in_the_matrix():
    routes = api_routes()
    assert routes, "found no routes under api/: has the API moved?"
    unnamed = [route for route, name, _, _ in routes if not name]
    assert not unnamed, f"name these API routes so the matrix can list them: {unnamed}"

    # DRF's router can repeat every route with a format suffix (/api/leads/1.json, /api/.json).
    # Ours does not (OptionalSlashRouter.include_format_suffixes = False): the views take no
    # `format` argument, so those aliases answered 500. A suffix route appearing again is not
    # a new endpoint but that bug coming back, so it fails here rather than earning rows.
    suffixed = [route for route, _, _, is_suffix in routes if is_suffix]
    assert not suffixed, f"format-suffix routes are back; the views cannot take `format`: {suffixed}"

    in_urlconf = {(method, name) for _, name, methods, _ in routes for method in methods}
    missing = sorted(in_urlconf - MATRIX.keys())
    stale = sorted(MATRIX.keys() - in_urlconf)
    assert not missing, f"API endpoints with no row in MATRIX: say who may call them: {missing}"
    assert not stale, f"MATRIX rows for endpoints that no longer exist: {stale}"


# --- one test per cell ----------------------------------------------------------------------------


@dataclass
class World:
    owner: object
    other_sales: object
    manager: object
    admin: object
    lead: Lead
    stage: Stage  # a stage no lead uses, to change and delete
    source: Source  # likewise

    def user(self, role):
        return None if role == "anonymous" else getattr(self, role)


@pytest.fixture
def world(db, settings):
    # Throttling has tests of its own: a rate limit must not decide any cell here.
    settings.API_THROTTLE_RATES = {"anon": None, "user": None}
    owner = UserFactory(role=Role.SALES, email="owner@matrix.example")
    lead = services.create_lead(
        actor=owner, first_name="Mara", last_name="Trix", email="mara@prospect.example", company="Grid Ltd"
    )
    return World(
        owner=owner,
        other_sales=UserFactory(role=Role.SALES, email="other@matrix.example"),
        manager=UserFactory(role=Role.MANAGER, email="manager@matrix.example"),
        admin=UserFactory(role=Role.ADMIN, email="admin@matrix.example"),
        lead=Lead.objects.get(pk=lead.pk),
        stage=Stage.objects.create(name="Matrix Stage", position=900),
        source=Source.objects.create(name="Matrix Source"),
    )


def request_for(method, name, world, caller):
    """The URL and body that exercise (method, name): a write that would succeed if allowed."""
    lead, holder = world.lead, caller or world.owner
    urls = {
        "lead-detail": [lead.pk],
        "lead-stage": [lead.pk],
        "lead-owner": [lead.pk],
        "lead-claim": [lead.pk],
        "lead-activities": [lead.pk],
        "stage-detail": [world.stage.pk],
        "source-detail": [world.source.pk],
        "user-detail": [world.owner.pk],
    }
    if name.startswith("lead-attachment"):
        urls |= attachment_urls(world)
    if name in ("follow-up-detail", "follow-up-complete"):
        urls[name] = [matrix_follow_up(world).pk]
    if name.startswith("import-") and name != "import-list":  # CSV imports
        urls[name] = [matrix_import(world, finished=name in ("import-revert", "import-errors")).pk]
    url = reverse(f"api:{name}", args=urls.get(name, []))
    # Dashboard and reports: every filter set, so a refused call is refused with them too.
    report_queries = {
        "dashboard-stats": f"?range=custom&start=2026-01-01&end=2026-01-31&source={world.source.pk}",
        "dashboard-leads-by-stage": f"?range=7d&owner={world.owner.pk}",
        "dashboard-leads-by-source": "?range=quarter",
        "dashboard-top-sales": "?range=today&limit=5",
        "reports-daily-summary": "?date=2026-01-05",
        "reports-agent-performance": "?start_date=2026-01-01&end_date=2026-01-31",
    }
    url += report_queries.get(name, "")
    bodies = {
        ("POST", "lead-list"): {"name": "Nora Newlead", "email": "nora@prospect.example"},
        ("PUT", "lead-detail"): {"first_name": "Mara", "last_name": "Trix", "company": "Renamed Co"},
        ("PATCH", "lead-detail"): {"company": "Renamed Co"},
        ("PATCH", "lead-stage"): {"stage": "In Progress"},
        ("PATCH", "lead-owner"): {"owner": str(world.other_sales.pk)},
        ("POST", "lead-claim"): {},
        ("POST", "lead-activities"): {"kind": "note", "body": "Matrix note"},
        ("POST", "stage-list"): {"name": "Matrix Added", "position": 950, "kind": "open"},
        ("PUT", "stage-detail"): {
            "name": "Matrix Renamed",
            "position": 901,
            "kind": "open",
            "archived": False,
        },
        ("PATCH", "stage-detail"): {"name": "Matrix Renamed"},
        ("POST", "source-list"): {"name": "Matrix Added"},
        ("PUT", "source-detail"): {"name": "Matrix Renamed", "archived": False},
        ("PATCH", "source-detail"): {"name": "Matrix Renamed"},
        ("POST", "token"): {"email": holder.email, "password": DEFAULT_PASSWORD},
        ("POST", "follow-up-list"): {
            "lead": lead.pk,
            "title": "Matrix call",
            "due_at": "2030-01-02T09:00:00Z",
        },
        ("PUT", "follow-up-detail"): {"title": "Matrix moved", "due_at": "2030-01-03T09:00:00Z"},
        ("PATCH", "follow-up-detail"): {"title": "Matrix moved"},
        ("POST", "follow-up-complete"): {"outcome": "interested", "duration_minutes": 5},
        ("PATCH", "import-detail"): {"duplicate_mode": "update"},  # CSV imports
        ("POST", "public_lead_create"): {
            "first_name": "Pat",
            "last_name": "Public",
            "email": "pat@prospect.example",
            "message": "Matrix enquiry",
            "consent": True,
        },
    }
    if name in ("token_refresh", "logout"):
        return url, {"refresh": str(RefreshToken.for_user(holder))}
    if (method, name) == ("POST", "lead-attachments"):
        return url, {"file": SimpleUploadedFile("matrix.pdf", b"%PDF-1.4 matrix\n%%EOF\n")}
    if (method, name) == ("POST", "import-list"):  # CSV imports
        return url, {"file": SimpleUploadedFile("matrix.csv", MATRIX_CSV, content_type="text/csv")}
    return url, bodies.get((method, name))


# Requests whose body is multipart (a file); every other body is JSON.
MULTIPART = {("POST", "lead-attachments"), ("POST", "import-list")}


def attachment_urls(world):
    """URL arguments for the attachment routes, with a file on the lead uploaded by its owner."""
    if not hasattr(world, "attachment"):
        world.attachment = add_attachment(
            lead=world.lead, file=SimpleUploadedFile("owner.txt", b"Owner's notes"), actor=world.owner
        )
        world.lead.refresh_from_db()
    args = [world.lead.pk, world.attachment.pk]
    return {"lead-attachments": args[:1], "lead-attachment": args, "lead-attachment-download": args}


def matrix_follow_up(world):
    """The owner's open follow-up on their lead, scheduled through the service."""
    if not hasattr(world, "follow_up"):
        world.follow_up = schedule_follow_up(
            lead=world.lead, actor=world.owner, kind="call", title="Matrix follow-up",
            due_at=timezone.now() + timedelta(days=1),
        )  # fmt: skip
    return world.follow_up


# --- CSV imports ---
MATRIX_CSV = b"Name,E-mail\nMatrix Row,row@matrix.example\nBroken Row,not-an-email\n"


def matrix_import(world, *, finished=False):
    """The owner's import through the engine: waiting for its mapping, or (finished) run to the end."""
    attribute = "finished_import" if finished else "import_job"
    if not hasattr(world, attribute):
        upload = SimpleUploadedFile("owner.csv", MATRIX_CSV, content_type="text/csv")
        job = imports.start_upload(actor=world.owner, file=upload)
        if finished:
            # queue_import enqueues on commit, which never comes inside this test's transaction.
            imports.queue_import(job=job, actor=world.owner)
            job = imports.run_import(job.pk)
        setattr(world, attribute, job)
    return getattr(world, attribute)


def client_as(user):
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def snapshot():
    """Everything an API write could touch, to show that a refused request touched none of it."""
    return {
        "leads": list(Lead.objects.order_by("pk").values()),
        "activities": list(Activity.objects.order_by("pk").values_list("pk", flat=True)),
        "stages": list(Stage.objects.order_by("pk").values()),
        "sources": list(Source.objects.order_by("pk").values()),
        "idempotency_keys": IdempotencyKey.objects.count(),
        "attachments": list(Attachment.objects.order_by("pk").values()),
        "follow_ups": list(FollowUp.objects.order_by("pk").values()),
        "blacklisted_tokens": BlacklistedToken.objects.count(),
        "imports": list(ImportJob.objects.order_by("pk").values()),  # CSV imports
        "import_records": list(ImportRecord.objects.order_by("pk").values()),
    }


def _new_activity(world, kind, caller):
    activity = world.lead.activities.order_by("-id").first()
    assert activity.kind == kind and activity.actor == caller, (activity.kind, activity.actor)
    return activity


def assert_write_happened(method, name, world, caller, body, response):
    """An allowed write did what the endpoint promises, and recorded it on the timeline."""
    lead = Lead.objects.select_related("stage", "owner").get(pk=world.lead.pk)
    match (method, name):
        case ("POST", "lead-list"):
            created = Lead.objects.get(email="nora@prospect.example")
            assert response.json()["id"] == created.pk and created.created_by == caller
            assert created.activities.get().kind == Activity.Kind.CREATED
        case ("PUT" | "PATCH", "lead-detail"):
            assert lead.company == "Renamed Co" and lead.version == world.lead.version + 1
            _new_activity(world, Activity.Kind.UPDATED, caller)
        case ("DELETE", "lead-detail"):
            assert lead.deleted_at is not None
            _new_activity(world, Activity.Kind.DELETED, caller)
        case ("PATCH", "lead-stage"):
            assert lead.stage.name == "In Progress"
            _new_activity(world, Activity.Kind.STAGE_CHANGED, caller)
        case ("PATCH", "lead-owner"):
            assert lead.owner == world.other_sales
            _new_activity(world, Activity.Kind.OWNER_CHANGED, caller)
        case ("POST", "lead-activities"):
            assert _new_activity(world, Activity.Kind.NOTE, caller).body == "Matrix note"
        case ("POST", "stage-list"):
            assert Stage.objects.filter(name="Matrix Added").exists()
        case ("PUT" | "PATCH", "stage-detail"):
            assert Stage.objects.get(pk=world.stage.pk).name == "Matrix Renamed"
        case ("DELETE", "stage-detail"):
            assert not Stage.objects.filter(pk=world.stage.pk).exists()
        case ("POST", "source-list"):
            assert Source.objects.filter(name="Matrix Added").exists()
        case ("PUT" | "PATCH", "source-detail"):
            assert Source.objects.get(pk=world.source.pk).name == "Matrix Renamed"
        case ("DELETE", "source-detail"):
            assert not Source.objects.filter(pk=world.source.pk).exists()
        case ("POST", "token"):
            assert set(response.json()) == {"access", "refresh"}
        case ("POST", "token_refresh"):
            assert set(response.json()) == {"access", "refresh"}
            # Rotation: the refresh token just used is spent.
            assert BlacklistedToken.objects.filter(token__token=body["refresh"]).exists()
        case ("POST", "logout"):
            assert BlacklistedToken.objects.filter(token__token=body["refresh"]).exists()
        case ("POST", "logout_all"):
            caller.refresh_from_db()
            assert caller.session_epoch == 1
            assert BlacklistedToken.objects.filter(token__user=caller).exists()
        case ("POST", "public_lead_create"):
            assert response.json() == {"status": "received"}
            captured = Lead.objects.get(email="pat@prospect.example")
            assert captured.source.name == "Website" and captured.created_by is None
            assert captured.activities.get(kind=Activity.Kind.CAPTURED).body == "Matrix enquiry"
        case ("POST", "lead-attachments"):
            added = Attachment.objects.get(pk=response.json()["id"])
            assert (added.lead_id, added.filename, added.uploaded_by) == (lead.pk, "matrix.pdf", caller)
            _new_activity(world, Activity.Kind.ATTACHMENT_ADDED, caller)
        case ("DELETE", "lead-attachment"):
            deleted = Attachment.objects.get(pk=world.attachment.pk)
            assert deleted.deleted_at is not None and deleted.deleted_by == caller
            _new_activity(world, Activity.Kind.ATTACHMENT_DELETED, caller)
        case ("POST", "follow-up-list"):
            created = FollowUp.objects.get(pk=response.json()["id"])
            assert (created.lead_id, created.assigned_to, created.created_by) == (lead.pk, caller, caller)
            _new_activity(world, Activity.Kind.FOLLOW_UP_SCHEDULED, caller)
        case ("PUT" | "PATCH", "follow-up-detail"):
            assert FollowUp.objects.get(pk=world.follow_up.pk).title == "Matrix moved"
            _new_activity(world, Activity.Kind.FOLLOW_UP_SCHEDULED, caller)
        case ("DELETE", "follow-up-detail"):
            assert FollowUp.objects.get(pk=world.follow_up.pk).cancelled_at is not None
            _new_activity(world, Activity.Kind.FOLLOW_UP_CANCELLED, caller)
        case ("POST", "follow-up-complete"):
            done = FollowUp.objects.get(pk=world.follow_up.pk)
            assert done.done_at is not None and done.outcome == "interested"
            assert _new_activity(world, Activity.Kind.FOLLOW_UP_DONE, caller).data["duration_minutes"] == 5
        case ("POST", "import-list"):  # CSV imports
            created = ImportJob.objects.get(pk=response.json()["id"])
            assert (created.created_by, created.filename, created.status) == (caller, "matrix.csv", "mapping")
        case ("PATCH", "import-detail"):
            assert ImportJob.objects.get(pk=world.import_job.pk).duplicate_mode == "update"
        case ("POST", "import-start"):
            started = ImportJob.objects.get(pk=world.import_job.pk)
            assert started.status in {"queued", "running", "done"}, started.status
        case ("POST", "import-cancel"):
            assert ImportJob.objects.get(pk=world.import_job.pk).status == "cancelled"
        case ("POST", "import-revert"):
            reverted = ImportJob.objects.get(pk=world.finished_import.pk)
            assert reverted.status == "reverted" and reverted.reverted_by == caller
        case _:
            pytest.fail(f"say what a successful {method} {name} writes")


CELLS = [
    pytest.param(method, name, role, sharing, id=f"{method} {name}-{role}-{sharing}")
    for (method, name) in MATRIX
    for sharing in SHARINGS
    for role in ROLES
]


@pytest.mark.parametrize(("method", "name", "role", "sharing"), CELLS)
def test_permission_cell(method, name, role, sharing, world, settings):
    settings.LEAD_SHARING = sharing
    caller = world.user(role)
    url, body = request_for(method, name, world, caller)
    before = snapshot()

    body_format = "multipart" if (method, name) in MULTIPART else "json"
    response = getattr(client_as(caller), method.lower())(url, body, format=body_format)

    expected = expected_status(method, name, role, sharing)
    assert response.status_code == expected, (response.status_code, response.content[:300])
    if expected >= 400:
        assert_error(response, expected)
        assert snapshot() == before, "a refused request changed the database"
    elif method == "GET":
        assert snapshot() == before, "a read changed the database"
    else:
        assert_write_happened(method, name, world, caller, body, response)

    if (method, name) == ("GET", "lead-list") and expected == 200:
        # The list shows exactly the leads the detail route would show.
        listed = {row["id"] for row in response.json()["leads"]}
        sees_lead = expected_status("GET", "lead-detail", role, sharing) == 200
        assert (world.lead.pk in listed) == sees_lead, listed
    if (method, name) == ("GET", "lead-export") and expected == 200:
        # export: the CSV holds exactly the leads the detail route would show ("ID" column).
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
        exported = {int(row["ID"]) for row in rows}
        sees_lead = expected_status("GET", "lead-detail", role, sharing) == 200
        assert (world.lead.pk in exported) == sees_lead, exported


# The unassigned pool, as a salesperson who does not own the lead sees it: visible under every
# sharing (that is how leads get claimed), editable only under "write".
# fmt: off
POOL = {
    ("GET",   "lead-detail"):     S(200, 200, 200),
    ("PATCH", "lead-detail"):     S(403, 403, 200),
    ("PATCH", "lead-stage"):      S(403, 403, 200),
    ("PATCH", "lead-owner"):      S(403, 403, 403),
    ("POST",  "lead-claim"):      S(200, 200, 200),
    ("POST",  "lead-activities"): S(403, 403, 201),
}
# fmt: on


@pytest.mark.parametrize("sharing", SHARINGS)
@pytest.mark.parametrize(("method", "name"), list(POOL))
def test_unassigned_lead_for_other_sales(method, name, sharing, world, settings):
    settings.LEAD_SHARING = sharing
    Lead.objects.filter(pk=world.lead.pk).update(owner=None)
    world.lead.refresh_from_db()
    url, body = request_for(method, name, world, world.other_sales)
    before = snapshot()

    response = getattr(client_as(world.other_sales), method.lower())(url, body, format="json")

    expected = POOL[(method, name)][sharing]
    assert response.status_code == expected, (response.status_code, response.content[:300])
    if expected >= 400:
        assert_error(response, expected)
        assert snapshot() == before
    elif (method, name) == ("POST", "lead-claim"):
        claimed = Lead.objects.get(pk=world.lead.pk)
        assert claimed.owner == world.other_sales
        assert _new_activity(world, Activity.Kind.OWNER_CHANGED, world.other_sales).data["claimed"] is True


@pytest.mark.parametrize("role", ROLES)
def test_format_suffix_urls_are_not_routes(role, world):
    # Every role, anonymous included, gets the API's JSON 404 rather than a 500 or a 401.
    url = f"/api/leads/{world.lead.pk}.json"
    response = client_as(world.user(role)).get(url)
    assert_error(response, 404, code="not_found")
