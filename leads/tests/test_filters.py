"""LeadFilter: ?query=&source=&owner=&stage= as the board, the API and exports read them."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.utils import timezone

from leads.filters import LeadFilter
from leads.models import Source
from leads.selectors import visible_leads
from leads.tests.factories import LeadFactory, stage_named

pytestmark = pytest.mark.django_db


@pytest.fixture
def leads(sales, other_sales):
    """Three people in the pipeline: Ada is sales', Grace other_sales', Alan in the pool."""
    return {
        "Ada": LeadFactory(
            first_name="Ada", last_name="Lovelace", email="ada@analytical.example", phone="+12125550123",
            company="Analytical Engines", owner=sales,
            source=Source.objects.get(name="Facebook"), stage=stage_named("New Lead"),
        ),
        "Grace": LeadFactory(
            first_name="Grace", last_name="Hopper", email="grace@navy.example", phone="+13125559876",
            company="Cobol Corp", owner=other_sales,
            source=Source.objects.get(name="LinkedIn"), stage=stage_named("In Progress"),
        ),
        "Alan": LeadFactory(
            first_name="Alan", last_name="Turing", email="alan@bletchley.example", phone="",
            company="Bletchley Park", owner=None,
            source=Source.objects.get(name="Website"), stage=stage_named("Won"),
        ),
    }  # fmt: skip


def lead_filter(user, params):
    request = RequestFactory().get("/board/", params)
    request.user = user
    return LeadFilter(params, queryset=visible_leads(user), request=request)


def found(user, **params):
    """First names of the leads the filter lists for `user`, sorted."""
    filterset = lead_filter(user, params)
    assert filterset.is_valid(), filterset.errors
    return sorted(lead.first_name for lead in filterset.qs)


def errors(user, **params):
    filterset = lead_filter(user, params)
    assert not filterset.is_valid()
    return filterset.errors


# --- query ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query,expected",
    [
        ("", ["Ada", "Alan", "Grace"]),
        ("   ", ["Ada", "Alan", "Grace"]),
        ("ada", ["Ada"]),  # first name
        ("HOPPER", ["Grace"]),  # last name, any case
        ("navy.example", ["Grace"]),  # e-mail
        ("engines", ["Ada"]),  # company
        ("bletchley park", ["Alan"]),  # every word must match somewhere
        ("grace cobol", ["Grace"]),
        ("ada hopper", []),  # words are ANDed, not ORed
        ("555", ["Ada", "Grace"]),  # a fragment of both phones
        ("555-0123", ["Ada"]),
        ("(212) 555", ["Ada"]),
        ("212.555.0123", ["Ada"]),
        ("(212) 555-0123", ["Ada"]),
        ("1-212-555-0123", ["Ada"]),
        ("+1 (212) 555-0123", ["Ada"]),  # the whole number as people write it
        ("+12125550123", ["Ada"]),  # as stored
        ("ada 0123", ["Ada"]),  # a name and a phone fragment
        ("ada 9876", []),
    ],
)
def test_query_matches_name_email_company_and_phone(manager, leads, query, expected):
    assert found(manager, query=query) == expected


def test_a_short_number_is_not_matched_against_phones(manager, leads):
    # "12" appears in both stored phones; two digits are too few to mean a phone fragment.
    assert found(manager, query="12") == []


def test_a_query_longer_than_the_limit_is_a_form_error(manager, leads):
    assert "query" in errors(manager, query="a" * 201)


# --- source and stage -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["LinkedIn", "linkedin", " LINKEDIN "])
def test_source_by_name_in_any_case(manager, leads, value):
    assert found(manager, source=value) == ["Grace"]


def test_source_by_id(manager, leads):
    assert found(manager, source=str(Source.objects.get(name="Website").pk)) == ["Alan"]


@pytest.mark.parametrize("value", ["In Progress", "in progress"])
def test_stage_by_name_in_any_case(manager, leads, value):
    assert found(manager, stage=value) == ["Grace"]


def test_stage_by_id(manager, leads):
    assert found(manager, stage=str(stage_named("Won").pk)) == ["Alan"]


@pytest.mark.parametrize("field", ["source", "stage"])
@pytest.mark.parametrize("value", ["Myspace", "999999", "²", "9" * 20])
def test_an_unknown_source_or_stage_is_a_form_error_naming_it(manager, leads, field, value):
    (message,) = errors(manager, **{field: value})[field]
    assert value in message


def test_the_source_error_lists_the_choices(manager, leads):
    (message,) = errors(manager, source="Myspace")["source"]
    assert "Facebook" in message and "LinkedIn" in message


# --- owner ----------------------------------------------------------------------------------


def test_owner_me(sales, leads):
    assert found(sales, owner="me") == ["Ada"]


def test_owner_me_for_someone_signed_out_lists_nothing(leads):
    assert found(AnonymousUser(), owner="me") == []


def test_owner_unassigned(manager, leads):
    assert found(manager, owner="unassigned") == ["Alan"]


def test_owner_by_id(manager, other_sales, leads):
    assert found(manager, owner=str(other_sales.pk)) == ["Grace"]


@pytest.mark.parametrize("value", ["bob", "999999", "²", "9" * 20])
def test_an_unknown_owner_is_a_form_error_naming_it(manager, leads, value):
    (message,) = errors(manager, owner=value)["owner"]
    assert value in message


def test_filters_combine(manager, other_sales, leads):
    assert found(manager, query="grace", source="linkedin", owner=str(other_sales.pk)) == ["Grace"]
    assert found(manager, query="grace", source="facebook") == []


# --- visibility still applies ---------------------------------------------------------------


def test_private_sharing_hides_other_peoples_leads_from_every_filter(sales, other_sales, leads, settings):
    settings.LEAD_SHARING = "private"
    assert found(sales) == ["Ada", "Alan"]
    assert found(sales, query="grace") == []
    assert found(sales, owner=str(other_sales.pk)) == []
    assert found(sales, source="linkedin") == []


def test_read_sharing_lets_sales_find_other_peoples_leads(sales, other_sales, leads):
    assert found(sales, owner=str(other_sales.pk)) == ["Grace"]


def test_deleted_leads_are_never_found(manager, sales, leads):
    LeadFactory(first_name="Adam", email="adam@deleted.example", owner=sales, deleted_at=timezone.now())
    assert found(manager, query="ada") == ["Ada"]
    assert found(sales, query="ada") == ["Ada"]


def test_an_anonymous_visitor_finds_nothing(leads):
    assert found(AnonymousUser(), query="ada") == []
