"""POST /api/public/leads/: the capture form for other websites; no auth, one answer whatever happened."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.roles import Role
from leads import intake
from leads.models import Activity, Attachment, Lead
from leads.tests.api.contract import assert_error
from leads.tests.factories import LeadFactory, UserFactory

URL = reverse("api:public_lead_create")
PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
RECEIVED = {"status": "received"}


def body(**overrides):
    data = {
        "first_name": "Katherine",
        "last_name": "Johnson",
        "email": "katherine@nasa.example",
        "phone": "+1 415 555 0142",
        "company": "NASA",
        "message": "Orbital mechanics, please.",
        "consent": True,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def rotation(db):
    sellers = [UserFactory(role=Role.SALES), UserFactory(role=Role.SALES)]
    intake.update_assignment_rule(actor=UserFactory(role=Role.MANAGER), members=sellers)
    return sellers


@pytest.mark.django_db
def test_json_submission_makes_a_lead_and_says_only_received(api, rotation):
    response = api.post(URL, body(), format="json", REMOTE_ADDR="192.0.2.44")

    assert response.status_code == 202
    assert response.json() == RECEIVED
    lead = Lead.objects.select_related("source", "stage").get()
    assert lead.source.name == "Website" and lead.stage.name == "New Lead"
    assert lead.owner == rotation[0] and lead.phone == "+14155550142"
    captured = lead.activities.get(kind=Activity.Kind.CAPTURED)
    assert captured.body == "Orbital mechanics, please." and captured.data["ip"] == "192.0.2.44"


@pytest.mark.django_db
def test_multipart_submission_attaches_the_resume(api, rotation):
    resume = SimpleUploadedFile("cv.pdf", PDF_BYTES, content_type="application/pdf")

    response = api.post(URL, body(consent="true", resume=resume), format="multipart")

    assert response.status_code == 202 and response.json() == RECEIVED
    attachment = Attachment.objects.get()
    assert attachment.filename == "cv.pdf" and attachment.lead == Lead.objects.get()


@pytest.mark.django_db
def test_credentials_are_ignored(sales):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-valid-token")

    response = client.post(URL, body(), format="json")

    assert response.status_code == 202
    assert Lead.objects.get().created_by is None


@pytest.mark.django_db
def test_invalid_fields_are_named_in_the_one_error_shape(api):
    response = api.post(
        URL, body(email="nope", consent=False, first_name="", message="m" * 5001), format="json"
    )

    error = assert_error(response, 400, code="invalid")
    assert set(error["fields"]) == {"email", "consent", "first_name", "message"}
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_a_bad_file_is_a_field_error_and_nothing_is_created(api, rotation):
    fake = SimpleUploadedFile(
        "cv.pdf", b"\x00\x01\x02 definitely not a pdf \xff\xfe", content_type="application/pdf"
    )

    response = api.post(URL, body(resume=fake), format="multipart")

    error = assert_error(response, 400, code="invalid")
    assert set(error["fields"]) == {"resume"} and "cv.pdf" in error["fields"]["resume"][0]
    assert not Lead.objects.exists() and not Attachment.objects.exists()


@pytest.mark.django_db
def test_a_filled_honeypot_is_answered_as_received_and_dropped(api):
    response = api.post(URL, body(website="https://spam.example"), format="json")

    assert response.status_code == 202 and response.json() == RECEIVED
    assert not Lead.objects.exists()


@pytest.mark.parametrize("match", ["email", "phone"])
@pytest.mark.django_db
def test_a_repeat_adds_to_the_existing_lead_with_the_same_answer(api, sales, match):
    existing = LeadFactory(owner=sales, email="katherine@nasa.example", phone="+14155550142")
    other = {"phone": "+1 312 555 0177"} if match == "email" else {"email": "kj@nasa.example"}
    resume = SimpleUploadedFile("again.pdf", PDF_BYTES)

    response = api.post(URL, body(**other, consent="true", resume=resume), format="multipart")

    assert response.status_code == 202 and response.json() == RECEIVED
    assert Lead.objects.count() == 1
    again = existing.activities.get(kind=Activity.Kind.SUBMITTED_AGAIN)
    assert again.data["submitted"]["company"] == "NASA" and again.body == "Orbital mechanics, please."
    assert existing.attachments.get().filename == "again.pdf"


@pytest.mark.django_db
def test_the_rate_limit_is_a_429_in_the_error_shape_with_retry_after(api, settings):
    settings.PUBLIC_FORM_RATE = "2/min"
    for n in range(2):
        assert api.post(URL, body(email=f"k{n}@nasa.example", phone=""), format="json").status_code == 202

    response = api.post(URL, body(email="k3@nasa.example", phone=""), format="json")

    error = assert_error(response, 429, code="throttled")
    assert "try again" in error["message"]
    assert 0 < int(response["Retry-After"]) <= 60
    assert Lead.objects.count() == 2


@pytest.mark.django_db
def test_the_form_and_the_endpoint_share_one_budget_per_address(api, client, settings):
    settings.PUBLIC_FORM_RATE = "1/hour"
    assert api.post(URL, body(), format="json").status_code == 202

    response = client.post(
        reverse("leads:apply"), {"first_name": "K", "email": "x@y.example", "consent": "on"}
    )

    assert response.status_code == 429


@pytest.mark.django_db
def test_an_oversized_body_is_refused_with_413_before_parsing(api, settings, monkeypatch):
    settings.ATTACHMENT_MAX_BYTES = 1024
    parsed = []
    monkeypatch.setattr("rest_framework.request.Request._load_data_and_files", lambda self: parsed.append(1))
    big = SimpleUploadedFile("cv.pdf", PDF_BYTES + b"0" * (1024 * 1024 + 4096))

    response = api.post(URL, body(resume=big), format="multipart")

    error = assert_error(response, 413, code="too_large")
    assert "at most" in error["message"] and "resume" in error["fields"]
    assert parsed == [] and not Lead.objects.exists()


@pytest.mark.django_db
def test_the_schema_documents_the_endpoint(api):
    schema = api.get(reverse("api:schema"), HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/public/leads/"]["post"]

    assert set(operation["responses"]) >= {"202", "400", "413", "415", "429"}
    assert {"application/json", "multipart/form-data"} <= set(operation["requestBody"]["content"])
    # Other operations list their schemes; this one lists none: no authentication.
    assert "security" not in schema and operation.get("security", []) in ([], [{}])


@pytest.mark.django_db
def test_query_counts(api, rotation, django_assert_max_num_queries):
    api.post(URL, body(email="warm@nasa.example", phone=""), format="json")  # the rule row exists
    with django_assert_max_num_queries(20):
        assert api.post(URL, body(), format="json").status_code == 202
    with django_assert_max_num_queries(10):
        assert api.post(URL, body(message="again"), format="json").status_code == 202
    with django_assert_max_num_queries(0):
        assert api.post(URL, body(website="x"), format="json").status_code == 202
