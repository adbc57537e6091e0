"""The live board in Chromium: a manager's move shows up on a salesperson's open board, no reload.

WebSockets need an ASGI server, and pytest-django's live_server is WSGI-only, so these tests
start their own: uvicorn, in a thread of this process, serving config.asgi (HTTP and WebSockets)
wrapped in staticfiles' ASGI handler. Being in-process is what makes it work on both databases
without extra setup: the server's threads open their own connections to the same test database
(PostgreSQL's test database, or SQLite's shared-cache in-memory one, which a subprocess could not
see), and the in-memory channel layer is shared because the views' broadcasts run on uvicorn's
event loop, the one the consumers listen on.
"""

import re
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from leads import services

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"


@pytest.fixture
def asgi_live_server(settings):
    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from config.asgi import application

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        ASGIStaticFilesHandler(application),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        ws="websockets-sansio",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="asgi-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the ASGI test server did not start")
        time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def leads(demo_users):
    sales = demo_users["sales@example.com"]
    return [
        services.create_lead(
            actor=sales, name=name, email=f"{name.split()[0].lower()}@prospect.example", value=value
        )
        for name, value in [("Ada Lovelace", 5000), ("Grace Hopper", 3000)]
    ]


def column(page, stage_name):
    return page.locator(f'.column[data-stage-name="{stage_name}"]')


def _open_board(browser, server, login, email):
    context = browser.new_context()
    page = context.new_page()
    login(page, server, email)
    expect(page.locator("#live-status")).to_have_text("Live")
    return context, page


def test_a_managers_move_appears_on_the_salespersons_board_without_reload(
    browser, asgi_live_server, login, leads
):
    ada = leads[0]
    manager_context, manager_page = _open_board(browser, asgi_live_server, login, "manager@example.com")
    sales_context, sales_page = _open_board(browser, asgi_live_server, login, "sales@example.com")
    expect(column(sales_page, "New Lead").locator("[data-count]")).to_have_text("2")
    sales_page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    card = manager_page.locator(f"#lead-{ada.pk}")
    card.get_by_label("Move Ada Lovelace to").select_option(label="In Progress")
    card.get_by_role("button", name="Move").click()
    expect(column(manager_page, "In Progress").locator(f"#lead-{ada.pk}")).to_be_visible()

    in_progress = column(sales_page, "In Progress")
    expect(in_progress.locator(f"#lead-{ada.pk}")).to_be_visible(timeout=2000)
    expect(in_progress.locator("[data-count]")).to_have_text("1", timeout=2000)
    expect(in_progress.locator("[data-total]")).to_have_text("5,000")
    expect(column(sales_page, "New Lead").locator("[data-count]")).to_have_text("1")
    expect(column(sales_page, "New Lead").locator(f"#lead-{ada.pk}")).to_have_count(0)
    assert sales_page.evaluate("window.__sameDocument") is True
    # The card that arrived live still moves: its form carries the new version.
    expect(in_progress.locator(f"#lead-{ada.pk} input[name=version]")).to_have_value(str(ada.version + 1))

    SCREENSHOTS.mkdir(exist_ok=True)
    sales_page.screenshot(path=SCREENSHOTS / "live-board.png", full_page=True)
    manager_context.close()
    sales_context.close()


def test_a_card_picked_up_with_the_keyboard_is_not_yanked_away(browser, asgi_live_server, login, leads):
    grace = leads[1]
    manager_context, manager_page = _open_board(browser, asgi_live_server, login, "manager@example.com")
    sales_context, sales_page = _open_board(browser, asgi_live_server, login, "sales@example.com")
    card = sales_page.locator(f"#lead-{grace.pk}")
    card.focus()
    sales_page.keyboard.press("Space")
    expect(card).to_have_class(re.compile(r"\bpicked\b"))

    # The manager moves it meanwhile. (Through their page, not services.move_lead here: this
    # thread runs Playwright's event loop, and the broadcast must run on the server's.)
    manager_card = manager_page.locator(f"#lead-{grace.pk}")
    manager_card.get_by_label("Move Grace Hopper to").select_option(label="Won")
    manager_card.get_by_role("button", name="Move").click()
    expect(column(manager_page, "Won").locator(f"#lead-{grace.pk}")).to_be_visible()
    expect(column(sales_page, "Won").locator("[data-count]")).to_have_text("0")
    sales_page.wait_for_timeout(700)  # long enough for the note to arrive and be held back
    expect(column(sales_page, "New Lead").locator(f"#lead-{grace.pk}")).to_be_visible()
    expect(card).to_have_class(re.compile(r"\bpicked\b"))

    sales_page.keyboard.press("Escape")  # put it down: now the change applies
    expect(column(sales_page, "Won").locator(f"#lead-{grace.pk}")).to_be_visible(timeout=2000)
    expect(column(sales_page, "Won").locator("[data-count]")).to_have_text("1")
    manager_context.close()
    sales_context.close()
