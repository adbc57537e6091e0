"""A salesperson attaches a CV on the lead page, downloads it, sees a fake PDF refused, deletes it."""

from pathlib import Path

from playwright.sync_api import expect

from leads import services
from leads.models import Attachment

SCREENSHOTS = Path(__file__).resolve().parents[3] / "artifacts"
PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_attach_download_refuse_and_delete_a_file(page, live_server, login, demo_users, tmp_path):
    sales = demo_users["sales@example.com"]
    lead = services.create_lead(
        actor=sales, first_name="Grace", last_name="Hopper", email="grace@navy.example"
    )
    cv = tmp_path / "Grace Hopper CV.pdf"
    cv.write_bytes(PDF_BYTES)
    fake = tmp_path / "photo.pdf"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 17)

    login(page, live_server, "sales@example.com")
    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    files = page.locator("#files")
    expect(files).to_contain_text("No files yet.")

    files.get_by_label("Attach a file").set_input_files(str(cv))
    files.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Attached Grace Hopper CV.pdf.")
    expect(files.get_by_role("link", name="Grace Hopper CV.pdf")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("File attached")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "attachments-panel.png", full_page=True)

    with page.expect_download() as download_info:
        files.get_by_role("link", name="Grace Hopper CV.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "Grace Hopper CV.pdf"
    assert Path(download.path()).read_bytes() == PDF_BYTES

    files.get_by_label("Attach a file").set_input_files(str(fake))
    files.get_by_role("button", name="Upload").click()
    expect(page.locator("#id_attachment_file_error")).to_contain_text("named like a PDF")
    expect(page.locator("#id_attachment_file_error")).to_contain_text("a PNG image")
    page.screenshot(path=SCREENSHOTS / "attachments-refused.png", full_page=True)
    assert Attachment.objects.count() == 1

    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    files.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete Grace Hopper CV.pdf?")).to_be_visible()
    page.get_by_role("button", name="Delete file").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted Grace Hopper CV.pdf.")
    expect(files).to_contain_text("No files yet.")
    assert Attachment.objects.get().deleted_by == sales
