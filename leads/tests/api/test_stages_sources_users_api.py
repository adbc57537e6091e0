"""/api/stages/, /api/sources/, /api/users/: everyone reads; managers and admins change stages, sources."""

import pytest

from accounts.roles import Role
from leads.models import Lead, Source, Stage
from leads.tests.api.contract import SOURCE_KEYS, STAGE_KEYS, USER_KEYS, assert_error, client_for
from leads.tests.factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

DEFAULT_STAGES = ["New Lead", "Reached Out", "No Response", "In Progress", "Won", "Lost"]
DEFAULT_SOURCES = ["Facebook", "Import", "LinkedIn", "Manual", "Referral", "Website"]
MANAGERS = ["manager", "admin_user"]
EVERYONE = ["sales", "manager", "admin_user"]


@pytest.fixture
def as_role(request):
    """An APIClient signed in as the user fixture named by the test's `role` parameter."""
    return client_for(request.getfixturevalue(request.node.callspec.params["role"]))


# --- stages ------------------------------------------------------------------------------------


class TestStages:
    @pytest.mark.parametrize("role", EVERYONE)
    def test_everyone_reads_the_stages_in_board_order(self, as_role, role):
        response = as_role.get("/api/stages/")

        assert response.status_code == 200
        rows = response.json()
        assert isinstance(rows, list)
        assert all(set(row) == STAGE_KEYS for row in rows)
        assert [row["name"] for row in rows] == DEFAULT_STAGES
        won = next(row for row in rows if row["name"] == "Won")
        stage = Stage.objects.get(name="Won")
        assert won == {
            "id": stage.pk,
            "name": "Won",
            "position": stage.position,
            "kind": "won",
            "archived": False,
        }

    @pytest.mark.parametrize("role", EVERYONE)
    def test_everyone_reads_one_stage(self, as_role, role):
        stage = Stage.objects.get(name="Lost")

        response = as_role.get(f"/api/stages/{stage.pk}/")

        assert response.status_code == 200
        assert response.json() == {
            "id": stage.pk,
            "name": "Lost",
            "position": stage.position,
            "kind": "lost",
            "archived": False,
        }

    def test_archived_stages_are_listed_with_their_flag(self, as_sales):
        Stage.objects.filter(name="No Response").update(archived=True)

        rows = as_sales.get("/api/stages/").json()

        assert [row["name"] for row in rows if row["archived"]] == ["No Response"]

    def test_an_unknown_stage_is_a_404(self, as_sales):
        assert_error(as_sales.get("/api/stages/999999/"), 404, code="not_found")

    def test_anonymous_is_a_401(self, api):
        assert_error(api.get("/api/stages/"), 401, code="not_authenticated")

    @pytest.mark.parametrize("role", MANAGERS)
    def test_managers_create(self, as_role, role):
        response = as_role.post(
            "/api/stages/", {"name": "Negotiation", "position": 45, "kind": "open"}, format="json"
        )

        assert response.status_code == 201, response.json()
        body = response.json()
        assert set(body) == STAGE_KEYS
        stage = Stage.objects.get(name="Negotiation")
        assert body == {
            "id": stage.pk,
            "name": "Negotiation",
            "position": 45,
            "kind": "open",
            "archived": False,
        }
        names = [row["name"] for row in as_role.get("/api/stages/").json()]
        assert names.index("Negotiation") == names.index("In Progress") + 1

    def test_sales_may_not_create(self, as_sales):
        response = as_sales.post("/api/stages/", {"name": "Negotiation"}, format="json")

        assert_error(response, 403, code="permission_denied")
        assert not Stage.objects.filter(name="Negotiation").exists()

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"name": "Won"}, "name"),
            ({"name": "won"}, "name"),  # names are looked up in any case, so they must differ by more
            ({"name": ""}, "name"),
            ({}, "name"),
            ({"name": "Later", "kind": "someday"}, "kind"),
            ({"name": "Later", "position": -1}, "position"),
            ({"name": "x" * 81}, "name"),
        ],
    )
    def test_invalid_stages_are_a_400_naming_the_field(self, as_manager, payload, field):
        before = Stage.objects.count()

        response = as_manager.post("/api/stages/", payload, format="json")

        assert_error(response, 400, code="invalid", fields={field})
        assert Stage.objects.count() == before

    def test_renaming_a_stage_to_another_case_of_its_own_name_is_fine(self, as_manager):
        stage = Stage.objects.get(name="No Response")

        response = as_manager.patch(f"/api/stages/{stage.pk}/", {"name": "no response"}, format="json")

        assert response.status_code == 200
        assert response.json()["name"] == "no response"

    def test_renaming_a_stage_to_another_stage_in_another_case_is_a_400(self, as_manager):
        stage = Stage.objects.get(name="No Response")

        response = as_manager.patch(f"/api/stages/{stage.pk}/", {"name": "in progress"}, format="json")

        assert_error(response, 400, fields={"name"})

    @pytest.mark.parametrize("role", MANAGERS)
    def test_managers_update(self, as_role, role):
        stage = Stage.objects.get(name="No Response")

        patched = as_role.patch(f"/api/stages/{stage.pk}/", {"name": "Gone Quiet"}, format="json")
        put = as_role.put(
            f"/api/stages/{stage.pk}", {"name": "Ghosted", "position": 5, "kind": "open"}, format="json"
        )

        assert patched.status_code == 200
        assert patched.json()["name"] == "Gone Quiet"
        assert put.status_code == 200
        assert put.json() == {
            "id": stage.pk,
            "name": "Ghosted",
            "position": 5,
            "kind": "open",
            "archived": False,
        }
        assert as_role.get("/api/stages/").json()[0]["name"] == "Ghosted"

    def test_sales_may_not_update(self, as_sales):
        stage = Stage.objects.get(name="Won")

        response = as_sales.patch(f"/api/stages/{stage.pk}/", {"name": "Closed"}, format="json")

        assert_error(response, 403, code="permission_denied")
        assert Stage.objects.get(pk=stage.pk).name == "Won"

    def test_a_used_stage_is_archived_not_deleted(self, as_manager, lead):
        stage = lead.stage

        response = as_manager.delete(f"/api/stages/{stage.pk}/")

        assert response.status_code == 200
        body = response.json()
        assert set(body) == STAGE_KEYS
        assert (body["id"], body["archived"]) == (stage.pk, True)
        assert Stage.objects.get(pk=stage.pk).archived
        assert Lead.objects.get(pk=lead.pk).stage_id == stage.pk

    def test_archiving_an_archived_stage_again_still_answers_200(self, as_manager, lead):
        Stage.objects.filter(pk=lead.stage_id).update(archived=True)

        response = as_manager.delete(f"/api/stages/{lead.stage_id}/")

        assert response.status_code == 200
        assert response.json()["archived"] is True

    def test_a_stage_used_only_by_deleted_leads_is_archived(self, as_manager, manager):
        stage = Stage.objects.get(name="Won")
        LeadFactory(owner=manager, stage=stage, deleted_at="2024-01-01T00:00:00Z")

        response = as_manager.delete(f"/api/stages/{stage.pk}/")

        assert response.status_code == 200
        assert Stage.objects.filter(pk=stage.pk, archived=True).exists()

    @pytest.mark.parametrize("role", MANAGERS)
    def test_an_unused_stage_is_deleted(self, as_role, role):
        stage = Stage.objects.get(name="No Response")

        response = as_role.delete(f"/api/stages/{stage.pk}")

        assert response.status_code == 204
        assert response.content == b""
        assert not Stage.objects.filter(pk=stage.pk).exists()

    def test_sales_may_not_delete(self, as_sales):
        stage = Stage.objects.get(name="No Response")

        assert_error(as_sales.delete(f"/api/stages/{stage.pk}/"), 403, code="permission_denied")
        assert Stage.objects.filter(pk=stage.pk, archived=False).exists()

    @pytest.mark.parametrize("used", [False, True])
    def test_the_last_live_stage_can_be_neither_deleted_nor_archived(self, as_manager, manager, used):
        last = Stage.objects.get(name="New Lead")
        Stage.objects.exclude(pk=last.pk).update(archived=True)
        if used:
            LeadFactory(owner=manager, stage=last)

        deleted = as_manager.delete(f"/api/stages/{last.pk}/")
        archived = as_manager.patch(f"/api/stages/{last.pk}/", {"archived": True}, format="json")

        assert_error(deleted, 400, code="invalid")
        assert_error(archived, 400, code="invalid", fields={"archived"})
        assert Stage.objects.filter(pk=last.pk, archived=False).exists()

    def test_an_archived_stage_can_go_when_another_live_stage_remains(self, as_manager):
        keep, spare = Stage.objects.filter(name__in=["New Lead", "Won"]).order_by("position")
        Stage.objects.exclude(pk__in=[keep.pk, spare.pk]).update(archived=True)

        assert as_manager.delete(f"/api/stages/{spare.pk}/").status_code == 204
        assert as_manager.delete(f"/api/stages/{keep.pk}/").status_code == 400
        # Archived stages are not live: removing one never empties the board.
        archived = Stage.objects.filter(archived=True).first()
        assert as_manager.delete(f"/api/stages/{archived.pk}/").status_code == 204


# --- sources ------------------------------------------------------------------------------------


class TestSources:
    @pytest.mark.parametrize("role", EVERYONE)
    def test_everyone_reads_the_sources(self, as_role, role):
        response = as_role.get("/api/sources/")

        assert response.status_code == 200
        rows = response.json()
        assert all(set(row) == SOURCE_KEYS for row in rows)
        assert [row["name"] for row in rows] == DEFAULT_SOURCES
        facebook = Source.objects.get(name="Facebook")
        assert rows[0] == {"id": facebook.pk, "name": "Facebook", "archived": False}

    @pytest.mark.parametrize("role", EVERYONE)
    def test_everyone_reads_one_source(self, as_role, role):
        source = Source.objects.get(name="Referral")

        response = as_role.get(f"/api/sources/{source.pk}/")

        assert response.json() == {"id": source.pk, "name": "Referral", "archived": False}

    def test_anonymous_is_a_401(self, api):
        assert_error(api.get("/api/sources/"), 401, code="not_authenticated")

    @pytest.mark.parametrize("role", MANAGERS)
    def test_managers_create_and_update(self, as_role, role):
        created = as_role.post("/api/sources/", {"name": "Trade Show"}, format="json")
        source_id = created.json()["id"]
        renamed = as_role.patch(f"/api/sources/{source_id}/", {"name": "Trade Fair"}, format="json")
        archived = as_role.put(
            f"/api/sources/{source_id}", {"name": "Trade Fair", "archived": True}, format="json"
        )

        assert created.status_code == 201
        assert created.json() == {"id": source_id, "name": "Trade Show", "archived": False}
        assert renamed.status_code == 200
        assert renamed.json()["name"] == "Trade Fair"
        assert archived.json() == {"id": source_id, "name": "Trade Fair", "archived": True}

    def test_sales_may_not_create_update_or_delete(self, as_sales):
        source = Source.objects.get(name="Website")

        created = as_sales.post("/api/sources/", {"name": "Trade Show"}, format="json")
        renamed = as_sales.patch(f"/api/sources/{source.pk}/", {"name": "Web"}, format="json")
        deleted = as_sales.delete(f"/api/sources/{source.pk}/")

        for response in (created, renamed, deleted):
            assert_error(response, 403, code="permission_denied")
        assert not Source.objects.filter(name="Trade Show").exists()
        assert Source.objects.filter(pk=source.pk, name="Website", archived=False).exists()

    @pytest.mark.parametrize(
        ("payload", "field"), [({"name": "Facebook"}, "name"), ({"name": "FACEBOOK"}, "name"), ({}, "name")]
    )
    def test_invalid_sources_are_a_400_naming_the_field(self, as_manager, payload, field):
        response = as_manager.post("/api/sources/", payload, format="json")

        assert_error(response, 400, code="invalid", fields={field})

    def test_a_used_source_is_archived_and_an_unused_one_deleted(self, as_manager, lead):
        used = lead.source
        unused = Source.objects.get(name="Import")

        archived = as_manager.delete(f"/api/sources/{used.pk}/")
        deleted = as_manager.delete(f"/api/sources/{unused.pk}/")

        assert archived.status_code == 200
        assert archived.json() == {"id": used.pk, "name": used.name, "archived": True}
        assert Lead.objects.get(pk=lead.pk).source_id == used.pk
        assert deleted.status_code == 204
        assert not Source.objects.filter(pk=unused.pk).exists()

    def test_an_archived_source_is_refused_for_new_leads(self, as_manager):
        Source.objects.filter(name="Facebook").update(archived=True)

        response = as_manager.post(
            "/api/leads/", {"name": "A B", "email": "ab@x.example", "source": "facebook"}, format="json"
        )

        assert_error(response, 400, fields={"source"})


# --- users ------------------------------------------------------------------------------------


class TestUsers:
    @pytest.mark.parametrize("role", EVERYONE)
    def test_everyone_reads_the_team_for_owner_pickers(self, as_role, role, sales, manager, admin_user):
        gone = UserFactory(email="gone@test.example", first_name="Zed", last_name="Gone", is_active=False)

        response = as_role.get("/api/users/")

        assert response.status_code == 200
        rows = response.json()
        assert all(set(row) == USER_KEYS for row in rows)
        by_id = {row["id"]: row for row in rows}
        assert set(by_id) == {sales.pk, manager.pk, admin_user.pk, gone.pk}
        assert by_id[sales.pk] == {
            "id": sales.pk,
            "name": f"{sales.first_name} {sales.last_name}",
            "email": "sales@test.example",
            "role": "sales",
            "active": True,
        }
        assert (by_id[manager.pk]["role"], by_id[admin_user.pk]["role"]) == ("manager", "admin")
        assert by_id[gone.pk]["active"] is False

    def test_a_user_without_a_name_is_named_by_email(self, as_sales):
        nameless = UserFactory(email="nameless@test.example", first_name="", last_name="", role=Role.SALES)

        response = as_sales.get(f"/api/users/{nameless.pk}/")

        assert response.json()["name"] == "nameless@test.example"

    def test_no_password_or_staff_flags_leak(self, as_sales, manager):
        body = as_sales.get(f"/api/users/{manager.pk}").json()

        assert set(body) == USER_KEYS

    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
    def test_users_cannot_be_changed_here(self, as_admin, sales, method):
        target = "/api/users/" if method == "post" else f"/api/users/{sales.pk}/"

        response = getattr(as_admin, method)(target, {"role": "admin"}, format="json")

        assert_error(response, 405, code="method_not_allowed")
        sales.refresh_from_db()
        assert sales.role == Role.SALES

    def test_anonymous_is_a_401(self, api):
        assert_error(api.get("/api/users/"), 401)


# --- query counts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/stages/", "/api/sources/", "/api/users/"])
def test_each_list_is_one_query(django_assert_max_num_queries, as_sales, manager, path):
    UserFactory.create_batch(20)
    Stage.objects.bulk_create(Stage(name=f"Extra {i}", position=100 + i) for i in range(20))
    Source.objects.bulk_create(Source(name=f"Extra {i}") for i in range(20))

    with django_assert_max_num_queries(1):
        response = as_sales.get(path)

    assert len(response.json()) >= 20
