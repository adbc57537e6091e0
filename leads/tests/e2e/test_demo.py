"""The demo that `make run` serves: seed_demo's data on the board, as its sales login sees it."""

from django.core.management import call_command
from playwright.sync_api import expect

from leads.models import Lead, Stage


def test_demo_board_shows_every_stage_with_the_seeded_leads(page, live_server, login):
    call_command("seed_demo", "--force", verbosity=0)
    login(page, live_server, "sales@example.com", "leadboard-demo")

    columns = page.locator(".column")
    expect(columns).to_have_count(Stage.objects.filter(archived=False).count())
    shown_total = sum(int(c.replace(",", "")) for c in page.locator("[data-count]").all_inner_texts())
    assert shown_total == Lead.objects.live().count() == 200  # "read" sharing: the whole team's board
    expect(page.locator(".lead-card").first).to_be_visible()
    # Sam can move his own cards, and only read Jordan's.
    own = page.locator(".lead-card[draggable]").first
    expect(own.get_by_role("button", name="Move")).to_be_visible()
    expect(page.locator(".lead-card:not([draggable])").first.locator(".card-readonly")).to_be_visible()
