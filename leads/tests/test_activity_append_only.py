"""The activity timeline is append-only through every door: admin, API, pages, models and the database."""

import pytest
from django.contrib import admin
from django.db import IntegrityError, connection, transaction
from django.urls import get_resolver, reverse
from rest_framework.test import APIClient

from leads.activity_guard import PURGE_SETTING, activity_purge
from leads.admin import ActivityInline
from leads.models import Activity, Lead
from leads.tests.factories import ActivityFactory

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the trigger is PostgreSQL's; the models guard SQLite"
)


@pytest.fixture
def activity(lead, sales):
    return ActivityFactory(lead=lead, actor=sales, body="Called, left a message")


def unchanged(activity):
    fresh = Activity.objects.get(pk=activity.pk)
    return (fresh.body, fresh.kind, fresh.lead_id) == (activity.body, activity.kind, activity.lead_id)


class TestAdmin:
    def test_nobody_adds_changes_or_deletes_an_activity_in_admin_not_even_an_admin(
        self, client, admin_user, activity
    ):
        client.force_login(admin_user)

        assert client.get(reverse("admin:leads_activity_add")).status_code == 403
        change = reverse("admin:leads_activity_change", args=[activity.pk])
        client.post(change, {"body": "rewritten", "kind": "note", "lead": activity.lead_id})
        assert (
            client.post(
                reverse("admin:leads_activity_delete", args=[activity.pk]), {"post": "yes"}
            ).status_code
            == 403
        )
        listing = reverse("admin:leads_activity_changelist")
        response = client.post(
            listing, {"action": "delete_selected", "_selected_action": [activity.pk], "post": "yes"}
        )
        assert response.status_code in (200, 302)
        assert unchanged(activity)

    def test_the_lead_pages_inline_is_read_only_too(self, rf, admin_user):
        request = rf.get("/")
        request.user = admin_user
        inline = ActivityInline(Lead, admin.site)

        assert not inline.has_add_permission(request, None)
        assert not inline.has_change_permission(request, None)
        assert not inline.has_delete_permission(request, None)
        assert not inline.can_delete

    def test_the_activity_admin_offers_no_delete_action(self, rf, admin_user):
        request = rf.get("/")
        request.user = admin_user
        model_admin = admin.site._registry[Activity]

        assert "delete_selected" not in model_admin.get_actions(request)


class TestApi:
    @pytest.mark.parametrize("method", ["put", "patch", "delete"])
    def test_the_timeline_endpoint_takes_no_edits_or_deletes(self, sales, lead, activity, method):
        api = APIClient()
        api.force_authenticate(sales)

        response = getattr(api, method)(f"/api/leads/{lead.pk}/activities/", {"body": "x"}, format="json")

        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert unchanged(activity)

    @pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
    def test_there_is_no_endpoint_for_one_activity(self, sales, lead, activity, method):
        api = APIClient()
        api.force_authenticate(sales)

        for url in (f"/api/activities/{activity.pk}/", f"/api/leads/{lead.pk}/activities/{activity.pk}/"):
            assert getattr(api, method)(url).status_code == 404
        assert unchanged(activity)


class TestPages:
    def test_the_only_page_route_for_activities_logs_a_new_one(self):
        names = []

        def walk(resolver, prefix=""):
            for pattern in resolver.url_patterns:
                route = prefix + str(pattern.pattern)
                if hasattr(pattern, "url_patterns"):
                    if not route.startswith(("admin/", "api/")):
                        walk(pattern, route)
                elif "activit" in route or "activit" in (pattern.name or ""):
                    names.append(pattern.name)

        walk(get_resolver())

        assert names == ["log_activity"]

    @pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
    def test_it_takes_posts_only(self, sales_client, lead, activity, method):
        response = getattr(sales_client, method)(reverse("leads:log_activity", args=[lead.pk]))

        assert response.status_code == 405
        assert unchanged(activity)


class TestModel:
    def test_saving_an_existing_activity_raises(self, activity):
        activity.body = "rewritten"
        with pytest.raises(TypeError, match="append-only"):
            activity.save()
        assert unchanged(Activity.objects.get(pk=activity.pk))

    def test_deleting_one_raises(self, activity):
        with pytest.raises(TypeError, match="append-only"):
            activity.delete()
        assert Activity.objects.filter(pk=activity.pk).exists()

    def test_queryset_update_and_delete_raise(self, activity):
        with pytest.raises(TypeError, match="append-only"):
            Activity.objects.filter(pk=activity.pk).update(body="rewritten")
        with pytest.raises(TypeError, match="append-only"):
            Activity.objects.filter(pk=activity.pk).delete()
        assert unchanged(activity)


@postgres_only
class TestDatabase:
    def test_raw_sql_cannot_update_an_activity(self, activity):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("UPDATE leads_activity SET body = 'rewritten' WHERE id = %s", [activity.pk])
        assert unchanged(activity)

    def test_raw_sql_cannot_delete_an_activity(self, activity):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM leads_activity WHERE id = %s", [activity.pk])
        assert Activity.objects.filter(pk=activity.pk).exists()

    def test_the_orms_back_doors_are_refused_too(self, activity):
        with pytest.raises(IntegrityError), transaction.atomic():
            Activity._base_manager.filter(pk=activity.pk)._raw_delete(connection.alias)
        with pytest.raises(IntegrityError), transaction.atomic():
            Activity._base_manager.filter(pk=activity.pk).update(body="rewritten")
        assert unchanged(activity)

    def test_the_benchmark_purge_may_delete_within_its_block_only(self, activity, lead, sales):
        scratch, later = ActivityFactory(lead=lead, actor=sales), ActivityFactory(lead=lead, actor=sales)
        with transaction.atomic(), connection.cursor() as cursor:
            with activity_purge(connection):
                cursor.execute("DELETE FROM leads_activity WHERE id = %s", [scratch.pk])
                # The exception is for removing scratch rows, never for rewriting history.
                with pytest.raises(IntegrityError), transaction.atomic():
                    cursor.execute("UPDATE leads_activity SET body = 'x' WHERE id = %s", [activity.pk])
            cursor.execute("SELECT current_setting(%s, true)", [PURGE_SETTING])
            assert cursor.fetchone()[0] == "off"
            with pytest.raises(IntegrityError), transaction.atomic():
                cursor.execute("DELETE FROM leads_activity WHERE id = %s", [later.pk])
        assert not Activity.objects.filter(pk=scratch.pk).exists()
        assert Activity.objects.filter(pk=later.pk).exists()
        assert unchanged(activity)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a no-op without the trigger")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_purge_needs_a_transaction():
    with pytest.raises(RuntimeError, match="transaction"):
        with activity_purge(connection):
            pass
