"""A manager reassigns a lead in Django admin, and the lead's timeline says so."""

from playwright.sync_api import expect

from leads import services
from leads.models import Activity, Lead


def test_manager_reassigns_in_admin_and_the_timeline_records_it(page, live_server, login, demo_users):
    sales, sales2 = demo_users["sales@example.com"], demo_users["sales2@example.com"]
    lead = services.create_lead(actor=sales, name="Hedy Lamarr", email="hedy@prospect.example")

    login(page, live_server, "manager@example.com")
    page.goto(f"{live_server.url}/admin/leads/lead/")
    page.locator(f'input[name="_selected_action"][value="{lead.pk}"]').check()
    page.locator('select[name="action"]').select_option(label="Reassign owner…")
    page.get_by_role("button", name="Go").click()
    page.locator(".select2-selection").first.click()
    page.locator(".select2-search__field").fill(sales2.first_name)
    page.get_by_role("option", name=str(sales2)).click()
    page.locator('form input[type="submit"], form button[type="submit"]').filter(
        has_text="Reassign"
    ).first.click()
    expect(page.locator(".messagelist")).to_contain_text(f"Gave 1 lead to {sales2}.")

    assert Lead.objects.get(pk=lead.pk).owner == sales2
    change = Activity.objects.get(lead=lead, kind=Activity.Kind.OWNER_CHANGED)
    assert change.actor == demo_users["manager@example.com"]

    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    expect(page.locator(".timeline")).to_contain_text(f"Owner changed from {sales} to {sales2}")
