"""A manager invites someone from the Users page; the invitee sets a password from the e-mail and logs in."""

import re
from pathlib import Path

from django.core import mail
from playwright.sync_api import expect

from accounts.models import User

# Kept apart from test-results/, which pytest-playwright empties at the start of a run.
SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"
INVITEE_PASSWORD = "a-brand-new-passphrase"


def test_manager_invites_and_the_invitee_sets_a_password_and_logs_in(
    browser, page, live_server, login, demo_users, settings
):
    # The e-mail's link must point at this server; locmem mail (root conftest) fills mail.outbox
    # from the live server's thread, which shares this process.
    settings.SITE_URL = live_server.url
    login(page, live_server, "manager@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page).to_have_title(re.compile("Users"))

    invite = page.get_by_role("region", name="Invite someone")
    invite.get_by_label("E-mail").fill("ivy@example.com")
    invite.get_by_label("First name").fill("Ivy")
    invite.get_by_label("Last name").fill("Invitee")
    expect(invite.get_by_label("Role").locator("option")).to_have_text(["Manager", "Sales"])
    invite.get_by_label("Role").select_option(label="Sales")
    invite.get_by_role("button", name="Send invitation", exact=True).click()

    expect(page.locator(".messages")).to_contain_text("Invited Ivy Invitee (ivy@example.com)")
    expect(page.locator("table")).to_contain_text("ivy@example.com")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "users.png", full_page=True)

    [message] = [m for m in mail.outbox if m.to == ["ivy@example.com"]]
    link = re.search(r"https?://\S+/accounts/invite/\S+/", message.body).group(0)
    assert link.startswith(live_server.url)

    invitee = browser.new_context()
    invitee_page = invitee.new_page()
    invitee_page.goto(link)
    expect(invitee_page.get_by_role("heading", name="Choose your password")).to_be_visible()
    invitee_page.get_by_label("New password", exact=True).fill(INVITEE_PASSWORD)
    invitee_page.get_by_label("New password confirmation").fill(INVITEE_PASSWORD)
    invitee_page.screenshot(path=SCREENSHOTS / "invite-set-password.png", full_page=True)
    invitee_page.get_by_role("button", name="Set password and log in").click()

    expect(invitee_page).to_have_url(re.compile(r"/board/$"))
    expect(invitee_page.locator(".messages")).to_contain_text("your password is set")
    expect(invitee_page.locator(".who")).to_contain_text("Ivy Invitee")

    # The link worked once; afterwards it says so, and the new password logs in.
    invitee_page.get_by_role("button", name="Log out", exact=True).click()
    invitee_page.goto(link)
    expect(invitee_page.get_by_role("alert")).to_contain_text("expired or has already been used")
    login(invitee_page, live_server, "ivy@example.com", INVITEE_PASSWORD)
    expect(invitee_page).to_have_url(re.compile(r"/board/$"))
    invitee.close()

    assert User.objects.get(email="ivy@example.com").check_password(INVITEE_PASSWORD)
