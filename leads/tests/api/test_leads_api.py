"""/api/leads/: the list with its filters and pages, create, the lead itself, /stage and /owner."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from leads import services
from leads.models import Activity, Lead, Source, Stage
from leads.tests.api.contract import (
    LEAD_KEYS,
    LEAD_PAGE_KEYS,
    assert_error,
    assert_lead_shape,
    bulk_leads,
    client_for,
)
from leads.tests.factories import LeadFactory, UserFactory, stage_named

pytestmark = pytest.mark.django_db


def ids(response):
    return [lead["id"] for lead in response.json()["leads"]]


def link(url):
    """A next/previous URL as (path, query), so parameter order does not matter."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "testserver")
    return parts.path, parse_qs(parts.query)


def kinds(lead):
    return list(Activity.objects.filter(lead=lead).order_by("id").values_list("kind", flat=True))


def source_named(name):
    return Source.objects.get(name=name)


# --- GET /api/leads/: pages -----------------------------------------------------------------


class TestListPages:
    def test_the_page_has_exactly_the_contract_keys(self, as_manager, lead):
        response = as_manager.get("/api/leads/")

        assert response.status_code == 200
        body = response.json()
        assert set(body) == LEAD_PAGE_KEYS
        assert body["count"] == 1
        assert body["totalPages"] == 1
        assert body["page"] == 1
        assert body["next"] is None
        assert body["previous"] is None
        (row,) = body["leads"]
        assert_lead_shape(row)
        assert row["id"] == lead.pk
        assert row["name"] == f"{lead.first_name} {lead.last_name}"
        assert row["owner"] == {"id": lead.owner.pk, "name": str(lead.owner), "email": lead.owner.email}
        assert row["stage"] == {"id": lead.stage.pk, "name": "New Lead", "kind": "open"}
        assert row["source"] == {"id": lead.source.pk, "name": "Manual"}

    def test_page_defaults_to_1_and_limit_to_20_newest_first(self, as_manager, manager):
        leads = bulk_leads(25, owners=[manager])

        response = as_manager.get("/api/leads/")

        body = response.json()
        assert body["count"] == 25
        assert body["totalPages"] == 2
        assert body["page"] == 1
        assert ids(response) == [lead.pk for lead in reversed(leads)][:20]
        assert body["previous"] is None
        assert body["next"] == "http://testserver/api/leads/?page=2"

    def test_the_second_page_holds_the_rest(self, as_manager, manager):
        leads = bulk_leads(25, owners=[manager])

        response = as_manager.get("/api/leads/?page=2")

        body = response.json()
        assert set(body) == LEAD_PAGE_KEYS
        assert ids(response) == [lead.pk for lead in reversed(leads)][20:]
        assert (body["count"], body["totalPages"], body["page"]) == (25, 2, 2)
        assert body["next"] is None
        assert body["previous"] == "http://testserver/api/leads/"

    def test_limit_sets_the_page_size_and_links_keep_it(self, as_manager, manager):
        bulk_leads(7, owners=[manager])

        response = as_manager.get("/api/leads/?page=2&limit=3")

        body = response.json()
        assert len(body["leads"]) == 3
        assert (body["count"], body["totalPages"], body["page"]) == (7, 3, 2)
        assert link(body["next"]) == ("/api/leads/", {"page": ["3"], "limit": ["3"]})
        assert link(body["previous"]) == ("/api/leads/", {"limit": ["3"]})

    def test_limit_is_capped_at_100(self, as_manager, manager):
        bulk_leads(105, owners=[manager])

        response = as_manager.get("/api/leads/?limit=500")

        body = response.json()
        assert len(body["leads"]) == 100
        assert (body["count"], body["totalPages"]) == (105, 2)

    def test_a_page_past_the_end_is_empty_with_the_true_counts(self, as_manager, manager):
        bulk_leads(5, owners=[manager])

        response = as_manager.get("/api/leads/?page=9&limit=2")

        assert response.status_code == 200
        body = response.json()
        assert set(body) == LEAD_PAGE_KEYS
        assert body["leads"] == []
        assert (body["count"], body["totalPages"], body["page"]) == (5, 3, 9)
        assert body["next"] is None

    def test_without_the_trailing_slash_and_no_redirect(self, as_manager, lead):
        listed = as_manager.get("/api/leads")
        created = as_manager.post("/api/leads", {"name": "No Slash", "email": "ns@x.example"}, format="json")

        assert listed.status_code == 200
        assert set(listed.json()) == LEAD_PAGE_KEYS
        assert created.status_code == 201

    def test_no_leads_at_all_is_an_empty_first_page(self, as_manager):
        body = as_manager.get("/api/leads/").json()

        assert body == {"leads": [], "count": 0, "totalPages": 0, "page": 1, "next": None, "previous": None}

    @pytest.mark.parametrize("parameter", ["page", "limit"])
    @pytest.mark.parametrize("value", ["abc", "1.5", "2x", "0", "-1"])
    def test_a_page_or_limit_that_is_not_a_positive_number_is_a_400_naming_it(
        self, as_manager, lead, parameter, value
    ):
        response = as_manager.get(f"/api/leads/?{parameter}={value}")

        error = assert_error(response, 400, code="invalid", fields={parameter})
        assert parameter in error["message"]


# --- GET /api/leads/: filters ---------------------------------------------------------------


class TestListFilters:
    @pytest.fixture
    def facebook_lead(self, manager):
        return LeadFactory(owner=manager, source=source_named("Facebook"), email="fb@prospect.example")

    @pytest.fixture
    def linkedin_lead(self, manager):
        return LeadFactory(owner=manager, source=source_named("LinkedIn"), email="li@prospect.example")

    @pytest.mark.parametrize("value", ["Facebook", "facebook", "FACEBOOK", " facebook "])
    def test_source_by_name_in_any_case(self, as_manager, facebook_lead, linkedin_lead, value):
        response = as_manager.get("/api/leads/", {"source": value})

        assert response.status_code == 200
        assert ids(response) == [facebook_lead.pk]
        assert response.json()["count"] == 1

    def test_source_by_id(self, as_manager, facebook_lead, linkedin_lead):
        response = as_manager.get(f"/api/leads/?source={linkedin_lead.source_id}")

        assert ids(response) == [linkedin_lead.pk]

    def test_an_unknown_source_is_a_400_listing_the_sources(self, as_manager, facebook_lead):
        response = as_manager.get("/api/leads/?source=Carrier%20Pigeon")

        error = assert_error(response, 400, code="invalid", fields={"source"})
        (message,) = error["fields"]["source"]
        assert "Carrier Pigeon" in message
        for name in Source.objects.values_list("name", flat=True):
            assert name in message

    @pytest.mark.parametrize("value", ["In Progress", "in progress", "IN PROGRESS"])
    def test_stage_by_name_in_any_case(self, as_manager, manager, value):
        moving = LeadFactory(owner=manager, stage=stage_named("In Progress"))
        LeadFactory(owner=manager)

        response = as_manager.get("/api/leads/", {"stage": value})

        assert ids(response) == [moving.pk]

    def test_stage_by_id_and_the_contract_url_encoding(self, as_manager, manager):
        moving = LeadFactory(owner=manager, stage=stage_named("In Progress"))
        LeadFactory(owner=manager)

        assert ids(as_manager.get(f"/api/leads/?stage={moving.stage_id}")) == [moving.pk]
        assert ids(as_manager.get("/api/leads/?stage=In%20Progress")) == [moving.pk]
        assert ids(as_manager.get("/api/leads/?stage=In+Progress")) == [moving.pk]

    def test_an_unknown_stage_is_a_400(self, as_manager, lead):
        response = as_manager.get("/api/leads/?stage=Nowhere")

        error = assert_error(response, 400, code="invalid", fields={"stage"})
        assert "In Progress" in error["fields"]["stage"][0]

    def test_owner_by_id_me_and_unassigned(self, as_sales, sales, other_sales):
        mine = LeadFactory(owner=sales)
        theirs = LeadFactory(owner=other_sales)
        pool = LeadFactory(owner=None, created_by=other_sales)

        assert ids(as_sales.get(f"/api/leads/?owner={other_sales.pk}")) == [theirs.pk]
        assert ids(as_sales.get("/api/leads/?owner=me")) == [mine.pk]
        assert ids(as_sales.get("/api/leads/?owner=unassigned")) == [pool.pk]
        assert sorted(ids(as_sales.get("/api/leads/"))) == sorted([mine.pk, theirs.pk, pool.pk])

    @pytest.mark.parametrize("value", ["someone", "99999999", "1.5"])
    def test_an_owner_that_is_not_a_user_is_a_400(self, as_manager, lead, value):
        response = as_manager.get("/api/leads/", {"owner": value})

        assert_error(response, 400, code="invalid", fields={"owner"})

    @pytest.mark.parametrize(
        "query",
        ["john", "JOHN", "Smith", "john smith", "j.smith@acme", "acme corp", "212 555", "+1 212 555 0123"],
    )
    def test_query_searches_name_email_phone_and_company(self, as_manager, manager, query):
        john = LeadFactory(
            owner=manager,
            first_name="John",
            last_name="Smith",
            email="j.smith@acme.example",
            phone="+12125550123",
            company="Acme Corp",
        )
        LeadFactory(owner=manager, first_name="Mary", last_name="Jones", company="Globex")

        response = as_manager.get("/api/leads/", {"query": query})

        assert ids(response) == [john.pk]

    def test_query_matching_nothing_is_an_empty_page(self, as_manager, lead):
        body = as_manager.get("/api/leads/?query=zzzz-nobody").json()

        assert (body["leads"], body["count"], body["totalPages"]) == ([], 0, 0)

    def test_created_after_and_before(self, as_manager, manager):
        now = timezone.now()
        old = LeadFactory(owner=manager, created_at=now - timedelta(days=10))
        middle = LeadFactory(owner=manager, created_at=now - timedelta(days=5))
        new = LeadFactory(owner=manager, created_at=now - timedelta(hours=1))
        five_days_ago = (now - timedelta(days=6)).strftime("%Y-%m-%d")
        two_days_ago = (now - timedelta(days=2)).isoformat()

        after = as_manager.get("/api/leads/", {"created_after": five_days_ago})
        before = as_manager.get("/api/leads/", {"created_before": two_days_ago})
        between = as_manager.get(
            "/api/leads/", {"created_after": five_days_ago, "created_before": two_days_ago}
        )

        assert ids(after) == [new.pk, middle.pk]
        assert ids(before) == [middle.pk, old.pk]
        assert ids(between) == [middle.pk]

    @pytest.mark.parametrize("parameter", ["created_after", "created_before"])
    def test_a_date_that_is_not_a_date_is_a_400(self, as_manager, lead, parameter):
        response = as_manager.get("/api/leads/", {parameter: "last tuesday"})

        assert_error(response, 400, code="invalid", fields={parameter})

    def test_the_contract_example_combines_every_filter(self, as_manager, manager, sales):
        match = LeadFactory(
            owner=sales,
            first_name="John",
            source=source_named("Facebook"),
            stage=stage_named("In Progress"),
        )
        LeadFactory(owner=sales, first_name="John", source=source_named("Facebook"))  # another stage
        LeadFactory(owner=manager, first_name="John", stage=stage_named("In Progress"))  # another owner
        LeadFactory(owner=sales, first_name="Mary", source=source_named("Facebook"))  # no match

        response = as_manager.get(
            f"/api/leads/?page=1&limit=20&source=Facebook&owner={sales.pk}&stage=In%20Progress&query=john"
        )

        assert response.status_code == 200
        assert set(response.json()) == LEAD_PAGE_KEYS
        assert ids(response) == [match.pk]

    def test_filters_count_every_matching_lead_and_page_through_them(self, as_manager, manager):
        bulk_leads(30, owners=[manager], sources=[source_named("Website")], prefix="web")
        bulk_leads(10, owners=[manager], sources=[source_named("Referral")], prefix="ref")

        body = as_manager.get("/api/leads/?source=website&limit=20&page=2").json()

        assert (body["count"], body["totalPages"], len(body["leads"])) == (30, 2, 10)
        assert {row["source"]["name"] for row in body["leads"]} == {"Website"}
        assert "source=website" in body["previous"]


class TestListOrdering:
    @pytest.mark.parametrize(
        ("ordering", "key"),
        [
            ("value", lambda lead: (lead.value, lead.pk)),
            ("-value", lambda lead: (-lead.value, -lead.pk)),
            ("created_at", lambda lead: (lead.created_at, lead.pk)),
            ("-created_at", lambda lead: (-lead.created_at.timestamp(), -lead.pk)),
            ("last_name", lambda lead: (lead.last_name, lead.pk)),
            ("stage_changed_at", lambda lead: (lead.stage_changed_at, lead.pk)),
        ],
    )
    def test_each_allowed_ordering(self, as_manager, manager, ordering, key):
        now = timezone.now()
        leads = [
            LeadFactory(
                owner=manager,
                last_name=last_name,
                value=Decimal(value),
                created_at=now - timedelta(hours=hours),
                stage_changed_at=now - timedelta(hours=hours * 2 % 5),
            )
            for last_name, value, hours in [("Brown", 30, 3), ("Adams", 10, 1), ("Clark", 20, 2)]
        ]

        response = as_manager.get("/api/leads/", {"ordering": ordering})

        assert response.status_code == 200
        assert ids(response) == [lead.pk for lead in sorted(leads, key=key)]

    @pytest.mark.parametrize("ordering", ["email", "-phone", "owner__password", "id;drop", "random"])
    def test_an_ordering_outside_the_allow_list_is_a_400(self, as_manager, lead, ordering):
        response = as_manager.get("/api/leads/", {"ordering": ordering})

        assert_error(response, 400, code="invalid", fields={"ordering"})

    @pytest.mark.parametrize("ordering", ["value", "-value"])
    def test_pages_of_an_ordering_with_ties_neither_repeat_nor_skip_leads(
        self, as_manager, manager, ordering
    ):
        # PostgreSQL sorts equal values in no fixed order from one LIMIT/OFFSET query to the next.
        leads = bulk_leads(300, owners=[manager])
        Lead.objects.update(value=Decimal("100.00"))

        seen = []
        for page in range(1, 44):
            seen += ids(as_manager.get(f"/api/leads/?ordering={ordering}&limit=7&page={page}"))

        assert sorted(seen) == sorted(lead.pk for lead in leads)
        descending = ordering.startswith("-")
        assert seen == sorted(seen, reverse=descending)  # ties broken by id, in the same direction


def test_the_list_shows_only_live_leads_the_caller_may_see(settings, as_sales, sales, other_sales):
    settings.LEAD_SHARING = "private"
    mine = LeadFactory(owner=sales)
    pool = LeadFactory(owner=None, created_by=other_sales)
    LeadFactory(owner=other_sales)
    LeadFactory(owner=sales, deleted_at=timezone.now(), email="gone@prospect.example")

    body = as_sales.get("/api/leads/").json()

    assert sorted(row["id"] for row in body["leads"]) == sorted([mine.pk, pool.pk])
    assert body["count"] == 2


# --- POST /api/leads/ -------------------------------------------------------------------------


class TestCreate:
    @pytest.mark.parametrize("owner_as", [str, int])
    def test_the_contract_example_creates_a_lead(self, as_manager, manager, sales, owner_as):
        response = as_manager.post(
            "/api/leads/",
            {
                "name": "John Doe",
                "source": "Facebook",
                "owner": owner_as(sales.pk),
                "email": "john@doe.example",
            },
            format="json",
        )

        assert response.status_code == 201, response.json()
        body = response.json()
        assert_lead_shape(body)
        lead = Lead.objects.get(pk=body["id"])
        assert (lead.first_name, lead.last_name) == ("John", "Doe")
        assert lead.source.name == "Facebook"
        assert lead.owner == sales
        assert lead.created_by == manager
        assert lead.stage.name == "New Lead"
        assert lead.version == 1
        assert body["name"] == "John Doe"
        assert body["first_name"] == "John" and body["last_name"] == "Doe"
        assert body["owner"] == {"id": sales.pk, "name": str(sales), "email": sales.email}
        assert body["source"] == {"id": lead.source_id, "name": "Facebook"}
        assert body["created_by"] == manager.pk
        assert response["Location"] == f"http://testserver/api/leads/{lead.pk}/"
        assert kinds(lead) == ["created"]

    def test_the_contract_example_without_a_contact_is_refused_naming_email_and_phone(
        self, as_manager, sales
    ):
        # The foundation's rule: a lead needs an e-mail or a phone (and the database enforces it).
        response = as_manager.post(
            "/api/leads/", {"name": "John Doe", "source": "Facebook", "owner": str(sales.pk)}, format="json"
        )

        assert_error(response, 400, code="invalid", fields={"email", "phone"})
        assert not Lead.objects.exists()

    @pytest.mark.parametrize(
        ("name", "first", "last"),
        [
            ("John Doe", "John", "Doe"),
            ("Mary Ann Smith", "Mary Ann", "Smith"),
            ("  Cher  ", "Cher", ""),
        ],
    )
    def test_name_is_split_into_first_and_last(self, as_sales, name, first, last):
        response = as_sales.post("/api/leads/", {"name": name, "phone": "+1 212 555 0199"}, format="json")

        assert response.status_code == 201
        body = response.json()
        assert (body["first_name"], body["last_name"]) == (first, last)
        assert body["phone"] == "+12125550199"

    def test_first_and_last_name_and_every_lead_field_are_accepted(self, as_sales, sales):
        response = as_sales.post(
            "/api/leads/",
            {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": " Ada@Analytical.Example ",
                "phone": "(212) 555-0100",
                "company": "Analytical Engines",
                "title": "CTO",
                "source": "linkedin",
                "stage": "In Progress",
                "value": "1250.50",
                "priority": "high",
                "notes": "Met at the conference.",
            },
            format="json",
        )

        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["name"] == "Ada Lovelace"
        assert body["email"] == "ada@analytical.example"
        assert body["phone"] == "+12125550100"
        assert body["company"] == "Analytical Engines"
        assert body["title"] == "CTO"
        assert body["source"]["name"] == "LinkedIn"
        assert body["stage"]["name"] == "In Progress"
        assert body["value"] == "1250.50"
        assert body["priority"] == "high"
        assert body["notes"] == "Met at the conference."
        assert body["owner"]["id"] == sales.pk  # the creator works the lead

    def test_a_lost_stage_on_create_needs_a_reason(self, as_manager):
        refused = as_manager.post(
            "/api/leads/", {"name": "A B", "email": "ab@x.example", "stage": "Lost"}, format="json"
        )
        created = as_manager.post(
            "/api/leads/",
            {"name": "A B", "email": "ab@x.example", "stage": "Lost", "lost_reason": "Budget"},
            format="json",
        )

        assert_error(refused, 400, fields={"lost_reason"})
        assert created.status_code == 201
        assert created.json()["lost_reason"] == "Budget"

    def test_owner_null_puts_the_lead_in_the_pool(self, as_manager):
        response = as_manager.post(
            "/api/leads/", {"name": "Pool Person", "email": "pool@x.example", "owner": None}, format="json"
        )

        assert response.status_code == 201
        assert response.json()["owner"] is None
        assert Lead.objects.get().owner is None

    def test_sales_cannot_create_a_lead_for_someone_else(self, as_sales, other_sales):
        response = as_sales.post(
            "/api/leads/",
            {"name": "John Doe", "email": "john@doe.example", "owner": str(other_sales.pk)},
            format="json",
        )

        assert_error(response, 403, code="permission_denied")
        assert not Lead.objects.exists()

    @pytest.mark.parametrize("owner", ["99999999", 99999999, "abc", "1.5", True, [1], {"id": 1}])
    def test_an_owner_that_is_not_a_user_id_is_a_400(self, as_manager, owner):
        response = as_manager.post(
            "/api/leads/", {"name": "John Doe", "email": "john@doe.example", "owner": owner}, format="json"
        )

        assert_error(response, 400, code="invalid", fields={"owner"})

    def test_a_lead_needs_a_name(self, as_manager):
        response = as_manager.post("/api/leads/", {"email": "john@doe.example"}, format="json")

        assert_error(response, 400, code="invalid", fields={"name"})

    def test_an_unknown_source_is_a_400_listing_the_valid_sources(self, as_manager):
        response = as_manager.post(
            "/api/leads/", {"name": "John Doe", "email": "j@d.example", "source": "Fax"}, format="json"
        )

        error = assert_error(response, 400, code="invalid", fields={"source"})
        assert "Facebook" in error["fields"]["source"][0]
        assert "Fax" in error["fields"]["source"][0]

    def test_read_only_fields_in_the_body_are_ignored(self, as_sales, sales, other_sales, lead):
        response = as_sales.post(
            "/api/leads/",
            {
                "name": "Mass Assigner",
                "email": "mass@assign.example",
                "id": lead.pk,
                "version": 99,
                "created_by": other_sales.pk,
                "created_at": "2001-01-01T00:00:00Z",
                "updated_at": "2001-01-01T00:00:00Z",
                "deleted_at": "2001-01-01T00:00:00Z",
                "stage_changed_at": "2001-01-01T00:00:00Z",
            },
            format="json",
        )

        assert response.status_code == 201
        created = Lead.objects.get(email="mass@assign.example")
        assert created.pk != lead.pk
        assert created.version == 1
        assert created.created_by == sales
        assert created.created_at.year == timezone.now().year
        assert created.stage_changed_at.year == timezone.now().year
        assert created.deleted_at is None
        assert Lead.objects.get(pk=lead.pk).first_name == lead.first_name

    def test_a_duplicate_email_is_a_409_naming_the_existing_lead(self, as_manager, lead):
        response = as_manager.post(
            "/api/leads/", {"name": "Someone Else", "email": lead.email.upper()}, format="json"
        )

        error = assert_error(response, 409, code="duplicate", fields={"email"}, extra={"existing_id"})
        assert error["existing_id"] == lead.pk
        assert f"#{lead.pk}" in error["message"]
        assert Lead.objects.count() == 1

    def test_a_duplicate_phone_in_another_format_is_a_409(self, as_manager, manager):
        existing = LeadFactory(owner=manager, phone="+12125550123")

        response = as_manager.post(
            "/api/leads/", {"name": "Someone Else", "phone": "(212) 555-0123"}, format="json"
        )

        error = assert_error(response, 409, code="duplicate", fields={"phone"}, extra={"existing_id"})
        assert error["existing_id"] == existing.pk

    def test_a_deleted_lead_does_not_block_its_email(self, as_manager, manager):
        LeadFactory(owner=manager, email="back@again.example", deleted_at=timezone.now())

        response = as_manager.post(
            "/api/leads/", {"name": "Back Again", "email": "back@again.example"}, format="json"
        )

        assert response.status_code == 201

    def test_a_form_encoded_body_works_too(self, as_sales):
        response = as_sales.post("/api/leads/", {"name": "Form Person", "email": "form@x.example"})

        assert response.status_code == 201
        assert response.json()["first_name"] == "Form"


# --- GET/PUT/PATCH/DELETE /api/leads/{id}/ -----------------------------------------------------


class TestRetrieve:
    def test_one_lead_with_the_contract_keys(self, as_sales, lead):
        response = as_sales.get(f"/api/leads/{lead.pk}/")

        assert response.status_code == 200
        body = response.json()
        assert_lead_shape(body)
        assert body["id"] == lead.pk
        assert body["version"] == lead.version
        assert body["created_by"] == lead.created_by_id

    def test_without_the_trailing_slash_too(self, as_sales, lead):
        response = as_sales.get(f"/api/leads/{lead.pk}")

        assert response.status_code == 200
        assert response.json()["id"] == lead.pk

    def test_a_lead_the_caller_may_not_see_is_a_404(self, settings, as_other_sales, lead):
        settings.LEAD_SHARING = "private"

        assert_error(as_other_sales.get(f"/api/leads/{lead.pk}/"), 404, code="not_found")

    @pytest.mark.parametrize("pk", ["999999", "99999999999999999999999"])
    def test_a_lead_that_does_not_exist_is_a_404(self, as_manager, pk):
        assert_error(as_manager.get(f"/api/leads/{pk}/"), 404, code="not_found")

    def test_a_deleted_lead_is_a_404(self, as_manager, lead):
        lead.deleted_at = timezone.now()
        lead.save()

        assert_error(as_manager.get(f"/api/leads/{lead.pk}/"), 404, code="not_found")


class TestUpdate:
    def test_put_changes_the_fields_and_records_them(self, as_sales, sales, lead):
        response = as_sales.put(
            f"/api/leads/{lead.pk}/",
            {"name": "Grace Hopper", "email": "grace@navy.example", "company": "Navy", "value": "500"},
            format="json",
        )

        assert response.status_code == 200, response.json()
        body = response.json()
        assert_lead_shape(body)
        assert (body["first_name"], body["last_name"], body["company"]) == ("Grace", "Hopper", "Navy")
        assert body["version"] == lead.version + 1
        lead.refresh_from_db()
        assert (lead.first_name, lead.email, lead.value) == ("Grace", "grace@navy.example", Decimal("500"))
        updated = Activity.objects.get(lead=lead, kind="updated")
        assert updated.actor == sales
        assert updated.data["changes"]["company"]["to"] == "Navy"

    def test_put_needs_a_name(self, as_sales, lead):
        response = as_sales.put(f"/api/leads/{lead.pk}/", {"company": "Navy"}, format="json")

        assert_error(response, 400, code="invalid", fields={"name"})

    def test_patch_changes_only_what_it_sends(self, as_sales, lead):
        response = as_sales.patch(f"/api/leads/{lead.pk}", {"title": "Buyer"}, format="json")

        assert response.status_code == 200
        lead.refresh_from_db()
        assert lead.title == "Buyer"
        assert Activity.objects.get(lead=lead).data["changes"] == {"title": {"from": "", "to": "Buyer"}}

    def test_patch_with_fields_stage_and_owner_records_each_change(self, as_manager, manager, sales, lead):
        response = as_manager.patch(
            f"/api/leads/{lead.pk}/",
            {"company": "Initech", "stage": "in progress", "owner": manager.pk},
            format="json",
        )

        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["company"] == "Initech"
        assert body["stage"]["name"] == "In Progress"
        assert body["owner"]["id"] == manager.pk
        assert body["version"] == lead.version + 3
        assert kinds(lead) == ["updated", "stage_changed", "owner_changed"]
        moved = Activity.objects.get(lead=lead, kind="stage_changed")
        assert (moved.data["from"], moved.data["to"]) == ("New Lead", "In Progress")
        reassigned = Activity.objects.get(lead=lead, kind="owner_changed")
        assert (reassigned.data["from_id"], reassigned.data["to_id"]) == (sales.pk, manager.pk)
        assert {a.actor for a in Activity.objects.filter(lead=lead)} == {manager}

    def test_patch_owner_null_unassigns(self, as_manager, lead):
        response = as_manager.patch(f"/api/leads/{lead.pk}/", {"owner": None}, format="json")

        assert response.status_code == 200
        assert response.json()["owner"] is None
        assert kinds(lead) == ["owner_changed"]

    def test_put_with_a_stage_change_records_the_move(self, as_sales, lead):
        response = as_sales.put(
            f"/api/leads/{lead.pk}/",
            {"name": lead.name, "email": lead.email, "stage": "Lost", "lost_reason": "No budget"},
            format="json",
        )

        assert response.status_code == 200, response.json()
        assert response.json()["lost_reason"] == "No budget"
        assert kinds(lead) == ["stage_changed"]

    @pytest.mark.parametrize("method", ["patch", "put"])
    @pytest.mark.parametrize("owner", ["other", "other as int", None])
    def test_a_sales_user_sending_owner_gets_403_and_nothing_changes(
        self, as_sales, other_sales, lead, method, owner
    ):
        owner = {"other": str(other_sales.pk), "other as int": other_sales.pk}.get(owner, owner)

        response = getattr(as_sales, method)(
            f"/api/leads/{lead.pk}/",
            {"name": "Changed Name", "company": "Changed Co", "stage": "In Progress", "owner": owner},
            format="json",
        )

        assert_error(response, 403, code="permission_denied")
        current = Lead.objects.get(pk=lead.pk)
        assert (current.owner_id, current.first_name, current.company, current.stage.name) == (
            lead.owner_id,
            lead.first_name,
            lead.company,
            "New Lead",
        )
        assert current.version == lead.version
        assert kinds(lead) == []

    def test_a_sales_user_may_send_the_owner_the_lead_already_has(self, as_sales, sales, lead):
        response = as_sales.patch(
            f"/api/leads/{lead.pk}/", {"owner": sales.pk, "title": "Buyer"}, format="json"
        )

        assert response.status_code == 200
        assert kinds(lead) == ["updated"]

    def test_read_only_fields_in_the_body_are_ignored(self, as_manager, other_sales, lead):
        original = Lead.objects.get(pk=lead.pk)

        response = as_manager.patch(
            f"/api/leads/{lead.pk}/",
            {
                "id": lead.pk + 1000,
                "created_by": other_sales.pk,
                "created_at": "2001-01-01T00:00:00Z",
                "updated_at": "2001-01-01T00:00:00Z",
                "deleted_at": "2001-01-01T00:00:00Z",
                "stage_changed_at": "2001-01-01T00:00:00Z",
                "title": "Buyer",
            },
            format="json",
        )

        assert response.status_code == 200
        assert response.json()["id"] == lead.pk
        current = Lead.objects.get(pk=lead.pk)
        assert current.created_by_id == original.created_by_id
        assert current.created_at == original.created_at
        assert current.stage_changed_at == original.stage_changed_at
        assert current.deleted_at is None
        assert current.updated_at > original.updated_at
        assert current.title == "Buyer"

    def test_version_in_the_body_is_a_precondition_not_a_value(self, as_sales, lead):
        response = as_sales.patch(
            f"/api/leads/{lead.pk}/", {"title": "Buyer", "version": lead.version}, format="json"
        )

        assert response.status_code == 200
        assert response.json()["version"] == lead.version + 1
        assert Lead.objects.get(pk=lead.pk).version == lead.version + 1

    def test_a_stale_version_is_a_409_with_the_current_lead(self, as_sales, lead):
        Lead.objects.filter(pk=lead.pk).update(version=3, title="Changed elsewhere")

        response = as_sales.patch(f"/api/leads/{lead.pk}/", {"title": "Mine", "version": 2}, format="json")

        error = assert_error(response, 409, code="stale_version", extra={"current"})
        assert set(error["current"]) == LEAD_KEYS
        assert (error["current"]["version"], error["current"]["title"]) == (3, "Changed elsewhere")
        assert Lead.objects.get(pk=lead.pk).title == "Changed elsewhere"
        assert kinds(lead) == []

    def test_a_failing_part_leaves_every_part_unchanged(self, as_manager, manager, lead):
        response = as_manager.patch(
            f"/api/leads/{lead.pk}/",
            {"company": "Initech", "owner": manager.pk, "stage": "Lost"},  # no lost_reason
            format="json",
        )

        assert_error(response, 400, fields={"lost_reason"})
        current = Lead.objects.get(pk=lead.pk)
        assert (current.company, current.owner_id, current.version) == (lead.company, lead.owner_id, 1)
        assert kinds(lead) == []

    def test_a_duplicate_email_on_update_is_a_409(self, as_manager, manager, lead):
        other = LeadFactory(owner=manager)

        response = as_manager.patch(f"/api/leads/{lead.pk}/", {"email": other.email}, format="json")

        error = assert_error(response, 409, code="duplicate", fields={"email"}, extra={"existing_id"})
        assert error["existing_id"] == other.pk

    def test_other_sales_cannot_edit_under_read_sharing(self, as_other_sales, lead):
        response = as_other_sales.patch(f"/api/leads/{lead.pk}/", {"title": "Mine now"}, format="json")

        assert_error(response, 403, code="permission_denied")

    def test_an_invisible_lead_is_a_404(self, settings, as_other_sales, lead):
        settings.LEAD_SHARING = "private"

        response = as_other_sales.patch(f"/api/leads/{lead.pk}/", {"title": "Mine now"}, format="json")

        assert_error(response, 404, code="not_found")


class TestDelete:
    @pytest.mark.parametrize("role", ["manager", "admin_user"])
    def test_managers_and_admins_soft_delete(self, request, role, lead):
        user = request.getfixturevalue(role)
        client = client_for(user)

        response = client.delete(f"/api/leads/{lead.pk}/")

        assert response.status_code == 204
        assert response.content == b""
        deleted = Lead.objects.get(pk=lead.pk)  # the row is still there
        assert deleted.deleted_at is not None
        assert kinds(lead) == ["deleted"]
        assert_error(client.get(f"/api/leads/{lead.pk}/"), 404)
        assert client.get("/api/leads/").json()["count"] == 0

    def test_sales_cannot_delete_even_their_own_lead(self, as_sales, lead):
        assert_error(as_sales.delete(f"/api/leads/{lead.pk}/"), 403, code="permission_denied")
        assert Lead.objects.get(pk=lead.pk).deleted_at is None

    def test_an_invisible_lead_is_a_404(self, settings, as_other_sales, lead):
        settings.LEAD_SHARING = "private"

        assert_error(as_other_sales.delete(f"/api/leads/{lead.pk}/"), 404)

    def test_deleting_twice_is_a_404(self, as_manager, lead):
        as_manager.delete(f"/api/leads/{lead.pk}/")

        assert_error(as_manager.delete(f"/api/leads/{lead.pk}/"), 404)


# --- PATCH /api/leads/{id}/stage ---------------------------------------------------------------


class TestMove:
    @pytest.mark.parametrize("slash", ["", "/"])
    def test_with_or_without_the_slash_and_no_redirect(self, as_sales, sales, lead, slash):
        response = as_sales.patch(
            f"/api/leads/{lead.pk}/stage{slash}", {"stage": "In Progress"}, format="json"
        )

        assert response.status_code == 200
        body = response.json()
        assert_lead_shape(body)
        assert body["stage"]["name"] == "In Progress"
        assert body["version"] == lead.version + 1
        moved = Activity.objects.get(lead=lead)
        assert (moved.kind, moved.actor, moved.data["from"], moved.data["to"]) == (
            "stage_changed",
            sales,
            "New Lead",
            "In Progress",
        )

    @pytest.mark.parametrize("stage", ["in progress", "IN PROGRESS", "by id", "by id as string"])
    def test_by_name_in_any_case_or_by_id(self, as_sales, lead, stage):
        target = stage_named("In Progress")
        value = {"by id": target.pk, "by id as string": str(target.pk)}.get(stage, stage)

        response = as_sales.patch(f"/api/leads/{lead.pk}/stage", {"stage": value}, format="json")

        assert response.status_code == 200
        assert response.json()["stage"] == {"id": target.pk, "name": "In Progress", "kind": "open"}

    @pytest.mark.parametrize("stage", ["Nowhere", 999999, "", None, True, ["Won"]])
    def test_an_unknown_stage_is_a_400_listing_the_valid_stages(self, as_sales, lead, stage):
        response = as_sales.patch(f"/api/leads/{lead.pk}/stage", {"stage": stage}, format="json")

        error = assert_error(response, 400, code="invalid", fields={"stage"})
        if stage not in ("", None):
            message = error["fields"]["stage"][0]
            for name in ["New Lead", "Reached Out", "No Response", "In Progress", "Won", "Lost"]:
                assert name in message
        assert Lead.objects.get(pk=lead.pk).stage.name == "New Lead"

    def test_a_missing_stage_is_a_400(self, as_sales, lead):
        assert_error(as_sales.patch(f"/api/leads/{lead.pk}/stage", {}, format="json"), 400, fields={"stage"})

    def test_the_current_version_is_accepted(self, as_sales, lead):
        response = as_sales.patch(
            f"/api/leads/{lead.pk}/stage", {"stage": "Won", "version": lead.version}, format="json"
        )

        assert response.status_code == 200
        assert response.json()["version"] == lead.version + 1

    def test_a_stale_version_is_a_409_with_the_current_lead(self, as_sales, manager, lead):
        as_manager = client_for(manager)
        as_manager.patch(f"/api/leads/{lead.pk}/stage", {"stage": "Reached Out"}, format="json")

        response = as_sales.patch(
            f"/api/leads/{lead.pk}/stage", {"stage": "Won", "version": lead.version}, format="json"
        )

        error = assert_error(response, 409, code="stale_version", extra={"current"})
        assert set(error["current"]) == LEAD_KEYS
        assert error["current"]["id"] == lead.pk
        assert error["current"]["version"] == lead.version + 1
        assert error["current"]["stage"]["name"] == "Reached Out"
        assert str(manager) in error["message"]
        assert Lead.objects.get(pk=lead.pk).stage.name == "Reached Out"

    def test_a_lost_stage_needs_a_lost_reason(self, as_sales, lead):
        response = as_sales.patch(f"/api/leads/{lead.pk}/stage", {"stage": "Lost"}, format="json")

        assert_error(response, 400, code="invalid", fields={"lost_reason"})
        assert Lead.objects.get(pk=lead.pk).stage.name == "New Lead"

    def test_a_lost_stage_with_a_reason_keeps_it(self, as_sales, lead):
        response = as_sales.patch(
            f"/api/leads/{lead.pk}/stage", {"stage": "Lost", "lost_reason": "Chose a rival"}, format="json"
        )

        assert response.status_code == 200
        assert response.json()["lost_reason"] == "Chose a rival"
        assert Activity.objects.get(lead=lead).data["lost_reason"] == "Chose a rival"

    def test_the_stage_it_is_already_in_is_a_400(self, as_sales, lead):
        response = as_sales.patch(f"/api/leads/{lead.pk}/stage", {"stage": "New Lead"}, format="json")

        assert_error(response, 400, fields={"stage"})

    def test_an_archived_stage_is_a_400(self, as_sales, lead):
        Stage.objects.filter(name="No Response").update(archived=True)

        response = as_sales.patch(f"/api/leads/{lead.pk}/stage", {"stage": "No Response"}, format="json")

        assert_error(response, 400, fields={"stage"})

    def test_other_sales_may_not_move_under_read_sharing(self, as_other_sales, lead):
        response = as_other_sales.patch(f"/api/leads/{lead.pk}/stage", {"stage": "Won"}, format="json")

        assert_error(response, 403, code="permission_denied")

    def test_an_invisible_lead_is_a_404(self, settings, as_other_sales, lead):
        settings.LEAD_SHARING = "private"

        response = as_other_sales.patch(f"/api/leads/{lead.pk}/stage", {"stage": "Won"}, format="json")

        assert_error(response, 404)

    @pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
    def test_only_patch_is_allowed(self, as_sales, lead, method):
        response = getattr(as_sales, method)(f"/api/leads/{lead.pk}/stage", {"stage": "Won"}, format="json")

        assert_error(response, 405, code="method_not_allowed")


# --- PATCH /api/leads/{id}/owner ---------------------------------------------------------------


class TestReassign:
    @pytest.mark.parametrize("slash", ["", "/"])
    @pytest.mark.parametrize("owner_as", [str, int])
    def test_a_manager_reassigns_with_or_without_the_slash(
        self, as_manager, manager, other_sales, sales, lead, slash, owner_as
    ):
        response = as_manager.patch(
            f"/api/leads/{lead.pk}/owner{slash}", {"owner": owner_as(other_sales.pk)}, format="json"
        )

        assert response.status_code == 200
        body = response.json()
        assert_lead_shape(body)
        assert body["owner"] == {"id": other_sales.pk, "name": str(other_sales), "email": other_sales.email}
        assert body["version"] == lead.version + 1
        activity = Activity.objects.get(lead=lead)
        assert (activity.kind, activity.actor) == ("owner_changed", manager)
        assert (activity.data["from_id"], activity.data["to_id"]) == (sales.pk, other_sales.pk)

    def test_an_admin_reassigns(self, as_admin, other_sales, lead):
        response = as_admin.patch(f"/api/leads/{lead.pk}/owner", {"owner": other_sales.pk}, format="json")

        assert response.status_code == 200

    def test_owner_null_unassigns(self, as_manager, lead):
        response = as_manager.patch(f"/api/leads/{lead.pk}/owner", {"owner": None}, format="json")

        assert response.status_code == 200
        assert response.json()["owner"] is None
        assert Lead.objects.get(pk=lead.pk).owner is None

    @pytest.mark.parametrize("who", ["as_sales", "as_other_sales"])
    def test_sales_get_403_on_a_lead_they_can_see(self, request, other_sales, lead, who):
        client = request.getfixturevalue(who)

        response = client.patch(f"/api/leads/{lead.pk}/owner", {"owner": other_sales.pk}, format="json")

        assert_error(response, 403, code="permission_denied")
        assert Lead.objects.get(pk=lead.pk).owner_id == lead.owner_id
        assert kinds(lead) == []

    def test_sales_get_404_on_a_lead_they_cannot_see(self, settings, as_other_sales, other_sales, lead):
        settings.LEAD_SHARING = "private"

        response = as_other_sales.patch(
            f"/api/leads/{lead.pk}/owner", {"owner": other_sales.pk}, format="json"
        )

        assert_error(response, 404)

    @pytest.mark.parametrize("owner", ["99999999", "me", "", 1.5])
    def test_an_owner_that_is_not_a_user_is_a_400(self, as_manager, lead, owner):
        response = as_manager.patch(f"/api/leads/{lead.pk}/owner", {"owner": owner}, format="json")

        assert_error(response, 400, code="invalid", fields={"owner"})

    def test_a_missing_owner_is_a_400(self, as_manager, lead):
        assert_error(
            as_manager.patch(f"/api/leads/{lead.pk}/owner", {}, format="json"), 400, fields={"owner"}
        )

    def test_a_deactivated_user_cannot_own_leads(self, as_manager, lead):
        gone = UserFactory(is_active=False)

        response = as_manager.patch(f"/api/leads/{lead.pk}/owner", {"owner": gone.pk}, format="json")

        assert_error(response, 400, fields={"owner"})

    def test_a_stale_version_is_a_409_with_the_current_lead(self, as_manager, other_sales, lead):
        Lead.objects.filter(pk=lead.pk).update(version=5)

        response = as_manager.patch(
            f"/api/leads/{lead.pk}/owner", {"owner": other_sales.pk, "version": 4}, format="json"
        )

        error = assert_error(response, 409, code="stale_version", extra={"current"})
        assert error["current"]["version"] == 5
        assert error["current"]["owner"]["id"] == lead.owner_id


# --- query counts ---------------------------------------------------------------------------------


@pytest.fixture
def many_leads(manager, sales, other_sales):
    """150 leads spread over three owners (and the pool), every source and every stage."""
    return bulk_leads(150, owners=[manager, sales, other_sales, None])


# Whatever the page size: the owner filter's list of users, the count, and the page with its
# stage, source and owner joined. No per-row queries.
LIST_QUERIES = 3


@pytest.mark.parametrize("limit", [1, 100])
def test_the_list_runs_a_fixed_number_of_queries(
    django_assert_max_num_queries, as_manager, many_leads, limit
):
    with django_assert_max_num_queries(LIST_QUERIES):
        response = as_manager.get(f"/api/leads/?limit={limit}")

    assert len(response.json()["leads"]) == limit


@pytest.mark.parametrize("limit", [1, 100])
@pytest.mark.parametrize(
    ("filters", "lookups"),
    [
        # Each name-or-id filter and an owner id look their row up once.
        ("source=manual&owner={sales}&query=bulk", 2),
        ("stage=in%20progress&owner=unassigned&created_after=2000-01-01", 1),
        ("source=linkedin&owner=me&ordering=-value", 1),
    ],
)
def test_the_filtered_list_runs_a_fixed_number_of_queries(
    django_assert_max_num_queries, as_manager, many_leads, sales, limit, filters, lookups
):
    with django_assert_max_num_queries(LIST_QUERIES + lookups):
        response = as_manager.get(f"/api/leads/?limit={limit}&" + filters.format(sales=sales.pk))

    assert response.status_code == 200
    assert 1 <= len(response.json()["leads"]) <= limit


def test_one_lead_runs_a_fixed_number_of_queries(django_assert_max_num_queries, as_manager, many_leads):
    with django_assert_max_num_queries(1):
        response = as_manager.get(f"/api/leads/{many_leads[0].pk}/")

    assert response.status_code == 200


# --- POST /api/leads/{id}/claim -----------------------------------------------------------------


def test_sales_claims_an_unassigned_lead(as_sales, sales):
    pool = LeadFactory(owner=None)
    response = as_sales.post(f"/api/leads/{pool.pk}/claim", {"version": pool.version}, format="json")
    assert response.status_code == 200
    assert_lead_shape(response.json())
    assert response.json()["owner"]["id"] == sales.pk and response.json()["version"] == pool.version + 1
    change = pool.activities.get(kind=Activity.Kind.OWNER_CHANGED)
    assert change.actor == sales and change.data["claimed"] is True


def test_claiming_an_owned_lead_is_a_400_and_a_stale_claim_a_409(as_sales, other_sales, manager):
    owned = LeadFactory(owner=other_sales)
    assert_error(as_sales.post(f"/api/leads/{owned.pk}/claim/", {}, format="json"), 400)
    pool = LeadFactory(owner=None)
    services.update_lead(lead=pool, actor=manager, company="Changed")
    response = as_sales.post(f"/api/leads/{pool.pk}/claim", {"version": 1}, format="json")
    assert_error(response, 409, code="stale_version", extra=("current",))
    assert Lead.objects.get(pk=pool.pk).owner is None
