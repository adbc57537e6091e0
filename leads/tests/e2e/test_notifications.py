"""A salesperson sees the bell count, opens the notice from /notifications/ and lands on the lead."""

import re

from playwright.sync_api import expect

from leads import services


def test_a_reassigned_lead_rings_the_bell_and_opening_it_reads_it(page, live_server, login, demo_users):
    manager, sales = demo_users["manager@example.com"], demo_users["sales@example.com"]
    first = services.create_lead(actor=manager, name="Grace Hopper", email="grace@prospect.example")
    second = services.create_lead(actor=manager, name="Alan Turing", email="alan@prospect.example")
    # Outside a test transaction the notices are written on commit, as in production.
    services.reassign_lead(lead=first, owner=sales, actor=manager)
    services.reassign_lead(lead=second, owner=sales, actor=manager)

    login(page, live_server, "sales@example.com")
    bell = page.get_by_role("link", name="Notifications, 2 unread")
    expect(bell).to_be_visible()
    expect(bell.locator("[data-unread-count]")).to_have_text("2")

    bell.click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    page.get_by_role("button", name="Lead Grace Hopper was assigned to you").click()

    expect(page).to_have_url(f"{live_server.url}/leads/{first.pk}/")
    expect(page.get_by_role("link", name="Notifications, 1 unread")).to_be_visible()

    page.goto(f"{live_server.url}/notifications/")
    page.get_by_role("button", name="Mark all read").click()
    expect(page.get_by_text("Marked 1 notification read.")).to_be_visible()
    expect(page.get_by_role("link", name="Notifications, 0 unread")).to_be_attached()
    # At zero the count is clipped to nothing on screen (it stays in the link's accessible name).
    expect(page.locator("#notification-bell")).not_to_have_class(re.compile("has-unread"))
    box = page.locator("#notification-bell [data-unread-count]").bounding_box()
    assert box["width"] <= 1 and box["height"] <= 1
