"""/api/leads/{id}/activities/: the timeline, newest first and paginated; logging notes, calls, meetings."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leads import services
from leads.models import Activity, Lead
from leads.tests.api.contract import ACTIVITY_KEYS, ACTIVITY_PAGE_KEYS, USER_REF_KEYS, assert_error
from leads.tests.factories import ActivityFactory, stage_named

pytestmark = pytest.mark.django_db


def url(lead):
    return f"/api/leads/{lead.pk}/activities/"


def timeline_of(lead, count, *, actor):
    """`count` notes, one minute apart, the last one newest; returned oldest first."""
    start = timezone.now() - timedelta(days=1)
    return Activity.objects.bulk_create(
        Activity(
            lead=lead, actor=actor, kind="note", body=f"Note {i}", occurred_at=start + timedelta(minutes=i)
        )
        for i in range(count)
    )


class TestTimeline:
    def test_the_page_has_exactly_the_contract_keys(self, as_sales, sales, lead):
        note = ActivityFactory(lead=lead, actor=sales, body="Called, no answer")

        response = as_sales.get(url(lead))

        assert response.status_code == 200
        body = response.json()
        assert set(body) == ACTIVITY_PAGE_KEYS
        assert (body["count"], body["totalPages"], body["page"]) == (1, 1, 1)
        assert (body["next"], body["previous"]) == (None, None)
        (row,) = body["activities"]
        assert set(row) == ACTIVITY_KEYS
        assert set(row["actor"]) == USER_REF_KEYS
        assert row["id"] == note.pk
        assert row["kind"] == "note"
        assert row["body"] == "Called, no answer"
        assert row["data"] == {}
        assert row["actor"] == {"id": sales.pk, "name": str(sales), "email": sales.email}

    def test_newest_first_including_what_the_services_wrote(self, as_sales, sales, lead):
        timeline_of(lead, 2, actor=sales)
        services.move_lead(lead=lead, stage=stage_named("In Progress"), actor=sales)

        rows = as_sales.get(url(lead)).json()["activities"]

        assert [row["kind"] for row in rows] == ["stage_changed", "note", "note"]
        assert [row["body"] for row in rows[1:]] == ["Note 1", "Note 0"]
        assert rows[0]["data"]["from"] == "New Lead" and rows[0]["data"]["to"] == "In Progress"

    def test_paginated_like_the_lead_list(self, as_sales, sales, lead):
        notes = timeline_of(lead, 25, actor=sales)

        first = as_sales.get(url(lead)).json()
        third = as_sales.get(url(lead) + "?limit=10&page=3").json()
        past = as_sales.get(url(lead) + "?limit=10&page=4").json()

        assert len(first["activities"]) == 20
        assert (first["count"], first["totalPages"]) == (25, 2)
        assert first["next"] == f"http://testserver{url(lead)}?page=2"
        assert [row["id"] for row in third["activities"]] == [note.pk for note in reversed(notes)][20:]
        assert (third["totalPages"], third["page"], third["next"]) == (3, 3, None)
        assert (past["activities"], past["count"], past["totalPages"]) == ([], 25, 3)

    def test_limit_is_capped_at_100(self, as_sales, sales, lead):
        timeline_of(lead, 101, actor=sales)

        body = as_sales.get(url(lead) + "?limit=1000").json()

        assert len(body["activities"]) == 100

    @pytest.mark.parametrize("parameter", ["page", "limit"])
    def test_a_non_numeric_page_or_limit_is_a_400_naming_it(self, as_sales, lead, parameter):
        response = as_sales.get(url(lead) + f"?{parameter}=many")

        assert_error(response, 400, code="invalid", fields={parameter})

    def test_lead_filters_do_not_apply_to_the_timeline(self, as_sales, sales, lead):
        timeline_of(lead, 1, actor=sales)

        body = as_sales.get(url(lead) + "?source=Nowhere&ordering=bogus").json()

        assert body["count"] == 1

    def test_a_system_activity_without_an_actor_shows_null(self, as_sales, lead):
        Activity.objects.create(lead=lead, actor=None, kind="imported")

        (row,) = as_sales.get(url(lead)).json()["activities"]

        assert row["actor"] is None

    def test_another_salesperson_reads_it_when_sharing_allows(self, as_other_sales, lead):
        assert as_other_sales.get(url(lead)).status_code == 200

    def test_a_lead_the_caller_may_not_see_is_a_404(self, settings, as_other_sales, lead):
        settings.LEAD_SHARING = "private"

        assert_error(as_other_sales.get(url(lead)), 404, code="not_found")

    def test_a_deleted_lead_is_a_404(self, as_manager, lead):
        Lead.objects.filter(pk=lead.pk).update(deleted_at=timezone.now())

        assert_error(as_manager.get(url(lead)), 404)


class TestLog:
    def test_a_note(self, as_sales, sales, lead):
        response = as_sales.post(url(lead), {"kind": "note", "body": "  Wants a demo.  "}, format="json")

        assert response.status_code == 201, response.json()
        body = response.json()
        assert set(body) == ACTIVITY_KEYS
        assert (body["kind"], body["body"], body["data"]) == ("note", "Wants a demo.", {})
        assert body["actor"]["id"] == sales.pk
        activity = Activity.objects.get(pk=body["id"])
        assert (activity.lead_id, activity.actor, activity.kind) == (lead.pk, sales, "note")

    def test_a_call_with_outcome_and_duration(self, as_sales, lead):
        response = as_sales.post(
            url(lead),
            {"kind": "call", "body": "Spoke to her", "outcome": "connected", "duration_minutes": 12},
            format="json",
        )

        assert response.status_code == 201, response.json()
        assert response.json()["data"] == {"outcome": "connected", "duration_minutes": 12}
        assert Activity.objects.get(lead=lead).data == {"outcome": "connected", "duration_minutes": 12}

    def test_a_meeting_in_the_past(self, as_sales, lead):
        when = timezone.now() - timedelta(days=2)

        response = as_sales.post(
            url(lead),
            {
                "kind": "meeting",
                "body": "Site visit",
                "duration_minutes": 60,
                "occurred_at": when.isoformat(),
            },
            format="json",
        )

        assert response.status_code == 201
        activity = Activity.objects.get(lead=lead)
        assert abs(activity.occurred_at - when) < timedelta(seconds=1)
        assert activity.data == {"duration_minutes": 60}
        assert as_sales.get(url(lead)).json()["activities"][0]["id"] == activity.pk

    def test_logging_does_not_change_the_lead_or_its_version(self, as_sales, lead):
        as_sales.post(url(lead), {"kind": "note", "body": "Hello"}, format="json")

        assert Lead.objects.get(pk=lead.pk).version == lead.version

    @pytest.mark.parametrize(
        "kind", ["stage_changed", "owner_changed", "created", "updated", "deleted", "restored", "imported"]
    )
    def test_a_system_kind_cannot_be_posted(self, as_manager, lead, kind):
        response = as_manager.post(url(lead), {"kind": kind, "body": "Forged"}, format="json")

        error = assert_error(response, 400, code="invalid", fields={"kind"})
        assert kind in error["fields"]["kind"][0]
        assert not Activity.objects.filter(lead=lead).exists()

    @pytest.mark.parametrize("kind", ["lunch", "", None, 3])
    def test_an_unknown_kind_is_a_400(self, as_sales, lead, kind):
        response = as_sales.post(url(lead), {"kind": kind, "body": "x"}, format="json")

        assert_error(response, 400, code="invalid", fields={"kind"})

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"kind": "note"}, "body"),
            ({"kind": "note", "body": "   "}, "body"),
            ({"kind": "call"}, "outcome"),
            ({"kind": "call", "outcome": "maybe"}, "outcome"),
            ({"kind": "call", "outcome": "connected", "duration_minutes": -1}, "duration_minutes"),
            ({"kind": "meeting", "duration_minutes": 1441}, "duration_minutes"),
            ({"kind": "meeting", "duration_minutes": "long"}, "duration_minutes"),
            ({"kind": "meeting", "occurred_at": "tomorrow"}, "occurred_at"),
        ],
    )
    def test_invalid_details_are_a_400_naming_the_field(self, as_sales, lead, payload, field):
        response = as_sales.post(url(lead), payload, format="json")

        assert_error(response, 400, code="invalid", fields={field})
        assert not Activity.objects.filter(lead=lead).exists()

    def test_an_activity_cannot_happen_in_the_future(self, as_sales, lead):
        tomorrow = (timezone.now() + timedelta(days=1)).isoformat()

        response = as_sales.post(url(lead), {"kind": "meeting", "occurred_at": tomorrow}, format="json")

        assert_error(response, 400, fields={"occurred_at"})

    def test_read_only_fields_in_the_body_are_ignored(self, as_sales, sales, other_sales, lead):
        response = as_sales.post(
            url(lead),
            {"kind": "note", "body": "Mine", "id": 424242, "actor": other_sales.pk, "data": {"forged": True}},
            format="json",
        )

        assert response.status_code == 201
        activity = Activity.objects.get(lead=lead)
        assert (activity.actor, activity.data) == (sales, {})
        assert activity.pk != 424242

    def test_other_sales_may_not_log_on_a_lead_they_only_read(self, as_other_sales, lead):
        response = as_other_sales.post(url(lead), {"kind": "note", "body": "Hi"}, format="json")

        assert_error(response, 403, code="permission_denied")

    def test_other_sales_may_log_when_sharing_is_write(self, settings, as_other_sales, lead):
        settings.LEAD_SHARING = "write"

        response = as_other_sales.post(url(lead), {"kind": "note", "body": "Hi"}, format="json")

        assert response.status_code == 201

    def test_a_lead_the_caller_may_not_see_is_a_404(self, settings, as_other_sales, lead):
        settings.LEAD_SHARING = "private"

        response = as_other_sales.post(url(lead), {"kind": "note", "body": "Hi"}, format="json")

        assert_error(response, 404)

    @pytest.mark.parametrize("method", ["put", "patch", "delete"])
    def test_the_timeline_is_append_only(self, as_manager, lead, method):
        response = getattr(as_manager, method)(url(lead), {"kind": "note", "body": "x"}, format="json")

        assert_error(response, 405, code="method_not_allowed")


@pytest.mark.parametrize("limit", [1, 100])
def test_the_timeline_runs_a_fixed_number_of_queries(
    django_assert_max_num_queries, as_sales, sales, lead, limit
):
    timeline_of(lead, 150, actor=sales)

    # The lead (visibility), leads merged into it, the count, the page with each actor joined.
    with django_assert_max_num_queries(4):
        response = as_sales.get(url(lead) + f"?limit={limit}")

    assert len(response.json()["activities"]) == limit
