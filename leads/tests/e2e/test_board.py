"""The board and lead page in Chromium: moves by form, drag-and-drop and keyboard; notes; errors."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from leads import services
from leads.models import Activity, Lead, Stage

# Kept apart from test-results/, which pytest-playwright empties at the start of a run.
SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"


@pytest.fixture
def pipeline(demo_users):
    """A few leads for sales@example.com and one for sales2, created through the services."""
    sales = demo_users["sales@example.com"]
    leads = {
        name: services.create_lead(
            actor=sales,
            name=name,
            email=f"{name.split()[0].lower()}@prospect.example",
            company=company,
            value=value,
        )
        for name, company, value in [
            ("Ada Lovelace", "Analytical Engines", 5000),
            ("Grace Hopper", "Compilers Inc", 3000),
            ("Alan Turing", "Bletchley", 1200),
        ]
    }
    services.create_lead(actor=demo_users["sales2@example.com"], name="Someone Else", phone="+442079460000")
    return leads


def column(page, stage_name):
    return page.locator(f'.column[data-stage-name="{stage_name}"]')


def card(page, lead):
    return page.locator(f"#lead-{lead.pk}")


def test_sales_sees_the_board_with_counts(page, live_server, login, pipeline):
    login(page, live_server, "sales@example.com")
    new = column(page, "New Lead")
    expect(new.locator("[data-count]")).to_have_text("4")
    expect(new.locator("[data-total]")).to_have_text("9,200")
    expect(new.get_by_role("link", name="Ada Lovelace")).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "board.png", full_page=True)


def test_move_a_card_with_its_form_without_javascript(browser, live_server, login, pipeline):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    login(page, live_server, "sales@example.com")
    ada = pipeline["Ada Lovelace"]
    card(page, ada).get_by_label("Move Ada Lovelace to").select_option(label="In Progress")
    card(page, ada).get_by_role("button", name="Move").click()

    expect(page.get_by_role("status")).to_contain_text("Moved Ada Lovelace to In Progress.")
    expect(column(page, "In Progress").get_by_role("link", name="Ada Lovelace")).to_be_visible()
    expect(column(page, "In Progress").locator("[data-count]")).to_have_text("1")
    move = Lead.objects.get(pk=ada.pk).activities.get(kind=Activity.Kind.STAGE_CHANGED)
    assert (move.actor.email, move.data["from"], move.data["to"]) == (
        "sales@example.com",
        "New Lead",
        "In Progress",
    )
    context.close()


def test_drag_and_drop_moves_the_card_and_updates_both_columns(page, live_server, login, pipeline):
    login(page, live_server, "sales@example.com")
    grace = pipeline["Grace Hopper"]
    card(page, grace).drag_to(column(page, "Reached Out").locator(".cards"))

    expect(column(page, "Reached Out").locator(f"#lead-{grace.pk}")).to_be_visible()
    expect(column(page, "Reached Out").locator("[data-count]")).to_have_text("1")
    expect(column(page, "Reached Out").locator("[data-total]")).to_have_text("3,000")
    expect(column(page, "New Lead").locator("[data-count]")).to_have_text("3")
    expect(page).to_have_url(re.compile(r"/board/$"))  # no reload happened
    assert Lead.objects.get(pk=grace.pk).stage.name == "Reached Out"
    # The moved card carries the new version, so a second move is not refused as stale.
    card(page, grace).drag_to(column(page, "In Progress").locator(".cards"))
    expect(column(page, "In Progress").locator(f"#lead-{grace.pk}")).to_be_visible()
    assert Lead.objects.get(pk=grace.pk).version == 3


def test_drop_on_lost_asks_for_a_reason(page, live_server, login, pipeline):
    login(page, live_server, "sales@example.com")
    alan = pipeline["Alan Turing"]
    card(page, alan).drag_to(column(page, "Lost").locator(".cards"))
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Move to lost").click()
    expect(dialog.get_by_text("Say why the lead was lost.")).to_be_visible()
    dialog.get_by_label("Reason").fill("Went with a competitor")
    dialog.get_by_role("button", name="Move to lost").click()

    expect(column(page, "Lost").locator(f"#lead-{alan.pk}")).to_be_visible()
    lead = Lead.objects.get(pk=alan.pk)
    assert (lead.stage.name, lead.lost_reason) == ("Lost", "Went with a competitor")


def test_keyboard_moves_a_card(page, live_server, login, pipeline):
    login(page, live_server, "sales@example.com")
    ada = pipeline["Ada Lovelace"]
    card(page, ada).focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(column(page, "No Response")).to_have_class(re.compile("drop-target"))
    page.keyboard.press("Enter")

    expect(column(page, "No Response").locator(f"#lead-{ada.pk}")).to_be_visible()
    expect(page.locator("#board-live")).to_contain_text("Moved Ada Lovelace to No Response.")
    assert Lead.objects.get(pk=ada.pk).stage == Stage.objects.get(name="No Response")


def test_stale_drag_shows_who_changed_the_lead(page, live_server, login, pipeline, demo_users):
    login(page, live_server, "sales@example.com")
    ada = pipeline["Ada Lovelace"]
    services.move_lead(lead=ada, stage=Stage.objects.get(name="Won"), actor=demo_users["manager@example.com"])
    card(page, ada).drag_to(column(page, "Reached Out").locator(".cards"))
    expect(page.locator(".message-error")).to_contain_text("changed by Max Manager")
    assert Lead.objects.get(pk=ada.pk).stage.name == "Won"
    # The board now shows the lead as it is (in Won), and the next move is not stale too.
    expect(column(page, "Won").locator(f"#lead-{ada.pk}")).to_be_visible()
    expect(column(page, "Won").locator("[data-count]")).to_have_text("1")
    card(page, ada).drag_to(column(page, "Reached Out").locator(".column-head"))
    expect(column(page, "Reached Out").locator(f"#lead-{ada.pk}")).to_be_visible()
    assert Lead.objects.get(pk=ada.pk).stage.name == "Reached Out"


def test_add_a_note_on_the_lead_page(page, live_server, login, pipeline):
    login(page, live_server, "sales@example.com")
    page.get_by_role("link", name="Ada Lovelace").click()
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    page.get_by_label("Summary").fill("Asked for a demo next Tuesday")
    page.get_by_role("button", name="Log it").click()

    expect(page.get_by_role("status")).to_contain_text("Note logged.")
    expect(page.locator(".timeline")).to_contain_text("Asked for a demo next Tuesday")
    assert Activity.objects.filter(kind="note", body="Asked for a demo next Tuesday").exists()


def test_quick_add_shows_form_errors_inline(page, live_server, login, pipeline):
    login(page, live_server, "sales@example.com")
    page.get_by_text("Add a lead").click()
    page.get_by_label("Name").fill("Copy of Ada")
    page.get_by_label("E-mail").fill("ADA@prospect.example")
    page.get_by_role("button", name="Add lead").click()

    expect(page.locator(".quick-add")).to_contain_text("already has this e-mail")
    expect(page.get_by_role("link", name=re.compile(r"Ada Lovelace \(#\d+\)"))).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value("Copy of Ada")
    assert Lead.objects.count() == 4
