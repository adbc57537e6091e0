"""A salesperson schedules a follow-up on a lead, finds it overdue on /follow-ups/ and completes it there."""

from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from playwright.sync_api import expect

from leads import services

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"


def test_schedule_then_complete_in_place_writes_the_outcome_on_the_timeline(
    page, live_server, login, demo_users
):
    sales = demo_users["sales@example.com"]
    lead = services.create_lead(actor=sales, name="Katherine Johnson", email="katherine@nasa.example")
    login(page, live_server, "sales@example.com")

    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    schedule = page.locator("form.follow-up-schedule")
    an_hour_ago = timezone.localtime(timezone.now() - timedelta(hours=1))
    schedule.locator("[name=due_at]").fill(an_hour_ago.strftime("%Y-%m-%dT%H:%M"))
    schedule.locator("[name=title]").fill("Call about the orbit numbers")
    schedule.get_by_role("button", name="Schedule").click()
    expect(page.locator(".timeline")).to_contain_text("Call about the orbit numbers")

    page.goto(f"{live_server.url}/follow-ups/")
    overdue = page.locator(".follow-up-group-overdue")
    expect(overdue).to_contain_text("Call about the orbit numbers")
    expect(overdue.locator(".badge-overdue")).to_be_visible()
    item = overdue.locator(".follow-up").first
    item.locator("[name=outcome]").select_option("interested")
    item.locator("[name=duration_minutes]").fill("12")
    item.locator("[name=notes]").fill("Wants the full report")
    item.get_by_role("button", name="Mark done").click()

    expect(page.locator(".follow-up-group-overdue")).to_contain_text("Nothing overdue.")
    done = page.locator(".follow-up-group-done")
    expect(done).to_contain_text("Interested · 12 min")
    page.screenshot(path=str(SCREENSHOTS / "follow-ups.png"), full_page=True)

    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    expect(page.locator(".timeline")).to_contain_text("Wants the full report")
