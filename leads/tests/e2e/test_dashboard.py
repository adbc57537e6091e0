"""The dashboard in Chromium: a manager and a salesperson see KPI tiles and the SVG charts."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from leads import services
from leads.models import Source, Stage

# Kept apart from test-results/, which pytest-playwright empties at the start of a run.
SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"


@pytest.fixture
def pipeline(demo_users):
    """A few leads for each seller from two sources; some moved on, one won, one lost."""
    stages = {s.name: s for s in Stage.objects.all()}
    web = Source.objects.get(name="Website")
    for email, people in [
        ("sales@example.com", [("Ada Lovelace", 5000), ("Grace Hopper", 3000), ("Alan Turing", 1200)]),
        ("sales2@example.com", [("Edsger Dijkstra", 900), ("Barbara Liskov", 4000)]),
    ]:
        seller = demo_users[email]
        for n, (name, value) in enumerate(people):
            lead = services.create_lead(
                actor=seller,
                name=name,
                email=f"{name.split()[0].lower()}@prospect.example",
                value=value,
                source=web if n % 2 else None,
            )
            lead = services.move_lead(lead=lead, stage=stages["Reached Out"], actor=seller)
            if n == 0:
                services.move_lead(lead=lead, stage=stages["Won"], actor=seller)
            elif n == 1:
                services.move_lead(lead=lead, stage=stages["Lost"], actor=seller, lost_reason="Budget")


def _check_dashboard(page):
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    tiles = page.locator("[data-kpi]")
    expect(tiles).to_have_count(6)
    # New leads: the team's five, or the salesperson's own three.
    expect(tiles.nth(1)).to_have_text("3" if "My" in page.locator("h1").inner_text() else "5")
    charts = page.locator("svg.chart-svg[role=img]")
    expect(charts).to_have_count(5)
    for index in range(5):
        expect(charts.nth(index)).to_be_visible()
    expect(page.locator("#chart-by-stage .kind-won .chart-bar")).to_be_visible()
    assert page.locator("svg.chart-empty").count() == 0  # every chart has data to draw


def test_a_manager_sees_the_team_dashboard(page, live_server, login, pipeline):
    login(page, live_server, "manager@example.com")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Team dashboard")).to_be_visible()
    _check_dashboard(page)
    expect(page.get_by_label("Owner")).to_be_visible()
    expect(page.locator("#chart-by-stage desc")).to_contain_text("Won: 2")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-manager.png", full_page=True)


def test_a_salesperson_sees_their_own_dashboard(page, live_server, login, pipeline):
    login(page, live_server, "sales@example.com")
    page.goto(f"{live_server.url}/dashboard/?range=7d")
    expect(page.get_by_role("heading", name="My dashboard")).to_be_visible()
    _check_dashboard(page)
    expect(page.get_by_label("Owner")).to_have_count(0)
    expect(page.get_by_text("Barbara Liskov")).to_have_count(0)
    expect(page.locator("#chart-by-stage desc")).to_contain_text("Won: 1")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-sales.png", full_page=True)
