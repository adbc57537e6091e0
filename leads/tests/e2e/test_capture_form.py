"""A prospect applies at /apply/ with a PDF resume; the manager finds the lead, its owner and the file."""

from pathlib import Path

from playwright.sync_api import expect

from leads import intake
from leads.models import Lead

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"
PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_prospect_applies_with_a_resume_and_the_manager_sees_it(
    page, live_server, login, demo_users, tmp_path
):
    sales, sales2 = demo_users["sales@example.com"], demo_users["sales2@example.com"]
    intake.update_assignment_rule(actor=demo_users["manager@example.com"], members=[sales, sales2])
    resume = tmp_path / "ada-lovelace-cv.pdf"
    resume.write_bytes(PDF_BYTES)

    page.goto(f"{live_server.url}/apply/")
    expect(page.locator(".topnav")).to_have_count(0)
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label("E-mail").fill("ada@engines.example")
    page.get_by_label("Phone").fill("+44 20 7946 0018")
    page.get_by_label("Company").fill("Analytical Engines")
    page.get_by_label("Message").fill("We would like a demo for our team.")
    page.get_by_label("Resume / CV").set_input_files(str(resume))
    page.get_by_label("I agree that you may store these details").check()
    # The honeypot is out of sight, so a person never fills it.
    expect(page.locator('input[name="website"]')).not_to_be_in_viewport()
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "capture-thanks.png", full_page=True)

    lead = Lead.objects.get(email="ada@engines.example")
    assert lead.owner == sales and lead.source.name == "Website"

    login(page, live_server, "manager@example.com")
    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    expect(page.locator("main")).to_contain_text("ada-lovelace-cv.pdf")
    expect(page.locator("main")).to_contain_text("We would like a demo for our team.")
    page.screenshot(path=SCREENSHOTS / "capture-lead.png", full_page=True)


def test_a_missing_consent_is_shown_inline_and_the_input_kept(page, live_server, demo_users):
    page.goto(f"{live_server.url}/apply/")
    page.get_by_label("First name").fill("Charles")
    page.get_by_label("E-mail").fill("charles@engines.example")
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#id_consent_error")).to_contain_text("Tick the box")
    expect(page.get_by_label("First name")).to_have_value("Charles")
    expect(page.get_by_label("E-mail")).to_have_value("charles@engines.example")
    page.screenshot(path=SCREENSHOTS / "capture-errors.png", full_page=True)
    assert not Lead.objects.exists()
