"""Browser-test plumbing: Debian's Chromium under pytest-playwright, demo users and a real login.

Every test under leads/tests/e2e/ is marked `e2e` here, so nobody has to remember the mark, and
runs with transactional database access that restores the migrations' rows (stages, sources,
role groups) between tests, so leave the django_db mark off these tests. Run them on their own,
`DJANGO_ALLOW_ASYNC_UNSAFE=true pytest -m e2e` (`make test` does), because sync Playwright and
asyncio tests cannot share one process.

Static files need no setup: pytest-django's live_server wraps the app in staticfiles'
StaticFilesHandler, which serves from the finders (static/ and the apps) without collectstatic,
and the root conftest switches the manifest storage off for tests.
"""

import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

# live_server's thread runs Django's sync ORM while sync Playwright has an event loop running in
# this thread; Django refuses that unless told it is safe (it is: nothing here is async).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Debian's package by default; LEADBOARD_CHROMIUM points elsewhere (a path or a name on PATH).
CHROMIUM_WANTED = os.environ.get("LEADBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM = shutil.which(CHROMIUM_WANTED)
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI and the dev machines run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    # The machines have no outside network: without these Chromium keeps dialling Google.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

DEMO_PASSWORD = "leadboard-demo"
DEMO_USERS = {
    "admin@example.com": ("admin", "Ada", "Admin"),
    "manager@example.com": ("manager", "Max", "Manager"),
    "sales@example.com": ("sales", "Sam", "Seller"),
    "sales2@example.com": ("sales", "Sasha", "Seller"),
}

E2E_DIR = Path(__file__).resolve().parent


def _running_in_ci():
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # This hook sees the whole session's items, not only this folder's: filter by path.
    for item in items:
        if E2E_DIR not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("django_db") is None:
            # The live server reads what the test wrote, so the test must commit (transaction=True);
            # the flush after each such test would also wipe the data migrations' stages, sources
            # and groups, so serialized_rollback puts them back for the next test.
            item.add_marker(pytest.mark.django_db(transaction=True, serialized_rollback=True))


def _require_chromium():
    """Skip browser tests on a machine without Chromium; under CI a missing browser is a failure."""
    if CHROMIUM:
        return
    message = (
        f"Chromium not found at {CHROMIUM_WANTED}: install Debian's package "
        "(`apt-get install chromium`) or set LEADBOARD_CHROMIUM to a Chromium binary"
    )
    if _running_in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch the system Chromium; Playwright's own browser download is not available here.

    The Chromium check lives here, not in a function-scoped fixture, because pytest sets up
    session fixtures (the browser) before function ones; pytest caches the skip or failure and
    reports it for every test that needs a browser.
    """
    _require_chromium()
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS],
    }


@pytest.fixture(scope="session", autouse=True)
def _test_database(playwright, django_db_setup, django_db_blocker):
    """Create the test database after Playwright starts, and drop it cleanly at the end.

    Order matters: Django keeps connections per thread, but per context once an event loop runs
    in the thread, and sync Playwright leaves one running from its start. A database set up before
    that would live on a connection the tests never see again: the serialized migration rows
    would be lost (serialized_rollback restores nothing) and, on PostgreSQL, that connection would
    keep the test database open so it cannot be dropped. Asking for `playwright` first fixes it.

    On PostgreSQL, it also lets the live server's last requests end (each runs in a daemon thread
    nobody joins) before the test database is dropped. Set up before live_server, it is torn
    down after the server stops.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            deadline = time.monotonic() + 5
            cursor.execute(f"SELECT count(*) {others}")
            while cursor.fetchone()[0] and time.monotonic() < deadline:
                time.sleep(0.1)
                cursor.execute(f"SELECT count(*) {others}")
            cursor.execute(f"SELECT pg_terminate_backend(pid) {others}")
        connection.close()


@pytest.fixture
def demo_users(transactional_db):
    """The four demo accounts of `seed_demo`, all with the demo password, keyed by e-mail."""
    from accounts.models import User

    return {
        email: User.objects.create_user(
            email=email, password=DEMO_PASSWORD, role=role, first_name=first, last_name=last
        )
        for email, (role, first, last) in DEMO_USERS.items()
    }


def log_in(page, live_server, email, password=DEMO_PASSWORD):
    """Log in through the real login form and return the page where the app landed.

    Raises AssertionError with the page's error text when the login is refused.
    """
    page.goto(f"{live_server.url}/accounts/login/")
    page.locator('input[name="username"]').fill(email)
    page.locator('input[name="password"]').fill(password)
    with page.expect_navigation():
        page.locator('form:has(input[name="password"]) [type="submit"]').click()
    if urlparse(page.url).path == "/accounts/login/":
        errors = page.get_by_role("alert").all_inner_texts()
        raise AssertionError(f"login as {email} was refused: {' '.join(errors) or 'no message shown'}")
    return page


@pytest.fixture
def login():
    """`login(page, live_server, email, password=DEMO_PASSWORD)`: log in through the login page."""
    return log_in
