"""The public capture form at /apply/: what a prospect sees, and the lead (or news on a lead) it makes."""

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.roles import Role
from leads import intake
from leads.events import lead_changed
from leads.models import Activity, AssignmentRule, Attachment, Lead, Source
from leads.tests.factories import LeadFactory, UserFactory

APPLY = reverse("leads:apply")
THANKS = reverse("leads:apply_thanks")
PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def pdf(name="resume.pdf"):
    return SimpleUploadedFile(name, PDF_BYTES, content_type="application/pdf")


def form_data(**overrides):
    data = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": "grace@navy.example",
        "phone": "+1 212 555 0123",
        "company": "Navy Labs",
        "message": "We need a compiler.",
        "consent": "on",
        "website": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def events():
    seen = []

    def receiver(sender, event, lead_id, actor_id, payload, **kwargs):
        seen.append((event, lead_id, payload))

    lead_changed.connect(receiver)
    yield seen
    lead_changed.disconnect(receiver)


@pytest.fixture
def rotation(db):
    manager = UserFactory(role=Role.MANAGER)
    sellers = [UserFactory(role=Role.SALES), UserFactory(role=Role.SALES)]
    intake.update_assignment_rule(actor=manager, members=sellers)
    return sellers


@pytest.mark.django_db
def test_the_form_needs_no_login_and_shows_no_nav(client):
    response = client.get(APPLY)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="consent"' in html and 'type="file"' in html and 'enctype="multipart/form-data"' in html
    assert 'class="topnav"' not in html
    # The honeypot is there for bots, out of reach for people.
    assert 'name="website"' in html and 'tabindex="-1"' in html and 'aria-hidden="true"' in html


@pytest.mark.django_db
def test_a_submission_makes_a_website_lead_for_the_next_salesperson(
    client, rotation, events, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(APPLY, form_data(resume=pdf()), REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 302 and response["Location"] == THANKS
    lead = Lead.objects.select_related("source", "stage", "owner").get()
    assert (lead.first_name, lead.last_name, lead.email, lead.phone, lead.company) == (
        "Grace",
        "Hopper",
        "grace@navy.example",
        "+12125550123",
        "Navy Labs",
    )
    assert lead.source.name == "Website"
    assert lead.stage.name == "New Lead"
    assert lead.owner == rotation[0]
    assert lead.created_by is None
    captured = lead.activities.get(kind=Activity.Kind.CAPTURED)
    assert captured.body == "We need a compiler."
    assert captured.actor is None
    assert captured.data["ip"] == "203.0.113.9" and captured.data["consent_at"]
    attachment = Attachment.objects.get(lead=lead)
    assert attachment.filename == "resume.pdf" and attachment.content_type == "application/pdf"
    assert captured.data["attachment_id"] == attachment.pk
    names = [event for event, lead_id, _ in events if lead_id == lead.pk]
    assert names.index("lead.created") < names.index("lead.captured")

    thanks = client.get(THANKS)
    assert thanks.status_code == 200 and b"Thank you" in thanks.content


@pytest.mark.django_db
def test_a_missing_website_source_is_made(client):
    Source.objects.filter(name="Website").delete()

    client.post(APPLY, form_data())

    assert Lead.objects.get().source.name == "Website"


@pytest.mark.django_db
def test_an_archived_website_source_still_takes_prospects(client):
    """Archiving stops people picking a source; it must not turn prospects away."""
    Source.objects.filter(name="Website").update(archived=True)

    response = client.post(APPLY, form_data())

    assert response.status_code == 302
    assert Lead.objects.get().source.name == "Website"


@pytest.mark.django_db
def test_errors_are_shown_inline_and_keep_what_was_typed(client):
    response = client.post(APPLY, form_data(email="not-an-email", phone="12", first_name=""))

    assert response.status_code == 400
    html = response.content.decode()
    assert "Tell us your first name." in html
    assert 'id="id_email_error"' in html and 'id="id_phone_error"' in html
    assert 'value="not-an-email"' in html and 'value="Navy Labs"' in html
    assert "We need a compiler." in html
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_service_errors_land_on_their_fields_and_keep_input(client):
    response = client.post(APPLY, form_data(phone="12345"))

    assert response.status_code == 400
    assert response.context["form"].errors["phone"]
    assert 'value="grace@navy.example"' in response.content.decode()
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_consent_is_required(client):
    response = client.post(APPLY, form_data(consent=None))

    assert response.status_code == 400
    assert "Tick the box" in response.content.decode()
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_text_fields_have_max_lengths(client):
    response = client.post(APPLY, form_data(message="x" * 5001, company="c" * 201))

    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"message", "company"}
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_a_bad_file_is_a_clear_error_and_nothing_is_created(client, rotation):
    fake = SimpleUploadedFile(
        "resume.pdf", b"MZ\x90\x00 not a pdf at all \x00\xff", content_type="application/pdf"
    )

    response = client.post(APPLY, form_data(resume=fake))

    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_resume_error"' in html and "resume.pdf" in html
    assert "choose it again" in html
    assert 'value="grace@navy.example"' in html
    assert not Lead.objects.exists() and not Attachment.objects.exists()
    assert AssignmentRule.objects.get().last_assigned is None  # nobody's turn was used up


@pytest.mark.django_db
def test_a_filled_honeypot_looks_like_success_but_creates_nothing(client, events):
    real = client.post(APPLY, form_data(email="real@example.com", phone=""))
    bot = client.post(APPLY, form_data(email="bot@example.com", phone="", website="http://spam.example"))

    assert (bot.status_code, bot["Location"]) == (real.status_code, real["Location"])
    assert list(Lead.objects.values_list("email", flat=True)) == ["real@example.com"]


@pytest.mark.django_db
def test_the_rate_limit_answers_429_with_a_page_and_retry_after(client, settings):
    settings.PUBLIC_FORM_RATE = "3/hour"
    for n in range(3):
        assert client.post(APPLY, form_data(email=f"p{n}@example.com", phone="")).status_code == 302

    response = client.post(APPLY, form_data(email="p4@example.com", phone=""))

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600
    assert b"Too many submissions" in response.content and b"try again" in response.content
    assert Lead.objects.count() == 3
    # Another address is not held back, and reading the form is never limited.
    other = Client()
    assert (
        other.post(APPLY, form_data(email="p5@example.com", phone=""), REMOTE_ADDR="198.51.100.7").status_code
        == 302
    )
    assert client.get(APPLY).status_code == 200


@pytest.mark.django_db
def test_an_oversized_body_is_refused_with_413_before_it_is_read(client, settings, monkeypatch):
    settings.ATTACHMENT_MAX_BYTES = 1024
    big = SimpleUploadedFile("resume.pdf", PDF_BYTES + b"0" * (1024 * 1024 + 2048))
    read = []
    monkeypatch.setattr("django.http.request.HttpRequest._load_post_and_files", lambda self: read.append(1))

    response = client.post(APPLY, form_data(resume=big))

    assert response.status_code == 413
    assert b"too large" in response.content and b"at most" in response.content
    assert read == [] and not Lead.objects.exists()


@pytest.mark.django_db
def test_the_form_checks_csrf_like_every_form():
    client = Client(enforce_csrf_checks=True)
    response = client.post(APPLY, form_data())
    assert response.status_code == 403 and not Lead.objects.exists()


@pytest.mark.parametrize("match", ["email", "phone"])
@pytest.mark.django_db
def test_a_second_submission_adds_to_the_existing_lead(
    client, sales, match, events, django_capture_on_commit_callbacks
):
    existing = LeadFactory(owner=sales, email="grace@navy.example", phone="+12125550123", first_name="G")
    other = {"phone": "+1 617 555 0199"} if match == "email" else {"email": "grace.new@navy.example"}

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(APPLY, form_data(**other, message="Still keen.", resume=pdf("cv2.pdf")))

    assert response.status_code == 302 and response["Location"] == THANKS
    assert Lead.objects.count() == 1
    existing.refresh_from_db()
    assert existing.owner == sales and existing.first_name == "G"  # nothing overwritten
    again = existing.activities.get(kind=Activity.Kind.SUBMITTED_AGAIN)
    assert again.body == "Still keen."
    assert again.data["submitted"]["first_name"] == "Grace"
    assert again.data["submitted"]["company"] == "Navy Labs"
    attachment = existing.attachments.get()
    assert attachment.filename == "cv2.pdf" and again.data["attachment_id"] == attachment.pk
    assert not existing.activities.filter(kind=Activity.Kind.CAPTURED).exists()
    assert ("lead.resubmitted", existing.pk, {"activity_id": again.pk}) in events
    assert "lead.captured" not in [event for event, _, _ in events]


@pytest.mark.django_db
def test_a_deleted_lead_does_not_swallow_a_new_submission(client, sales):
    gone = LeadFactory(owner=sales, email="grace@navy.example")
    from leads import services

    manager = UserFactory(role=Role.MANAGER)
    services.delete_lead(lead=gone, actor=manager)

    client.post(APPLY, form_data())

    assert Lead.objects.live().get().activities.filter(kind=Activity.Kind.CAPTURED).exists()


@pytest.mark.django_db
def test_new_and_repeat_submissions_look_the_same_to_the_prospect(client):
    first = client.post(APPLY, form_data(), follow=True)
    second = client.post(APPLY, form_data(), follow=True)

    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert Lead.objects.count() == 1


@pytest.mark.django_db
def test_form_query_counts(client, rotation, django_assert_max_num_queries):
    with django_assert_max_num_queries(0):
        assert client.get(APPLY).status_code == 200
    with django_assert_max_num_queries(0):
        assert client.get(THANKS).status_code == 200
    client.post(APPLY, form_data(email="warm@example.com", phone=""))  # the rule row exists
    with django_assert_max_num_queries(26):
        assert client.post(APPLY, form_data(resume=pdf())).status_code == 302
    with django_assert_max_num_queries(12):
        assert client.post(APPLY, form_data(message="again", resume=pdf())).status_code == 302
    with django_assert_max_num_queries(0):
        assert client.post(APPLY, form_data(consent=None)).status_code == 400


@pytest.mark.django_db
def test_a_lead_created_meanwhile_gets_the_submission_and_nobody_loses_a_turn(rotation, sales, monkeypatch):
    # As if a concurrent submission created the lead between the lookup and the insert.
    existing = LeadFactory(owner=sales, email="grace@navy.example", phone="")
    monkeypatch.setattr(intake, "_live_lead_with", lambda email, phone: None)

    result = intake.capture_lead(
        first_name="Grace", last_name="", email="grace@navy.example", phone="", company="",
        message="Race", consent=True,
    )  # fmt: skip

    assert not result.created and result.lead.pk == existing.pk
    assert result.activity.kind == Activity.Kind.SUBMITTED_AGAIN
    assert Lead.objects.count() == 1
    assert AssignmentRule.objects.get().last_assigned is None
