"""The Content Security Policy in Chromium: every main page loads without a single CSP violation.

The policy (config/settings.py) allows scripts and styles from our own static files only, so an
inline <script>, <style>, style="..." or onclick=... anywhere on these pages would be refused and
reported here. Violations are caught twice: Chromium's console message ("Refused to ...") and the
page's `securitypolicyviolation` event, forwarded by a script Playwright injects outside the
policy. The board's drag-and-drop and its live socket are exercised under the policy too; the
pages run on the in-process ASGI server (HTTP and WebSockets) of test_live_board.py.
"""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from leads import services
from leads.models import Lead, Stage
from leads.tests.e2e.test_live_board import asgi_live_server  # noqa: F401 (a fixture)

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ` +
    `${event.sourceFile || location.pathname}:${event.lineNumber} (sample: ${event.sample || "-"})`
  );
});
"""


class ViolationWatcher:
    """Collects CSP violations (console and events) of one browser context, page by page."""

    def __init__(self, context):
        self.found = []
        self.current = "(before the first page)"
        context.expose_function("__cspViolation", lambda text: self.found.append(f"{self.current}: {text}"))
        context.add_init_script(REPORT_VIOLATIONS)

    def watch(self, page):
        page.on("console", self._console)
        return page

    def _console(self, message):
        text = message.text
        if "Content Security Policy" in text or text.startswith("Refused to"):
            self.found.append(f"{self.current}: console {message.type}: {text}")

    def visit(self, page, url, ready):
        """Open url, wait until `ready` (a locator on that page) shows, and let late loads finish."""
        self.current = url
        page.goto(url)
        expect(ready(page)).to_be_visible()
        page.wait_for_load_state("networkidle")


@pytest.fixture
def pipeline(demo_users):
    sales = demo_users["sales@example.com"]
    leads = [
        services.create_lead(
            actor=sales, name=name, email=f"{name.split()[0].lower()}@prospect.example", value=value
        )
        for name, value in [("Ada Lovelace", 5000), ("Grace Hopper", 3000)]
    ]
    services.move_lead(lead=leads[0], stage=Stage.objects.get(name="Won"), actor=sales)
    return leads


def test_every_main_page_respects_the_content_security_policy(browser, asgi_live_server, login, pipeline):  # noqa: F811
    server = asgi_live_server.url
    context = browser.new_context()
    watcher = ViolationWatcher(context)
    page = watcher.watch(context.new_page())

    # Logged out: the login page and the public capture form.
    watcher.visit(page, f"{server}/accounts/login/", lambda p: p.locator('input[name="password"]'))
    watcher.visit(page, f"{server}/apply/", lambda p: p.get_by_role("heading", level=1))

    watcher.current = "login"
    login(page, asgi_live_server, "manager@example.com")
    ada, grace = pipeline
    pages = [
        ("/board/", lambda p: p.locator(f"#lead-{grace.pk}")),
        (f"/leads/{grace.pk}/", lambda p: p.get_by_role("heading", name="Grace Hopper")),
        ("/dashboard/", lambda p: p.locator("svg.chart-svg").first),
        ("/imports/", lambda p: p.get_by_role("heading", level=1)),
        ("/follow-ups/", lambda p: p.get_by_role("heading", level=1)),
        ("/accounts/users/", lambda p: p.get_by_role("heading", level=1)),
        ("/notifications/", lambda p: p.get_by_role("heading", level=1)),
        ("/admin/", lambda p: p.locator("#content")),
        ("/admin/leads/lead/", lambda p: p.locator("#result_list")),
        (f"/admin/leads/lead/{grace.pk}/change/", lambda p: p.locator("#lead_form")),
        ("/api/docs/", lambda p: p.locator(".swagger-ui .info")),
        ("/api/leads/", lambda p: p.locator(".response-info")),  # the browsable API
    ]
    for path, ready in pages:
        watcher.visit(page, f"{server}{path}", ready)
        if path == "/dashboard/":
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=SCREENSHOTS / "csp-dashboard.png", full_page=True)

    # The board under the policy: the live socket connects and drag-and-drop moves a card.
    watcher.visit(page, f"{server}/board/", lambda p: p.locator(f"#lead-{grace.pk}"))
    expect(page.locator("#live-status")).to_have_text("Live")
    page.evaluate("window.__sameDocument = true")  # gone if the move reloads the page
    target = page.locator('.column[data-stage-name="Reached Out"]')
    page.locator(f"#lead-{grace.pk}").drag_to(target.locator(".cards"))
    expect(target.locator(f"#lead-{grace.pk}")).to_be_visible()
    expect(target.locator("[data-count]")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True  # moved by board.js, not a form post
    assert Lead.objects.get(pk=grace.pk).stage.name == "Reached Out"
    page.screenshot(path=SCREENSHOTS / "csp-board.png", full_page=True)

    context.close()
    assert watcher.found == [], "CSP violations:\n" + "\n".join(watcher.found)


def test_the_violation_watcher_catches_an_inline_script(browser, asgi_live_server, login, demo_users):  # noqa: F811
    """The watcher above must be able to fail: an inline script on our page is refused and reported."""
    context = browser.new_context()
    watcher = ViolationWatcher(context)
    page = watcher.watch(context.new_page())
    watcher.visit(
        page, f"{asgi_live_server.url}/accounts/login/", lambda p: p.locator('input[name="password"]')
    )
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
                   document.body.append(s); }"""
    )
    for _ in range(40):  # the report arrives asynchronously; up to 2 seconds
        if watcher.found:
            break
        page.wait_for_timeout(50)
    assert page.evaluate("window.__ran") is None  # refused, not run
    context.close()
    assert any("script-src" in found for found in watcher.found), watcher.found
