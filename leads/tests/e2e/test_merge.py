"""A manager merges a possible duplicate from the lead page, reads the merged timeline, and undoes it."""

from pathlib import Path

from playwright.sync_api import expect

from leads import services
from leads.models import Lead

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"


def test_manager_merges_a_duplicate_and_undoes_it(page, live_server, login, demo_users):
    sales = demo_users["sales@example.com"]
    ada = services.create_lead(
        actor=sales, name="Ada Lovelace", email="ada@old.example", company="Analytical"
    )
    twin = services.create_lead(
        actor=sales, name="Ada Lovelace", email="countess@new.example", company="Analytical", title="Countess"
    )
    services.log_activity(lead=twin, actor=sales, kind="note", body="Asked about the engine drawings")

    login(page, live_server, "manager@example.com")
    page.goto(f"{live_server.url}/leads/{ada.pk}/")
    panel = page.locator(".duplicates-panel")
    expect(panel).to_contain_text("Same name and company")
    panel.get_by_role("link", name="Merge…").click()

    expect(page.locator("h1")).to_contain_text("Merge Ada Lovelace and Ada Lovelace")
    page.get_by_label(f"E-mail from #{twin.pk}").check()
    expect(page.get_by_label(f"Job title from #{twin.pk}")).to_be_checked()  # Ada has no title of her own
    page.screenshot(path=SCREENSHOTS / "merge-page.png", full_page=True)
    page.get_by_role("button", name="Merge leads").click()

    expect(page.locator(".messages")).to_contain_text("Merged Ada Lovelace into Ada Lovelace")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("Asked about the engine drawings")
    expect(timeline).to_contain_text(f"Merged in Ada Lovelace (lead #{twin.pk})")
    expect(page.locator(".lead-facts")).to_contain_text("countess@new.example")
    page.screenshot(path=SCREENSHOTS / "merge-timeline.png", full_page=True)

    page.get_by_role("button", name="Undo merge").click()
    expect(page.locator(".messages")).to_contain_text("is a lead of its own again")
    expect(page.locator(".lead-facts")).to_contain_text("ada@old.example")
    expect(page.locator(".timeline")).not_to_contain_text("Asked about the engine drawings")
    page.goto(f"{live_server.url}/leads/{twin.pk}/")
    expect(page.locator(".lead-facts")).to_contain_text("countess@new.example")
    expect(page.locator(".timeline")).to_contain_text("Asked about the engine drawings")
    assert Lead.objects.live().filter(pk__in=[ada.pk, twin.pk]).count() == 2
