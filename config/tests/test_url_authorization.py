"""Who may open which URL: every pattern in the URLconf and every WebSocket route, by role, as tables.

The walk collects every pattern from get_resolver() (pages, accounts, admin, the API) and every
WebSocket route behind config.asgi. A pattern with no entry here fails
test_every_url_pattern_has_an_entry, naming it: nobody adds a URL without deciding who may use it.

- Pages and accounts: PAGES below, one row per (pattern, method), cells per role, sent with the
  session (client.force_login), as a browser would. Methods the view does not list are probed
  too: they must answer 405 (or the login redirect), so PAGES names every method a view accepts.
- Admin: one generic rule per admin URL shape (changelist, add, change, delete, history, ...) and
  ADMIN_MODELS saying what managers may do per model (admins are superusers).
- API: leads/tests/api/test_permissions_matrix.py holds the full matrix (JWT, every method, every
  LEAD_SHARING, with "a refused write changed nothing"); the walk checks each API pattern has its
  rows there, and sends its GET rows again here with a session instead of a token.
- WebSockets: WEBSOCKETS below; each route refuses anonymous sockets and foreign origins here,
  and the test named in its entry proves who hears of what.

Expected cells: LOGIN (302 to the login page), ADMIN_LOGIN (302 to admin's login), REDIRECT (302
anywhere else: a form done), or a status. A lead, file, import, follow-up or notice the caller may
not see is 404, never 403 (no IDOR): see test_ids_the_caller_may_not_see_are_404.
"""

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from accounts.roles import Role
from leads import imports, services
from leads.attachments import add_attachment
from leads.follow_ups import schedule_follow_up
from leads.merging import merge_leads
from leads.models import (
    Activity,
    AssignmentRule,
    Attachment,
    FollowUp,
    ImportJob,
    Lead,
    LeadMerge,
    Notification,
    OutgoingEmail,
    Source,
    Stage,
)
from leads.notifications import notify
from leads.realtime import CLOSE_UNAUTHENTICATED
from leads.tests.api import test_permissions_matrix as api_matrix
from leads.tests.factories import UserFactory

ROLES = ("anonymous", "owner", "other", "other_private", "manager", "admin")
# "owner": the salesperson who owns the lead (and the file, import, follow-up, notice) under test;
# for URLs about no lead, any salesperson. "other": another salesperson, under the default
# LEAD_SHARING=read; "other_private": the same person under LEAD_SHARING=private.
LOGIN, ADMIN_LOGIN, REDIRECT = "login", "admin-login", "redirect"
# A form posted from the board: refused with a message and a redirect back (302), nothing written.
REFUSED = "refused"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
# Any one request, even a page with a board of every lead, stays under this many queries.
MAX_QUERIES = 60


def row(anonymous, owner, other, other_private, manager, admin_):
    return dict(zip(ROLES, (anonymous, owner, other, other_private, manager, admin_), strict=True))


def everyone(cell):
    return row(*[cell] * len(ROLES))


def signed_in(cell):
    return row(LOGIN, *[cell] * (len(ROLES) - 1))


# --- the world every request is aimed at ------------------------------------------------------


@dataclass
class World:
    owner: object
    other: object
    manager: object
    admin: object
    colleague: object  # a salesperson the user pages act on (resend, deactivate, reassign)
    invitee: object  # invited, no password yet
    lead: object  # the owner's
    twin: object  # the owner's too: the other side of a merge
    attachment: object
    follow_up: object
    import_job: object
    finished_import: object
    notification: object
    merge: object  # an undoable merge by the manager, of two leads the owner cannot see under private

    def user(self, role):
        return {"anonymous": None, "other_private": self.other}.get(role) or getattr(self, role, None)


CSV = b"Name,E-mail\nWalk Row,row@walk.example\nBroken Row,not-an-email\n"
TEST_SETTINGS = {
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "LEAD_SHARING": "read",
    "API_THROTTLE_RATES": {"anon": None, "user": None},
}


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    return tmp_path_factory.mktemp("walk-media")


@pytest.fixture(autouse=True)
def _test_settings(settings, media_root):
    """Overrides the root conftest's: the files of the module's world live in one media folder."""
    for name, value in TEST_SETTINGS.items():
        setattr(settings, name, value)
    settings.MEDIA_ROOT = media_root
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    cache.clear()  # throttles and axes counters start at zero for every request
    yield
    cache.clear()


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, media_root):
    """Built once for the module in a transaction rolled back at its end; each test's own
    transaction (a savepoint inside this one) undoes whatever its request wrote."""
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media_root, **TEST_SETTINGS):
        with transaction.atomic():
            yield _build_world()
            transaction.set_rollback(True)


def _build_world():
    owner = UserFactory(role=Role.SALES, email="owner@walk.example")
    other = UserFactory(role=Role.SALES, email="other@walk.example")
    manager = UserFactory(role=Role.MANAGER, email="manager@walk.example")
    admin_user = UserFactory(role=Role.ADMIN, email="admin@walk.example")
    colleague = UserFactory(role=Role.SALES, email="colleague@walk.example")
    invitee = UserFactory(role=Role.SALES, email="invitee@walk.example")
    invitee.set_unusable_password()
    invitee.save()

    def lead(name, email, lead_owner):
        return services.create_lead(
            actor=manager, name=name, email=email, owner=lead_owner, company="Walk Co"
        )

    the_lead = lead("Wanda Walk", "wanda@walk.example", owner)
    twin = lead("Wanda Walker", "wanda.walker@walk.example", owner)
    survivor = lead("Colin Colleague", "colin@walk.example", colleague)
    merged = lead("Colin Colleague", "colin.c@walk.example", colleague)
    merge = merge_leads(survivor=survivor, merged=merged, actor=manager, field_choices={})
    attachment = add_attachment(
        lead=the_lead, file=SimpleUploadedFile("walk.pdf", b"%PDF-1.4 walk\n%%EOF\n"), actor=owner
    )
    follow_up = schedule_follow_up(
        lead=the_lead, actor=owner, kind="call", title="Walk call", due_at=timezone.now() + timedelta(days=1)
    )
    import_job = imports.start_upload(actor=owner, file=SimpleUploadedFile("walk.csv", CSV, "text/csv"))
    finished = imports.start_upload(actor=owner, file=SimpleUploadedFile("done.csv", CSV, "text/csv"))
    imports.queue_import(job=finished, actor=owner)
    finished = imports.run_import(finished.pk)
    notification = notify(
        user=owner, kind=Notification.Kind.choices[0][0], message="Walk notice", lead=the_lead, key="walk"
    )
    _admin_rows(owner)
    the_lead.refresh_from_db()
    return World(
        owner=owner, other=other, manager=manager, admin=admin_user, colleague=colleague, invitee=invitee,
        lead=the_lead, twin=twin, attachment=attachment, follow_up=follow_up, import_job=import_job,
        finished_import=finished, notification=notification, merge=merge,
    )  # fmt: skip


def _admin_rows(user):
    """A row of every admin-registered model the steps above did not write, for the admin's
    object pages: a refresh token (outstanding and blacklisted), a task result, a rule, an e-mail."""
    RefreshToken.for_user(user).blacklist()
    DBTaskResult.objects.create(
        enqueued_at=timezone.now(), args_kwargs={"args": [], "kwargs": {}}, task_path="leads.tasks.walk",
        backend_name="default", run_after=None, exception_class_path="", traceback="",
    )  # fmt: skip
    if not AssignmentRule.objects.exists():
        AssignmentRule.objects.create()
    seen = {"username": user.email, "ip_address": "127.0.0.1", "user_agent": "walk", "http_accept": "*/*"}
    AccessAttempt.objects.create(
        **seen, path_info="/accounts/login/", failures_since_start=1, get_data="", post_data=""
    )
    AccessLog.objects.create(**seen, path_info="/accounts/login/")
    AccessFailureLog.objects.create(**seen, path_info="/accounts/login/", locked_out=False)
    if not OutgoingEmail.objects.exists():
        OutgoingEmail.objects.create(key="walk", to=user.email, subject="Walk", body_text="Walk")


# --- pages and accounts: (pattern, method) -> arguments and cells ------------------------------


def _lead(w):
    return {"pk": w.lead.pk}


def _invite(w):
    return {
        "uidb64": urlsafe_base64_encode(force_bytes(w.invitee.pk)),
        "token": default_token_generator.make_token(w.invitee),
    }


# Arguments per pattern name (patterns without arguments need none).
ARGS = {
    "leads:detail": _lead,
    "leads:edit": _lead,
    "leads:move": _lead,
    "leads:log_activity": _lead,
    "leads:reassign": _lead,
    "leads:claim": _lead,
    "leads:delete": _lead,
    "leads:attachment_upload": _lead,
    "leads:attachment_download": lambda w: {"pk": w.lead.pk, "file_id": w.attachment.pk},
    "leads:attachment_delete": lambda w: {"pk": w.lead.pk, "file_id": w.attachment.pk},
    "leads:merge": lambda w: {"pk": w.lead.pk, "other_pk": w.twin.pk},
    "leads:undo_merge": lambda w: {"merge_id": w.merge.pk},
    "leads:dashboard_csv": lambda w: {"table": "top-salespeople"},
    "leads:schedule_follow_up": _lead,
    "leads:complete_follow_up": lambda w: {"pk": w.follow_up.pk},
    "leads:cancel_follow_up": lambda w: {"pk": w.follow_up.pk},
    "leads:import_detail": lambda w: {"pk": w.import_job.pk},
    "leads:import_start": lambda w: {"pk": w.import_job.pk},
    "leads:import_cancel": lambda w: {"pk": w.import_job.pk},
    "leads:import_revert": lambda w: {"pk": w.finished_import.pk},
    "leads:import_errors": lambda w: {"pk": w.finished_import.pk},
    "leads:import_progress": lambda w: {"pk": w.import_job.pk},
    "leads:notification_open": lambda w: {"pk": w.notification.pk},
    "leads:live_card": _lead,
    "invite_accept": _invite,
    "user_resend_invite": lambda w: {"pk": w.colleague.pk},
    "user_deactivate": lambda w: {"pk": w.colleague.pk},
    "user_reactivate": lambda w: {"pk": w.colleague.pk},
    "user_reassign_leads": lambda w: {"pk": w.colleague.pk},
}


def _edit_body(w):
    lead = w.lead
    return {
        "first_name": lead.first_name, "last_name": lead.last_name, "email": lead.email, "phone": lead.phone,
        "company": "Walk Renamed", "title": lead.title, "source": lead.source_id, "value": lead.value or 0,
        "priority": lead.priority, "notes": lead.notes, "version": lead.version,
    }  # fmt: skip


# A valid body for the writes whose form is checked before the service decides who may write,
# so the cell shows the real door (403/404) and not the form's 400. Other POSTs send no body.
BODIES = {
    "leads:quick_add": lambda w: {
        "name": "Walk Added",
        "email": "added@walk.example",
        "source": w.lead.source_id,
    },
    "leads:edit": _edit_body,
    "leads:move": lambda w: {"stage": Stage.objects.get(name="In Progress").pk, "version": w.lead.version},
    "leads:log_activity": lambda w: {"kind": "note", "body": "Walk note"},
    "leads:reassign": lambda w: {"owner": w.other.pk, "version": w.lead.version},
    "leads:attachment_upload": lambda w: {"file": SimpleUploadedFile("walk2.pdf", b"%PDF-1.4 walk\n%%EOF\n")},
    "leads:schedule_follow_up": lambda w: {
        "kind": "call",
        "title": "Walk again",
        "due_at": "2030-01-02 09:00",
    },
    "leads:complete_follow_up": lambda w: {"outcome": "interested"},
    "leads:imports": lambda w: {"file": SimpleUploadedFile("walk3.csv", CSV, "text/csv")},
}

# fmt: off
PAGES = {
    #                                             anonymous owner     other     private   manager   admin
    ("leads:home", "GET"):                    row(LOGIN,    REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT),
    ("leads:board", "GET"):                   signed_in(200),
    ("leads:board_export", "GET"):            signed_in(200),
    ("leads:quick_add", "POST"):              signed_in(REDIRECT),
    ("leads:detail", "GET"):                  row(LOGIN,    200,      200,      404,      200,      200),
    ("leads:edit", "POST"):                   row(LOGIN,    REDIRECT, 403,      404,      REDIRECT, REDIRECT),
    # The no-JavaScript move page shows to whoever sees the lead; its POST is the door.
    ("leads:move", "GET"):                    row(LOGIN,    200,      200,      404,      200,      200),
    ("leads:move", "POST"):                   row(LOGIN,    REDIRECT, REFUSED,  404,      REDIRECT, REDIRECT),
    ("leads:log_activity", "POST"):           row(LOGIN,    REDIRECT, 403,      404,      REDIRECT, REDIRECT),
    ("leads:reassign", "POST"):               row(LOGIN,    403,      403,      404,      REDIRECT, REDIRECT),
    # The lead has an owner: claiming it is refused with a message on the lead page.
    ("leads:claim", "POST"):                  row(LOGIN,    REDIRECT, REDIRECT, 404,      REDIRECT, REDIRECT),
    ("leads:delete", "GET"):                  row(LOGIN,    403,      403,      404,      200,      200),
    ("leads:delete", "POST"):                 row(LOGIN,    403,      403,      404,      REDIRECT, REDIRECT),
    # The public capture form: no login, everyone alike (an empty form is 400 with its errors).
    ("leads:apply", "GET"):                   everyone(200),
    ("leads:apply", "POST"):                  everyone(400),
    ("leads:apply_thanks", "GET"):            everyone(200),
    ("leads:attachment_upload", "POST"):      row(LOGIN,    REDIRECT, 403,      404,      REDIRECT, REDIRECT),
    ("leads:attachment_download", "GET"):     row(LOGIN,    200,      200,      404,      200,      200),
    ("leads:attachment_delete", "GET"):       row(LOGIN,    200,      403,      404,      200,      200),
    ("leads:attachment_delete", "POST"):      row(LOGIN,    REDIRECT, 403,      404,      REDIRECT, REDIRECT),
    # Merging is for managers (an empty form is 400); the merged leads are the colleague's.
    ("leads:merge", "GET"):                   row(LOGIN,    403,      403,      404,      200,      200),
    ("leads:merge", "POST"):                  row(LOGIN,    403,      403,      404,      400,      400),
    ("leads:undo_merge", "POST"):             row(LOGIN,    403,      403,      404,      REDIRECT, REDIRECT),
    ("leads:follow_ups", "GET"):              signed_in(200),
    ("leads:dashboard", "GET"):               signed_in(200),
    ("leads:dashboard_csv", "GET"):           signed_in(200),
    ("leads:schedule_follow_up", "POST"):     row(LOGIN,    REDIRECT, 403,      404,      REDIRECT, REDIRECT),
    ("leads:complete_follow_up", "POST"):     row(LOGIN,    REDIRECT, 403,      404,      REDIRECT, REDIRECT),
    ("leads:cancel_follow_up", "POST"):       row(LOGIN,    REDIRECT, 403,      404,      REDIRECT, REDIRECT),
    # CSV imports: an import is its uploader's (and managers'), whatever LEAD_SHARING says.
    ("leads:imports", "GET"):                 signed_in(200),
    ("leads:imports", "POST"):                signed_in(REDIRECT),
    ("leads:import_detail", "GET"):           row(LOGIN,    200,      404,      404,      200,      200),
    ("leads:import_detail", "POST"):          row(LOGIN,    400,      404,      404,      400,      400),
    ("leads:import_start", "POST"):           row(LOGIN,    400,      404,      404,      400,      400),
    ("leads:import_cancel", "POST"):          row(LOGIN,    REDIRECT, 404,      404,      REDIRECT, REDIRECT),
    ("leads:import_revert", "GET"):           row(LOGIN,    403,      404,      404,      200,      200),
    ("leads:import_revert", "POST"):          row(LOGIN,    403,      404,      404,      REDIRECT, REDIRECT),
    ("leads:import_errors", "GET"):           row(LOGIN,    200,      404,      404,      200,      200),
    ("leads:import_progress", "GET"):         row(LOGIN,    200,      404,      404,      200,      200),
    # The bell: a notice is its user's only.
    ("leads:notifications", "GET"):           signed_in(200),
    ("leads:notifications_unread", "GET"):    row(401,      200,      200,      200,      200,      200),
    ("leads:notifications_read_all", "POST"): signed_in(REDIRECT),
    ("leads:notification_open", "POST"):      row(LOGIN,    REDIRECT, 404,      404,      404,      404),
    ("leads:live_card", "GET"):               row(LOGIN,    200,      200,      404,      200,      200),
    # Accounts. Logging out (here or everywhere) ends on the login page.
    ("login", "GET"):                         row(200,      REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT),
    ("login", "POST"):                        row(200,      REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT),
    ("logout", "POST"):                       everyone(LOGIN),
    ("logout_everywhere", "POST"):            everyone(LOGIN),
    ("password_change", "GET"):               signed_in(200),
    ("password_change", "POST"):              signed_in(200),
    ("password_change_done", "GET"):          signed_in(200),
    ("invite_accept", "GET"):                 everyone(REDIRECT),  # to the same page without the token
    ("invite_accept", "POST"):                everyone(REDIRECT),
    # Users: managers and admins (an empty invitation or hand-over is 400 with its errors).
    ("users", "GET"):                         row(LOGIN,    403,      403,      403,      200,      200),
    ("users", "POST"):                        row(LOGIN,    403,      403,      403,      400,      400),
    ("user_resend_invite", "POST"):           row(LOGIN,    403,      403,      403,      REDIRECT, REDIRECT),
    ("user_deactivate", "POST"):              row(LOGIN,    403,      403,      403,      REDIRECT, REDIRECT),
    ("user_reactivate", "POST"):              row(LOGIN,    403,      403,      403,      REDIRECT, REDIRECT),
    ("user_reassign_leads", "POST"):          row(LOGIN,    403,      403,      403,      400,      400),
    # Browsers ask for it on pages that name no icon: a permanent redirect to the static file.
    ("favicon.ico", "GET"):                   everyone(301),
}
# fmt: on


def page_patterns():
    """Every non-admin, non-API pattern as (key, route): the key is its namespaced name or route."""
    return [(key, route) for key, route, _ in all_patterns() if not route.startswith(("admin/", "api/"))]


def all_patterns():
    """(key, route, URLPattern) for every pattern in the URLconf, walking includes."""
    found = []

    def walk(resolver, prefix, namespaces):
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry, route, namespaces + ([entry.namespace] if entry.namespace else []))
            elif isinstance(entry, URLPattern):
                key = ":".join([*namespaces, entry.name]) if entry.name else route
                found.append((key, route, entry))

    walk(get_resolver(), "", [])
    return found


# --- admin: one rule per URL shape, what managers may do per model ----------------------------

# What managers and admins may do per registered model: the Managers group's permissions
# (accounts.roles.MANAGER_PERMISSIONS) and what each ModelAdmin allows even a superuser (the
# timeline is append-only, system records are read-only, the assignment rule is edited in place).
ALL = frozenset({"view", "add", "change", "delete"})
VIEW, VIEW_CHANGE, NONE = frozenset({"view"}), frozenset({"view", "change"}), frozenset()
# fmt: off
ADMIN_MODELS = {
    #                                       managers                             admins
    "accounts.user":                       ({"view", "add", "change"},          ALL),
    "auth.group":                          (NONE,                               ALL),
    "leads.lead":                          (ALL,                                ALL),
    "leads.stage":                         (ALL,                                ALL),
    "leads.source":                        (ALL,                                ALL),
    "leads.activity":                      (VIEW,                               VIEW),
    "leads.assignmentrule":                (VIEW_CHANGE,                        VIEW_CHANGE),
    "leads.followup":                      (NONE,                               VIEW_CHANGE),
    "leads.outgoingemail":                 (VIEW,                               VIEW),
    "django_tasks_database.dbtaskresult":  (NONE,                               VIEW_CHANGE),
    "token_blacklist.outstandingtoken":    (NONE,                               VIEW_CHANGE),
    "token_blacklist.blacklistedtoken":    (NONE,                               ALL),
    "axes.accessattempt":                  (NONE,                               {"view", "change", "delete"}),
    "axes.accesslog":                      (NONE,                               {"view", "change", "delete"}),
    "axes.accessfailurelog":               (NONE,                               {"view", "change", "delete"}),
}
# fmt: on
# Its changelist opens the one row instead (the one assignment rule).
CHANGELIST_REDIRECTS = {"leads.assignmentrule"}

# The admin URL shapes below a model's prefix, and the permission each needs.
ADMIN_SHAPES = {
    "": "view",  # the changelist
    "add/": "add",
    "<path:object_id>/": "view",  # a redirect to .../change/
    "<path:object_id>/change/": "view",
    "<path:object_id>/delete/": "delete",
    "<path:object_id>/history/": "view",
    "<id>/password/": "change",  # UserAdmin's set-password form
}


def admin_patterns():
    return [(key, route) for key, route, _ in all_patterns() if route.startswith("admin/")]


def _admin_model(route):
    """(model label, shape) when the route is a registered model's, else (None, None)."""
    for model in admin.site._registry:
        prefix = f"admin/{model._meta.app_label}/{model._meta.model_name}/"
        if route.startswith(prefix):
            return model._meta.label_lower, route.removeprefix(prefix)
    return None, None


# The admin site's own routes (not a model's).


def staff_only(manager, admin_):
    """Anyone but staff is sent to admin's login; staff get these."""
    return row(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, manager, admin_)


ADMIN_SITE = {
    "admin/": staff_only(200, 200),
    "admin/login/": row(200, 200, 200, 200, REDIRECT, REDIRECT),
    # POST only; admin sends non-staff GETs to its index (and so to its login).
    "admin/logout/": row(REDIRECT, REDIRECT, REDIRECT, REDIRECT, 405, 405),
    "admin/password_change/": staff_only(200, 200),
    "admin/password_change/done/": staff_only(200, 200),
    "admin/autocomplete/": staff_only(403, 403),  # no field named
    "admin/jsi18n/": staff_only(200, 200),
    # "View on site": staff only, then a redirect to the lead's page (which checks again).
    "admin/r/<path:content_type_id>/<path:object_id>/": staff_only(REDIRECT, REDIRECT),
    "admin/(?P<url>.*)$": staff_only(404, 404),  # the catch-all
}
ADMIN_APP_INDEX = staff_only(200, 200)


def admin_expected(route):
    """The expected GET cells for an admin route, or None when no rule covers it."""
    if route in ADMIN_SITE:
        return ADMIN_SITE[route]
    if route.startswith("admin/^(?P<app_label>"):
        return ADMIN_APP_INDEX
    label, shape = _admin_model(route)
    if label is None or label not in ADMIN_MODELS or shape not in ADMIN_SHAPES:
        return None
    manager_may, admin_may = ADMIN_MODELS[label]
    needed = ADMIN_SHAPES[shape]

    def cell(may):
        # A view permission is enough to open the list, the history and (read-only) the change page.
        allowed = needed in may or (needed == "view" and "change" in may)
        if allowed and shape == "" and label in CHANGELIST_REDIRECTS:
            return REDIRECT
        return 200 if allowed else 403

    if shape == "<path:object_id>/":  # a plain redirect to .../change/, which decides
        return staff_only(REDIRECT, REDIRECT)
    return staff_only(cell(manager_may), cell(admin_may))


def _admin_object_id(world, route):
    label, _ = _admin_model(route)
    model = next(m for m in admin.site._registry if m._meta.label_lower == label)
    obj = {"accounts.user": world.colleague, "leads.lead": world.lead}.get(label)
    obj = obj or model._default_manager.order_by("pk").first()
    return str(obj.pk) if obj else "999999"


def admin_url(world, route):
    if route == "admin/r/<path:content_type_id>/<path:object_id>/":
        from django.contrib.contenttypes.models import ContentType

        return reverse(
            "admin:view_on_site", args=[ContentType.objects.get_for_model(world.lead).pk, world.lead.pk]
        )
    if route.startswith("admin/^(?P<app_label>"):
        return reverse("admin:app_list", kwargs={"app_label": "leads"})
    if route == "admin/(?P<url>.*)$":
        return "/admin/no-such-page/"
    url = "/" + route
    if "<path:object_id>" in url or "<id>" in url:
        object_id = _admin_object_id(world, route)
        url = url.replace("<path:object_id>", object_id).replace("<id>", object_id)
    return url


# --- the API: rows in the permissions matrix ----------------------------------------------------


def api_patterns():
    return [(key, route) for key, route, _ in all_patterns() if route.startswith("api/")]


# --- WebSockets --------------------------------------------------------------------------------

# Route -> the test that proves who hears of what on it (anonymous and foreign origins are
# checked here for every route).
WEBSOCKETS = {
    "ws/board/": (
        "leads/tests/test_realtime.py::test_under_private_sharing_other_sales_do_not_hear_of_someone_elses_lead"
    ),
}


def websocket_routes():
    from config.asgi import websocket_application

    found, pending = [], [websocket_application]
    while pending:
        app = pending.pop()
        if isinstance(app, URLRouter):
            for route in app.routes:
                found.append(str(route.pattern))
            continue
        # Channels' middleware keep what they wrap as .application or .inner.
        pending.extend(
            inner for inner in (getattr(app, "application", None), getattr(app, "inner", None)) if inner
        )
    return found


# --- the tests ---------------------------------------------------------------------------------


def test_every_url_pattern_has_an_entry():
    patterns = all_patterns()
    assert len(patterns) > 100, "the walk found too few patterns: has the URLconf moved?"
    missing = []
    for key, route in page_patterns():
        if not any(k == key for k, _ in PAGES):
            missing.append(f"{key} ({route})")
    for key, route in admin_patterns():
        if admin_expected(route) is None:
            missing.append(f"{key} ({route}): add its model to ADMIN_MODELS or its route to ADMIN_SITE")
    matrix_names = {name for _, name in api_matrix.MATRIX}
    for key, route in api_patterns():
        if key.removeprefix("api:") not in matrix_names:
            missing.append(f"{key} ({route}): add its rows to leads/tests/api/test_permissions_matrix.py")
    for route in websocket_routes():
        if route not in WEBSOCKETS:
            missing.append(f"WebSocket {route}")
    assert not missing, "URL patterns with no authorisation entry: decide who may use them:\n" + "\n".join(
        missing
    )
    known = {key for key, _, _ in patterns}
    stale = sorted({key for key, _ in PAGES} - known)
    assert not stale, f"PAGES rows for patterns that no longer exist: {stale}"


def _url(world, key):
    route = next(route for k, route in page_patterns() if k == key)
    if ":" not in key and "<" not in route:
        return "/" + route
    return reverse(key, kwargs=ARGS[key](world) if key in ARGS else None)


def _client(world, role, settings):
    if role == "other_private":
        settings.LEAD_SHARING = "private"
    from django.test import Client

    client = Client()
    user = world.user(role)
    if user is not None:
        client.force_login(user)
    return client


def _send(client, method, url, django_assert_max_num_queries, **extra):
    with django_assert_max_num_queries(MAX_QUERIES):
        return getattr(client, method.lower())(url, **extra)


def assert_answer(response, expected, what):
    status = response.status_code
    location = response.headers.get("Location", "")
    path = urlsplit(location).path
    if expected == LOGIN:
        ok = status == 302 and path == reverse("login")
    elif expected == ADMIN_LOGIN:
        ok = status == 302 and path == reverse("admin:login")
    elif expected in (REDIRECT, REFUSED):
        ok = status in (301, 302, 303) and path not in (reverse("login"), reverse("admin:login"))
    else:
        ok = status == expected
    assert ok, f"{what}: expected {expected}, got {status} {location}".strip()


# Views that answer other methods like one they list, so probing them proves nothing more.
ANY_METHOD = {
    "favicon.ico": "a redirect to a static file, whatever the method",
    "leads:home": "a redirect to the board (or the login page), whatever the method",
    "login": "Django's LoginView: signed-in users are redirected whatever the method; PUT is POST",
    "password_change": "Django's FormView: PUT is POST, behind the same login",
    "invite_accept": "Django's PasswordResetConfirmView: the token is checked first, whatever the method",
}
LOGOUTS = {"logout", "logout_everywhere"}  # their success is the login page


def snapshot():
    """Everything a page write could touch, to show that a refused request touched none of it."""
    return {
        "leads": list(
            Lead.objects.order_by("pk").values_list("pk", "version", "owner_id", "stage_id", "deleted_at")
        ),
        "activities": Activity.objects.count(),
        "attachments": list(Attachment.objects.order_by("pk").values_list("pk", "lead_id")),
        "follow_ups": list(
            FollowUp.objects.order_by("pk").values_list("pk", "done_at", "cancelled_at", "due_at")
        ),
        "imports": list(ImportJob.objects.order_by("pk").values_list("pk", "status", "mapping")),
        "notifications": list(Notification.objects.order_by("pk").values_list("pk", "read_at")),
        "merges": list(LeadMerge.objects.order_by("pk").values_list("pk", "undone_at")),
        "users": list(User.objects.order_by("pk").values_list("pk", "is_active", "role")),
    }


def _each_role(world, settings, roles=ROLES):
    """(role, client) per role, each request's writes undone before the next role's."""
    for role in roles:
        settings.LEAD_SHARING = "read"
        with transaction.atomic():
            yield role, _client(world, role, settings)
            transaction.set_rollback(True)
        cache.clear()


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "method"), list(PAGES), ids=[f"{m} {k}" for k, m in PAGES])
def test_page(world, key, method, settings, django_assert_max_num_queries):
    wrong = []
    for role, client in _each_role(world, settings):
        url = _url(world, key)
        data = BODIES[key](world) if method == "POST" and key in BODIES else None
        expected = PAGES[(key, method)][role]
        before = snapshot() if method != "GET" else None
        response = _send(
            client, method, url, django_assert_max_num_queries, **({"data": data} if data else {})
        )
        try:
            assert_answer(response, expected, f"{method} {url} as {role}")
            if before is not None and expected in (LOGIN, 401, 403, 404, REFUSED) and key not in LOGOUTS:
                assert snapshot() == before, f"{method} {url} as {role} was refused but changed data"
        except AssertionError as exc:
            wrong.append(str(exc))
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted({key for key, _ in PAGES}))
def test_methods_a_page_does_not_list_are_refused(world, key, settings, django_assert_max_num_queries):
    """PAGES lists every method a view accepts: any other is 405 for a signed-in admin."""
    if key in ANY_METHOD:
        pytest.skip(ANY_METHOD[key])
    url = _url(world, key)
    listed = {method for k, method in PAGES if k == key}
    client = _client(world, "admin", settings)
    for method in {"GET", *UNSAFE} - listed:
        response = _send(client, method, url, django_assert_max_num_queries)
        assert response.status_code == 405, f"{method} {url}: {response.status_code}, not in PAGES"


@pytest.mark.django_db
@pytest.mark.parametrize("route", [route for _, route in admin_patterns()])
def test_admin(world, route, settings, django_assert_max_num_queries):
    expected = admin_expected(route)
    assert expected is not None, f"no rule for {route}"
    url = admin_url(world, route)
    wrong = []
    for role, client in _each_role(world, settings, roles=[r for r in ROLES if r != "other_private"]):
        sent = [("GET", _send(client, "GET", url, django_assert_max_num_queries))]
        if expected[role] in (ADMIN_LOGIN, 403):
            # An unsafe request is refused by the same door (CSRF off, as test clients send it).
            sent.append(("POST", _send(client, "POST", url, django_assert_max_num_queries)))
        for method, response in sent:
            try:
                if not (method == "POST" and response.status_code == 405):  # a GET-only door
                    assert_answer(response, expected[role], f"{method} {url} as {role}")
            except AssertionError as exc:
                wrong.append(str(exc))
    assert not wrong, "\n".join(wrong)


API_GET_ROWS = sorted(name for method, name in api_matrix.MATRIX if method == "GET")


# Rows whose cells change with LEAD_SHARING are sent under both; the rest under the default.
API_GET_CASES = [
    (name, sharing)
    for name in API_GET_ROWS
    for sharing in ("read", "private")
    if sharing == "read" or any(isinstance(cell, dict) for cell in api_matrix.MATRIX[("GET", name)])
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "sharing"), API_GET_CASES)
def test_api_get_with_a_session_answers_as_with_a_token(
    world, name, sharing, settings, django_assert_max_num_queries
):
    """A browser's session reaches the API too: the same doors as the matrix's JWT calls."""
    matrix_world = api_matrix.World(
        owner=world.owner, other_sales=world.other, manager=world.manager, admin=world.admin,
        lead=world.lead, stage=Stage.objects.get(name="New Lead"), source=Source.objects.get(name="Manual"),
    )  # fmt: skip
    matrix_world.attachment = world.attachment
    matrix_world.follow_up = world.follow_up
    matrix_world.import_job = world.import_job
    matrix_world.finished_import = world.finished_import
    wrong = []
    for role in api_matrix.ROLES:
        settings.LEAD_SHARING = sharing
        caller = matrix_world.user(role)
        url, _ = api_matrix.request_for("GET", name, matrix_world, caller)
        client = APIClient()
        if caller is not None:
            client.force_login(caller)
        response = _send(client, "GET", url, django_assert_max_num_queries)
        expected = api_matrix.expected_status("GET", name, role, sharing)
        if response.status_code != expected:
            wrong.append(f"GET {url} as {role} under {sharing}: {response.status_code}, expected {expected}")
    assert not wrong, "\n".join(wrong)


# --- no IDOR: ids the caller may not see -------------------------------------------------------


def _id_cases(w):
    """(what, method, url, hidden_under_read) aimed at a row outside the owner's reach, or at a
    mismatched pair of ids; hidden_under_read says it is out of reach even under LEAD_SHARING=read."""
    foreign = services.create_lead(
        actor=w.manager, name="Fay Foreign", email="fay@walk.example", owner=w.other
    )
    ffile = add_attachment(lead=foreign, file=SimpleUploadedFile("fay.txt", b"Fay's notes"), actor=w.other)
    foreign_follow_up = schedule_follow_up(
        lead=foreign, actor=w.other, kind="call", title="Fay call", due_at=timezone.now() + timedelta(days=1)
    )
    foreign_import = imports.start_upload(actor=w.other, file=SimpleUploadedFile("fay.csv", CSV, "text/csv"))
    foreign_notice = notify(
        user=w.other, kind=Notification.Kind.choices[0][0], message="Fay notice", lead=foreign, key="fay"
    )
    deleted = services.create_lead(actor=w.manager, name="Del Eted", email="del@walk.example", owner=w.owner)
    services.delete_lead(lead=deleted, actor=w.manager)
    missing = 987654
    own = w.attachment

    def u(name, *args):
        return reverse(name, args=args)

    # fmt: off
    return [
        ("foreign lead page", "GET", u("leads:detail", foreign.pk), False),
        ("foreign lead card", "GET", u("leads:live_card", foreign.pk), False),
        ("foreign lead move form", "GET", u("leads:move", foreign.pk), False),
        ("foreign lead edit", "POST", u("leads:edit", foreign.pk), False),
        ("foreign lead claim", "POST", u("leads:claim", foreign.pk), False),
        ("foreign lead note", "POST", u("leads:log_activity", foreign.pk), False),
        ("foreign lead follow-up", "POST", u("leads:schedule_follow_up", foreign.pk), False),
        ("foreign lead upload", "POST", u("leads:attachment_upload", foreign.pk), False),
        ("foreign file", "GET", u("leads:attachment_download", foreign.pk, ffile.pk), False),
        ("foreign file delete", "POST", u("leads:attachment_delete", foreign.pk, ffile.pk), False),
        ("foreign follow-up done", "POST", u("leads:complete_follow_up", foreign_follow_up.pk), False),
        ("foreign follow-up cancel", "POST", u("leads:cancel_follow_up", foreign_follow_up.pk), False),
        ("merge with a foreign lead", "GET", u("leads:merge", w.lead.pk, foreign.pk), False),
        ("deleted lead page", "GET", u("leads:detail", deleted.pk), True),
        ("deleted lead card", "GET", u("leads:live_card", deleted.pk), True),
        ("deleted lead edit", "POST", u("leads:edit", deleted.pk), True),
        ("missing lead page", "GET", u("leads:detail", missing), True),
        ("foreign file under own lead", "GET", u("leads:attachment_download", w.lead.pk, ffile.pk), True),
        ("own file under another lead", "GET", u("leads:attachment_download", w.twin.pk, own.pk), True),
        ("own file under foreign lead", "GET", u("leads:attachment_download", foreign.pk, own.pk), True),
        ("own file delete, other lead", "POST", u("leads:attachment_delete", w.twin.pk, own.pk), True),
        ("missing file", "GET", u("leads:attachment_download", w.lead.pk, missing), True),
        ("foreign import", "GET", u("leads:import_detail", foreign_import.pk), True),
        ("foreign import mapping", "POST", u("leads:import_detail", foreign_import.pk), True),
        ("foreign import progress", "GET", u("leads:import_progress", foreign_import.pk), True),
        ("foreign import errors", "GET", u("leads:import_errors", foreign_import.pk), True),
        ("foreign import start", "POST", u("leads:import_start", foreign_import.pk), True),
        ("foreign import cancel", "POST", u("leads:import_cancel", foreign_import.pk), True),
        ("missing import", "GET", u("leads:import_detail", missing), True),
        ("foreign notice", "POST", u("leads:notification_open", foreign_notice.pk), True),
        ("missing follow-up", "POST", u("leads:complete_follow_up", missing), True),
        ("API foreign lead", "GET", u("api:lead-detail", foreign.pk), False),
        ("API foreign lead activities", "GET", u("api:lead-activities", foreign.pk), False),
        ("API foreign lead stage", "PATCH", u("api:lead-stage", foreign.pk), False),
        ("API foreign files", "GET", u("api:lead-attachments", foreign.pk), False),
        ("API foreign file", "GET", u("api:lead-attachment", foreign.pk, ffile.pk), False),
        ("API foreign file download", "GET", u("api:lead-attachment-download", foreign.pk, ffile.pk), False),
        ("API foreign follow-up", "GET", u("api:follow-up-detail", foreign_follow_up.pk), False),
        ("API foreign follow-up done", "POST", u("api:follow-up-complete", foreign_follow_up.pk), False),
        ("API deleted lead", "GET", u("api:lead-detail", deleted.pk), True),
        ("API foreign file, own lead", "GET", u("api:lead-attachment", w.lead.pk, ffile.pk), True),
        ("API own file, another lead", "GET", u("api:lead-attachment-download", w.twin.pk, own.pk), True),
        ("API own file delete, other lead", "DELETE", u("api:lead-attachment", w.twin.pk, own.pk), True),
        ("API missing file", "GET", u("api:lead-attachment", w.lead.pk, missing), True),
        ("API foreign import", "GET", u("api:import-detail", foreign_import.pk), True),
        ("API foreign import errors", "GET", u("api:import-errors", foreign_import.pk), True),
        ("API foreign import start", "POST", u("api:import-start", foreign_import.pk), True),
        ("API missing lead", "GET", u("api:lead-detail", missing), True),
    ]
    # fmt: on


@pytest.mark.django_db
@pytest.mark.parametrize("sharing", ["private", "read"])
def test_ids_the_caller_may_not_see_are_404(world, sharing, settings, django_assert_max_num_queries):
    """A salesperson aiming at someone else's lead, file, follow-up, import or notice, at a deleted
    or missing one, or pairing their own file with another lead, is told it does not exist: 404,
    never 403 (which would confirm it exists) and never 200."""
    settings.LEAD_SHARING = sharing
    cases = [case for case in _id_cases(world) if sharing == "private" or case[3]]
    client = APIClient()  # also a Django test client: pages and the API alike, with the session
    client.force_login(world.owner)
    wrong = []
    for what, method, url, _ in cases:
        response = _send(client, method, url, django_assert_max_num_queries)
        if response.status_code != 404:
            wrong.append(f"{what}: {method} {url} -> {response.status_code}")
    assert not wrong, "ids outside the caller's reach must be 404:\n" + "\n".join(wrong)


# --- WebSockets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(WEBSOCKETS))
def test_websocket_refuses_anonymous_and_foreign_origins(route, settings):
    """The test named in WEBSOCKETS proves who hears what; this proves the door on every route."""
    from config.asgi import application

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    async def anonymous():
        communicator = WebsocketCommunicator(
            application, "/" + route, headers=[(b"origin", b"http://localhost")]
        )
        await communicator.connect()
        closed = await communicator.receive_output(timeout=1)
        await communicator.wait()
        return closed

    async def foreign():
        communicator = WebsocketCommunicator(
            application, "/" + route, headers=[(b"origin", b"https://evil.example")]
        )
        connected, _ = await communicator.connect()
        return connected

    assert async_to_sync(anonymous)() == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
    assert async_to_sync(foreign)() is False
    test_file, test_name = WEBSOCKETS[route].split("::")
    assert re.search(rf"^def {test_name}\(", open(test_file).read(), re.M), f"{WEBSOCKETS[route]} is gone"
