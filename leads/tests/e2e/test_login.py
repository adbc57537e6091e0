"""Logging in through the real login page in Chromium: the smoke test for the browser suite."""

import re

from playwright.sync_api import expect


def test_login_page_shows_the_form(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")

    expect(page).to_have_title(re.compile("Log in"))
    expect(page.get_by_label("E-mail")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_login_page_stylesheets_load(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")

    hrefs = page.eval_on_selector_all('link[rel="stylesheet"]', "links => links.map(l => l.href)")
    assert hrefs, "the login page links no stylesheet"
    for href in hrefs:
        response = page.request.get(href)
        assert response.ok, f"{href} answered {response.status}"


def test_wrong_password_shows_an_error(page, live_server, demo_users):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail").fill("sales@example.com")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    # The e-mail stays filled in so the person only retypes the password.
    expect(page.get_by_label("E-mail")).to_have_value("sales@example.com")


def test_correct_login_lands_on_the_board(page, live_server, demo_users, login):
    login(page, live_server, "sales@example.com")

    expect(page).to_have_url(re.compile(r"/board/$"))
    expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()


def test_too_many_wrong_passwords_lock_the_account_with_a_clear_message(
    page, live_server, demo_users, settings
):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("E-mail").fill("Sales@Example.com")
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")
    expect(page.get_by_role("alert")).to_contain_text("ask an administrator")

    # Locked: even the right password is refused until the cool-off ends or an admin unlocks.
    page.get_by_label("Password").fill("leadboard-demo")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")


def test_log_out_everywhere_ends_the_other_browsers_session(page, browser, live_server, demo_users, login):
    other = browser.new_context().new_page()
    login(other, live_server, "sales@example.com")
    login(page, live_server, "sales@example.com")

    page.get_by_role("button", name="Log out everywhere").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("status")).to_contain_text("logged out on every device")
    other.goto(f"{live_server.url}/board/")
    expect(other).to_have_url(re.compile(r"/accounts/login/"))
    other.context.close()
