"""The service rules: what each write stores, the activity it records, and what it announces."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.roles import Role
from leads import services
from leads.events import lead_changed
from leads.exceptions import DuplicateLead, StaleLead
from leads.models import Activity, Lead, Source, Stage
from leads.selectors import visible_leads
from leads.tests.factories import ActivityFactory, LeadFactory, StageFactory, UserFactory, stage_named

pytestmark = pytest.mark.django_db


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def announced():
    """Every lead_changed event sent during the test, as (event, lead_id, actor_id, payload)."""
    events = []

    def record(sender, event, lead_id, actor_id, payload, **kwargs):
        events.append((event, lead_id, actor_id, payload))

    lead_changed.connect(record, weak=False, dispatch_uid="test_services.announced")
    yield events
    lead_changed.disconnect(dispatch_uid="test_services.announced")


def activities_of(lead, kind=None):
    activities = Activity.objects.filter(lead=lead)
    if kind is not None:
        activities = activities.filter(kind=kind)
    return list(activities.order_by("id"))


def the_activity(lead, kind):
    """The single activity of `kind` on the lead (fails when there is none or several)."""
    activities = activities_of(lead, kind)
    assert len(activities) == 1, f"expected one {kind} activity, found {len(activities)}"
    return activities[0]


def fresh(lead):
    return Lead.objects.select_related("stage", "owner", "source").get(pk=lead.pk)


def error_fields(excinfo):
    return set(excinfo.value.message_dict)


def create(actor, **fields):
    fields.setdefault("first_name", "Ada")
    fields.setdefault("last_name", "Lovelace")
    fields.setdefault("email", "ada@analytical.example")
    return services.create_lead(actor=actor, **fields)


def miss_the_first_duplicate_check(monkeypatch):
    """Make the service's up-front duplicate check miss once, as when a concurrent writer
    saves the same e-mail between the check and the insert; the database then refuses it."""
    real_check = services._ensure_no_duplicate
    calls = []

    def check(**kwargs):
        calls.append(kwargs)
        if len(calls) > 1:
            real_check(**kwargs)

    monkeypatch.setattr(services, "_ensure_no_duplicate", check)


@pytest.fixture
def inactive_sales(db):
    return UserFactory(role=Role.SALES, is_active=False)


# --- create ---------------------------------------------------------------------------------


class TestCreateLead:
    def test_stores_the_lead_records_it_and_announces_it_after_commit(
        self, sales, announced, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            lead = create(sales, company="Analytical Engines", value="1500.50")
            assert announced == [], "announced before the transaction committed"

        stored = fresh(lead)
        assert (stored.first_name, stored.last_name, stored.company) == (
            "Ada",
            "Lovelace",
            "Analytical Engines",
        )
        assert stored.value == Decimal("1500.50")
        assert stored.version == 1
        assert stored.created_by == sales
        created = the_activity(lead, Activity.Kind.CREATED)
        assert created.actor == sales
        assert created.data == {
            "source": "Manual",
            "stage": "New Lead",
            "owner": str(sales),
            "stage_id": created.lead.stage_id,
            "owner_id": sales.pk,
        }
        assert announced == [("lead.created", lead.pk, sales.pk, {})]

    def test_rolled_back_creation_is_not_announced(
        self, sales, announced, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with pytest.raises(RuntimeError), transaction.atomic():
                create(sales)
                raise RuntimeError("the caller's transaction fails")
        assert callbacks == []
        assert announced == []
        assert not Lead.objects.exists()

    @pytest.mark.parametrize("first_name,last_name", [("", ""), ("   ", " \t ")])
    def test_needs_a_name(self, sales, first_name, last_name):
        with pytest.raises(ValidationError) as excinfo:
            create(sales, first_name=first_name, last_name=last_name)
        assert "first_name" in error_fields(excinfo)
        assert not Lead.objects.exists()

    def test_a_lone_surname_is_kept_as_the_name(self, sales):
        lead = create(sales, first_name="", last_name="Lovelace")
        assert (fresh(lead).first_name, fresh(lead).last_name) == ("Lovelace", "")

    @pytest.mark.parametrize(
        "full_name,first,last",
        [
            ("Ada King Lovelace", "Ada King", "Lovelace"),
            ("  Grace   Hopper ", "Grace", "Hopper"),
            ("Cher", "Cher", ""),
        ],
    )
    def test_a_full_name_is_split_into_first_and_last(self, sales, full_name, first, last):
        lead = create(sales, first_name="", last_name="", name=full_name)
        assert (fresh(lead).first_name, fresh(lead).last_name) == (first, last)

    def test_needs_an_email_or_a_phone(self, sales):
        with pytest.raises(ValidationError) as excinfo:
            create(sales, email="", phone="")
        assert {"email", "phone"} <= error_fields(excinfo)
        assert not Lead.objects.exists()

    @pytest.mark.parametrize(
        "contact", [{"email": "ada@analytical.example"}, {"email": "", "phone": "212 555 0123"}]
    )
    def test_either_email_or_phone_is_enough(self, sales, contact):
        lead = create(sales, **contact)
        assert Lead.objects.filter(pk=lead.pk).exists()

    def test_email_is_trimmed_and_stored_lower_case(self, sales):
        lead = create(sales, email="  Ada.Lovelace@Analytical.EXAMPLE ")
        assert fresh(lead).email == "ada.lovelace@analytical.example"

    @pytest.mark.parametrize("email", ["ada", "ada@", "ada at analytical.example", "@analytical.example"])
    def test_a_malformed_email_is_refused(self, sales, email):
        with pytest.raises(ValidationError) as excinfo:
            create(sales, email=email, phone="212 555 0123")
        assert error_fields(excinfo) == {"email"}
        assert not Lead.objects.exists()

    @pytest.mark.parametrize("typed", ["(212) 555-0123", "212.555.0123", "+1 212 555 0123", "1-212-555-0123"])
    def test_phone_is_stored_in_e164(self, sales, typed):
        lead = create(sales, email="", phone=typed)
        assert fresh(lead).phone == "+12125550123"

    def test_phone_without_country_code_is_read_in_the_default_region(self, sales, settings):
        settings.PHONE_DEFAULT_REGION = "GB"
        lead = create(sales, email="", phone="020 7946 0958")
        assert fresh(lead).phone == "+442079460958"

    @pytest.mark.parametrize("phone", ["12", "call me", "+1 999 555 0123"])
    def test_an_invalid_phone_is_refused(self, sales, phone):
        with pytest.raises(ValidationError) as excinfo:
            create(sales, email="", phone=phone)
        assert error_fields(excinfo) == {"phone"}

    def test_a_live_lead_with_the_same_email_is_a_duplicate(self, sales):
        existing = LeadFactory(email="ada@analytical.example")
        with pytest.raises(DuplicateLead) as excinfo:
            create(sales, email="ADA@Analytical.example")
        assert excinfo.value.existing == existing
        assert excinfo.value.field == "email"
        assert f"lead #{existing.pk}" in excinfo.value.message_dict["email"][0]
        assert Lead.objects.count() == 1

    def test_a_live_lead_with_the_same_phone_is_a_duplicate(self, sales):
        existing = LeadFactory(email="", phone="+12125550123")
        with pytest.raises(DuplicateLead) as excinfo:
            create(sales, email="", phone="(212) 555-0123")
        assert (excinfo.value.existing, excinfo.value.field) == (existing, "phone")
        assert Lead.objects.count() == 1

    def test_a_duplicate_that_slips_past_the_check_is_still_reported_with_the_existing_lead(
        self, sales, monkeypatch
    ):
        existing = LeadFactory(email="ada@analytical.example")
        miss_the_first_duplicate_check(monkeypatch)
        with pytest.raises(DuplicateLead) as excinfo:
            create(sales, email="ada@analytical.example")
        assert excinfo.value.existing == existing
        assert Lead.objects.count() == 1

    def test_a_soft_deleted_leads_email_and_phone_can_be_reused(self, sales):
        LeadFactory(email="ada@analytical.example", phone="+12125550123", deleted_at=timezone.now())
        lead = create(sales, email="ada@analytical.example", phone="212 555 0123")
        assert Lead.objects.live().get() == lead

    def test_owner_defaults_to_the_actor(self, sales):
        assert fresh(create(sales)).owner == sales

    def test_without_an_actor_the_lead_goes_to_the_unassigned_pool(self, db):
        lead = create(None)
        assert fresh(lead).owner is None
        assert fresh(lead).created_by is None
        assert the_activity(lead, Activity.Kind.CREATED).actor is None

    def test_sales_may_put_a_new_lead_in_the_unassigned_pool(self, sales):
        assert fresh(create(sales, owner=None)).owner is None

    def test_sales_cannot_create_a_lead_for_someone_else(self, sales, other_sales):
        with pytest.raises(PermissionDenied):
            create(sales, owner=other_sales)
        assert not Lead.objects.exists()

    @pytest.mark.parametrize("creator", ["manager", "admin_user"])
    def test_managers_and_admins_create_leads_for_anyone(self, request, creator, sales):
        lead = create(request.getfixturevalue(creator), owner=sales)
        assert fresh(lead).owner == sales

    def test_an_inactive_owner_is_refused(self, manager, inactive_sales):
        with pytest.raises(ValidationError) as excinfo:
            create(manager, owner=inactive_sales)
        assert error_fields(excinfo) == {"owner"}
        assert not Lead.objects.exists()

    def test_an_inactive_user_cannot_create(self, inactive_sales):
        with pytest.raises(PermissionDenied):
            create(inactive_sales)

    def test_default_stage_is_the_first_open_stage(self, sales):
        assert fresh(create(sales)).stage.name == "New Lead"

    def test_default_stage_skips_archived_stages_and_follows_board_order(self, sales):
        Stage.objects.filter(name="New Lead").update(archived=True)
        Stage.objects.filter(name="In Progress").update(position=1)
        assert fresh(create(sales)).stage.name == "In Progress"

    def test_default_stage_is_never_a_won_or_lost_stage(self, sales):
        Stage.objects.filter(kind=Stage.Kind.OPEN).update(archived=True)
        Stage.objects.filter(name="Won").update(position=0)
        with pytest.raises(ValidationError) as excinfo:
            create(sales)
        assert error_fields(excinfo) == {"stage"}

    def test_an_archived_stage_is_refused(self, sales):
        archived = StageFactory(name="Parked", archived=True)
        with pytest.raises(ValidationError) as excinfo:
            create(sales, stage=archived)
        assert "stage" in error_fields(excinfo)

    def test_a_lead_created_lost_needs_a_reason(self, sales):
        with pytest.raises(ValidationError) as excinfo:
            create(sales, stage=stage_named("Lost"))
        assert error_fields(excinfo) == {"lost_reason"}
        lead = create(sales, stage=stage_named("Lost"), lost_reason=" Chose a competitor ")
        assert fresh(lead).lost_reason == "Chose a competitor"

    def test_source_defaults_to_manual(self, sales):
        assert fresh(create(sales)).source.name == "Manual"

    @pytest.mark.parametrize("value", ["-1", "lots", "NaN", "12345678901234"])
    def test_an_invalid_value_is_refused(self, sales, value):
        with pytest.raises(ValidationError) as excinfo:
            create(sales, value=value)
        assert error_fields(excinfo) == {"value"}


# --- update ---------------------------------------------------------------------------------


class TestUpdateLead:
    def test_records_each_changed_field_old_and_new_and_bumps_the_version(
        self, sales, lead, announced, django_capture_on_commit_callbacks
    ):
        old_company = lead.company
        website = Source.objects.get(name="Website")
        with django_capture_on_commit_callbacks(execute=True):
            updated = services.update_lead(
                lead=lead, actor=sales, company="Difference Engines", source=website, value="2000"
            )
            assert announced == []

        stored = fresh(lead)
        assert (stored.company, stored.source, stored.value) == (
            "Difference Engines",
            website,
            Decimal("2000"),
        )
        assert stored.version == updated.version == 2
        activity = the_activity(lead, Activity.Kind.UPDATED)
        assert activity.actor == sales
        assert activity.data == {
            "changes": {
                "company": {"from": old_company, "to": "Difference Engines"},
                "source": {"from": "Manual", "to": "Website"},
                "value": {"from": "0.00", "to": "2000"},
            }
        }
        assert announced == [("lead.updated", lead.pk, sales.pk, {"fields": ["company", "source", "value"]})]

    def test_unchanged_fields_are_not_recorded(self, sales, lead):
        services.update_lead(lead=lead, actor=sales, first_name=lead.first_name, title="CTO")
        assert the_activity(lead, Activity.Kind.UPDATED).data == {
            "changes": {"title": {"from": "", "to": "CTO"}}
        }

    def test_a_write_that_changes_nothing_records_nothing(
        self, sales, announced, django_capture_on_commit_callbacks
    ):
        lead = LeadFactory(owner=sales, email="ada@analytical.example", value=Decimal("10"))
        with django_capture_on_commit_callbacks(execute=True):
            services.update_lead(
                lead=lead, actor=sales, email=" ADA@analytical.example", value="10.00", company=lead.company
            )
        assert fresh(lead).version == 1
        assert activities_of(lead) == []
        assert announced == []

    def test_email_and_phone_are_normalised(self, sales, lead):
        services.update_lead(lead=lead, actor=sales, email="New@Analytical.Example", phone="(212) 555-0123")
        assert (fresh(lead).email, fresh(lead).phone) == ("new@analytical.example", "+12125550123")

    def test_invalid_values_are_refused_and_nothing_changes(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.update_lead(lead=lead, actor=sales, email="not-an-email", company="Changed")
        assert error_fields(excinfo) == {"email"}
        assert fresh(lead).company == lead.company
        assert fresh(lead).version == 1
        assert activities_of(lead) == []

    def test_an_unknown_priority_is_refused(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.update_lead(lead=lead, actor=sales, priority="urgent")
        assert error_fields(excinfo) == {"priority"}

    def test_removing_both_email_and_phone_is_refused(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.update_lead(lead=lead, actor=sales, email="")
        assert "email" in error_fields(excinfo)
        assert fresh(lead).email == lead.email

    def test_clearing_the_name_is_refused(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.update_lead(lead=lead, actor=sales, first_name=" ", last_name="")
        assert "first_name" in error_fields(excinfo)

    def test_clearing_the_first_name_keeps_the_surname_as_the_name(self, sales):
        lead = LeadFactory(owner=sales, first_name="Ada", last_name="Lovelace")
        services.update_lead(lead=lead, actor=sales, first_name="")
        stored = fresh(lead)
        assert (stored.first_name, stored.last_name) == ("Lovelace", "")
        assert the_activity(lead, Activity.Kind.UPDATED).data == {
            "changes": {
                "first_name": {"from": "Ada", "to": "Lovelace"},
                "last_name": {"from": "Lovelace", "to": ""},
            }
        }

    def test_stage_and_owner_are_not_editable_here(self, sales, lead):
        with pytest.raises(TypeError):
            services.update_lead(lead=lead, actor=sales, stage=stage_named("Won"))

    def test_a_stale_version_is_refused_with_who_changed_it_and_when(self, sales, manager, lead):
        moved = services.move_lead(lead=lead, stage=stage_named("Reached Out"), actor=manager)
        move = the_activity(lead, Activity.Kind.STAGE_CHANGED)

        with pytest.raises(StaleLead) as excinfo:
            services.update_lead(lead=lead, actor=sales, expected_version=1, company="Stale Co")

        assert excinfo.value.changed_by == manager
        assert excinfo.value.changed_at == move.occurred_at
        assert excinfo.value.current.version == moved.version == 2
        assert str(manager) in str(excinfo.value)
        assert fresh(lead).company == lead.company
        assert activities_of(lead, Activity.Kind.UPDATED) == []

    def test_a_note_logged_since_does_not_count_as_the_change(
        self, sales, other_sales, manager, lead, settings
    ):
        settings.LEAD_SHARING = "write"
        services.move_lead(lead=lead, stage=stage_named("Reached Out"), actor=manager)
        services.log_activity(lead=fresh(lead), actor=other_sales, kind=Activity.Kind.NOTE, body="Rang twice")

        with pytest.raises(StaleLead) as excinfo:
            services.update_lead(lead=lead, actor=sales, expected_version=1, company="Stale Co")
        assert excinfo.value.changed_by == manager

    @pytest.mark.parametrize("expected_version", [2, "2"])
    def test_the_current_version_is_accepted(self, sales, manager, lead, expected_version):
        services.move_lead(lead=lead, stage=stage_named("Reached Out"), actor=manager)
        updated = services.update_lead(lead=lead, actor=sales, expected_version=expected_version, title="CEO")
        assert updated.version == 3

    def test_a_malformed_version_is_a_field_error(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.update_lead(lead=lead, actor=sales, expected_version="two", title="CEO")
        assert error_fields(excinfo) == {"version"}

    def test_taking_another_live_leads_email_is_a_duplicate(self, sales, lead):
        existing = LeadFactory(email="taken@prospect.example")
        with pytest.raises(DuplicateLead) as excinfo:
            services.update_lead(lead=lead, actor=sales, email="Taken@prospect.example")
        assert excinfo.value.existing == existing
        assert fresh(lead).email == lead.email

    def test_a_duplicate_that_slips_past_the_check_is_still_reported(self, sales, lead, monkeypatch):
        existing = LeadFactory(email="taken@prospect.example")
        miss_the_first_duplicate_check(monkeypatch)
        with pytest.raises(DuplicateLead) as excinfo:
            services.update_lead(lead=lead, actor=sales, email="taken@prospect.example")
        assert excinfo.value.existing == existing
        assert fresh(lead).email == lead.email
        assert fresh(lead).version == 1

    def test_taking_another_live_leads_phone_is_a_duplicate(self, sales, lead):
        existing = LeadFactory(email="", phone="+12125550123")
        with pytest.raises(DuplicateLead) as excinfo:
            services.update_lead(lead=lead, actor=sales, phone="212-555-0123")
        assert (excinfo.value.existing, excinfo.value.field) == (existing, "phone")

    def test_sales_cannot_edit_another_salespersons_lead_when_sharing_is_read(self, other_sales, lead):
        with pytest.raises(PermissionDenied):
            services.update_lead(lead=lead, actor=other_sales, title="CEO")
        assert fresh(lead).title == ""

    def test_sales_can_edit_another_salespersons_lead_when_sharing_is_write(
        self, other_sales, lead, settings
    ):
        settings.LEAD_SHARING = "write"
        services.update_lead(lead=lead, actor=other_sales, title="CEO")
        assert fresh(lead).title == "CEO"
        assert the_activity(lead, Activity.Kind.UPDATED).actor == other_sales

    def test_a_deleted_lead_cannot_be_edited(self, manager, lead):
        services.delete_lead(lead=lead, actor=manager)
        with pytest.raises(PermissionDenied):
            services.update_lead(lead=lead, actor=manager, title="CEO")


# --- move -----------------------------------------------------------------------------------


class TestMoveLead:
    def test_records_from_and_to_and_announces_after_commit(
        self, sales, announced, django_capture_on_commit_callbacks
    ):
        an_hour_ago = timezone.now() - timedelta(hours=1)
        lead = LeadFactory(owner=sales, created_at=an_hour_ago, stage_changed_at=an_hour_ago)
        new_lead, reached_out = stage_named("New Lead"), stage_named("Reached Out")

        with django_capture_on_commit_callbacks(execute=True):
            moved = services.move_lead(lead=lead, stage=reached_out, actor=sales, expected_version=1)
            assert announced == []

        stored = fresh(lead)
        assert stored.stage == reached_out
        assert stored.version == moved.version == 2
        assert stored.stage_changed_at > an_hour_ago
        activity = the_activity(lead, Activity.Kind.STAGE_CHANGED)
        assert activity.actor == sales
        assert activity.occurred_at == stored.stage_changed_at
        assert activity.data["from"] == "New Lead" and activity.data["to"] == "Reached Out"
        assert (activity.data["from_id"], activity.data["to_id"]) == (new_lead.pk, reached_out.pk)
        assert 3600 <= activity.data["seconds_in_previous"] < 3600 + 60
        assert announced == [
            ("lead.moved", lead.pk, sales.pk, {"from_stage": new_lead.pk, "to_stage": reached_out.pk})
        ]

    def test_time_in_stage_counts_from_the_move_into_it(self, sales):
        lead = LeadFactory(owner=sales, created_at=timezone.now() - timedelta(days=3))
        services.move_lead(lead=lead, stage=stage_named("Reached Out"), actor=sales)
        services.move_lead(lead=lead, stage=stage_named("In Progress"), actor=sales)
        last = activities_of(lead, Activity.Kind.STAGE_CHANGED)[-1]
        assert last.data["seconds_in_previous"] < 60

    def test_a_move_rolled_back_is_not_announced(
        self, sales, lead, announced, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with pytest.raises(RuntimeError), transaction.atomic():
                services.move_lead(lead=lead, stage=stage_named("Won"), actor=sales)
                raise RuntimeError("the caller's transaction fails")
        assert callbacks == []
        assert announced == []
        assert fresh(lead).stage.name == "New Lead"
        assert fresh(lead).version == 1
        assert activities_of(lead) == []

    def test_a_lost_stage_needs_a_reason(self, sales, lead):
        for reason in ("", "   "):
            with pytest.raises(ValidationError) as excinfo:
                services.move_lead(lead=lead, stage=stage_named("Lost"), actor=sales, lost_reason=reason)
            assert error_fields(excinfo) == {"lost_reason"}
        assert fresh(lead).stage.name == "New Lead"

    def test_a_lost_reason_is_stored_and_recorded(self, sales, lead):
        services.move_lead(
            lead=lead, stage=stage_named("Lost"), actor=sales, lost_reason=" Went with a rival "
        )
        assert fresh(lead).lost_reason == "Went with a rival"
        assert the_activity(lead, Activity.Kind.STAGE_CHANGED).data["lost_reason"] == "Went with a rival"

    def test_leaving_the_lost_stage_clears_the_reason(self, sales):
        lead = LeadFactory(owner=sales, stage=stage_named("Lost"), lost_reason="Budget")
        services.move_lead(lead=lead, stage=stage_named("In Progress"), actor=sales)
        assert fresh(lead).lost_reason == ""

    def test_a_too_long_lost_reason_is_refused(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.move_lead(lead=lead, stage=stage_named("Lost"), actor=sales, lost_reason="x" * 501)
        assert error_fields(excinfo) == {"lost_reason"}

    def test_moving_to_the_stage_it_is_in_is_refused(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.move_lead(lead=lead, stage=stage_named("New Lead"), actor=sales)
        assert error_fields(excinfo) == {"stage"}
        assert fresh(lead).version == 1
        assert activities_of(lead) == []

    def test_an_archived_stage_is_refused(self, sales, lead):
        parked = StageFactory(name="Parked", archived=True)
        with pytest.raises(ValidationError) as excinfo:
            services.move_lead(lead=lead, stage=parked, actor=sales)
        assert error_fields(excinfo) == {"stage"}
        assert fresh(lead).stage.name == "New Lead"

    def test_a_stale_version_is_refused(self, sales, manager, lead):
        services.move_lead(lead=lead, stage=stage_named("Reached Out"), actor=manager)
        with pytest.raises(StaleLead) as excinfo:
            services.move_lead(lead=lead, stage=stage_named("Won"), actor=sales, expected_version=1)
        assert excinfo.value.changed_by == manager
        assert excinfo.value.current.stage.name == "Reached Out"
        assert fresh(lead).stage.name == "Reached Out"

    @pytest.mark.parametrize("sharing", ["private", "read"])
    def test_sales_cannot_move_another_salespersons_lead(self, other_sales, lead, settings, sharing):
        settings.LEAD_SHARING = sharing
        with pytest.raises(PermissionDenied):
            services.move_lead(lead=lead, stage=stage_named("Won"), actor=other_sales)
        assert fresh(lead).stage.name == "New Lead"

    def test_sales_can_move_another_salespersons_lead_when_sharing_is_write(
        self, other_sales, lead, settings
    ):
        settings.LEAD_SHARING = "write"
        services.move_lead(lead=lead, stage=stage_named("Won"), actor=other_sales)
        assert fresh(lead).stage.name == "Won"
        assert the_activity(lead, Activity.Kind.STAGE_CHANGED).actor == other_sales

    def test_a_manager_moves_any_lead(self, manager, lead):
        services.move_lead(lead=lead, stage=stage_named("Won"), actor=manager)
        assert fresh(lead).stage.name == "Won"


# --- reassign and claim ---------------------------------------------------------------------


class TestReassignLead:
    @pytest.mark.parametrize("actor", ["manager", "admin_user"])
    def test_managers_and_admins_reassign_and_it_is_recorded(
        self, request, actor, sales, other_sales, lead, announced, django_capture_on_commit_callbacks
    ):
        actor = request.getfixturevalue(actor)
        with django_capture_on_commit_callbacks(execute=True):
            services.reassign_lead(lead=lead, owner=other_sales, actor=actor, expected_version=1)
            assert announced == []

        assert fresh(lead).owner == other_sales
        assert fresh(lead).version == 2
        activity = the_activity(lead, Activity.Kind.OWNER_CHANGED)
        assert activity.actor == actor
        assert activity.data == {
            "from": str(sales),
            "to": str(other_sales),
            "from_id": sales.pk,
            "to_id": other_sales.pk,
            "claimed": False,
        }
        assert announced == [
            (
                "lead.reassigned",
                lead.pk,
                actor.pk,
                {"from_owner": sales.pk, "to_owner": other_sales.pk, "activity_id": activity.pk},
            )
        ]

    @pytest.mark.parametrize("sharing", ["private", "read", "write"])
    def test_sales_cannot_reassign_even_their_own_lead(self, sales, other_sales, lead, settings, sharing):
        settings.LEAD_SHARING = sharing
        with pytest.raises(PermissionDenied):
            services.reassign_lead(lead=lead, owner=other_sales, actor=sales)
        assert fresh(lead).owner == sales

    def test_an_inactive_owner_is_refused(self, manager, lead, inactive_sales):
        with pytest.raises(ValidationError) as excinfo:
            services.reassign_lead(lead=lead, owner=inactive_sales, actor=manager)
        assert error_fields(excinfo) == {"owner"}
        assert activities_of(lead) == []

    def test_reassigning_to_nobody_returns_the_lead_to_the_pool(self, manager, sales, lead):
        services.reassign_lead(lead=lead, owner=None, actor=manager)
        assert fresh(lead).owner is None
        data = the_activity(lead, Activity.Kind.OWNER_CHANGED).data
        assert (data["from_id"], data["to"], data["to_id"]) == (sales.pk, None, None)

    def test_reassigning_to_the_current_owner_is_refused(self, manager, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.reassign_lead(lead=lead, owner=sales, actor=manager)
        assert error_fields(excinfo) == {"owner"}
        assert fresh(lead).version == 1

    def test_a_stale_version_is_refused(self, manager, other_sales, lead):
        services.move_lead(lead=lead, stage=stage_named("Won"), actor=manager)
        with pytest.raises(StaleLead):
            services.reassign_lead(lead=lead, owner=other_sales, actor=manager, expected_version=1)
        assert fresh(lead).owner == lead.owner

    def test_a_deleted_lead_cannot_be_reassigned(self, manager, other_sales, lead):
        services.delete_lead(lead=lead, actor=manager)
        with pytest.raises(PermissionDenied):
            services.reassign_lead(lead=lead, owner=other_sales, actor=manager)


class TestClaimLead:
    @pytest.mark.parametrize("sharing", ["private", "read", "write"])
    def test_sales_claims_an_unassigned_lead(
        self, sales, settings, sharing, announced, django_capture_on_commit_callbacks
    ):
        settings.LEAD_SHARING = sharing
        lead = LeadFactory(owner=None)
        with django_capture_on_commit_callbacks(execute=True):
            services.claim_lead(lead=lead, actor=sales)

        assert fresh(lead).owner == sales
        assert fresh(lead).version == 2
        activity = the_activity(lead, Activity.Kind.OWNER_CHANGED)
        assert activity.actor == sales
        assert (activity.data["from_id"], activity.data["to_id"], activity.data["claimed"]) == (
            None,
            sales.pk,
            True,
        )
        assert announced == [
            (
                "lead.reassigned",
                lead.pk,
                sales.pk,
                {"from_owner": None, "to_owner": sales.pk, "activity_id": activity.pk},
            )
        ]

    @pytest.mark.parametrize("sharing", ["read", "write"])
    def test_an_owned_lead_cannot_be_claimed(self, other_sales, lead, sales, settings, sharing):
        settings.LEAD_SHARING = sharing
        with pytest.raises(ValidationError) as excinfo:
            services.claim_lead(lead=lead, actor=other_sales)
        assert error_fields(excinfo) == {"owner"}
        assert fresh(lead).owner == sales
        assert activities_of(lead) == []

    def test_an_owned_lead_out_of_sight_is_not_revealed_by_claiming(self, other_sales, lead, settings):
        settings.LEAD_SHARING = "private"
        with pytest.raises(PermissionDenied):
            services.claim_lead(lead=lead, actor=other_sales)

    def test_a_deleted_lead_cannot_be_claimed(self, sales):
        lead = LeadFactory(owner=None, deleted_at=timezone.now())
        with pytest.raises(PermissionDenied):
            services.claim_lead(lead=lead, actor=sales)
        assert fresh(lead).owner is None

    def test_an_inactive_user_cannot_claim(self, inactive_sales):
        lead = LeadFactory(owner=None)
        with pytest.raises(PermissionDenied):
            services.claim_lead(lead=lead, actor=inactive_sales)

    def test_a_stale_version_is_refused(self, sales, manager):
        lead = LeadFactory(owner=None)
        services.move_lead(lead=lead, stage=stage_named("Reached Out"), actor=manager)
        with pytest.raises(StaleLead):
            services.claim_lead(lead=lead, actor=sales, expected_version=1)
        assert fresh(lead).owner is None


# --- delete and restore ---------------------------------------------------------------------


class TestDeleteAndRestore:
    @pytest.mark.parametrize("actor", ["manager", "admin_user"])
    def test_delete_is_soft_and_recorded(
        self, request, actor, sales, lead, announced, django_capture_on_commit_callbacks
    ):
        actor = request.getfixturevalue(actor)
        with django_capture_on_commit_callbacks(execute=True):
            services.delete_lead(lead=lead, actor=actor, reason=" Spam ")

        stored = Lead.objects.get(pk=lead.pk)
        assert stored.deleted_at is not None
        assert stored.version == 2
        assert lead not in visible_leads(sales)
        assert lead not in visible_leads(actor)
        activity = the_activity(lead, Activity.Kind.DELETED)
        assert (activity.actor, activity.body) == (actor, "Spam")
        assert announced == [("lead.deleted", lead.pk, actor.pk, {})]

    @pytest.mark.parametrize("sharing", ["private", "read", "write"])
    def test_sales_cannot_delete_even_their_own_lead(self, sales, lead, settings, sharing):
        settings.LEAD_SHARING = sharing
        with pytest.raises(PermissionDenied):
            services.delete_lead(lead=lead, actor=sales)
        assert fresh(lead).deleted_at is None

    def test_deleting_twice_is_refused(self, manager, lead):
        services.delete_lead(lead=lead, actor=manager)
        with pytest.raises(ValidationError):
            services.delete_lead(lead=lead, actor=manager)
        assert len(activities_of(lead, Activity.Kind.DELETED)) == 1

    def test_restore_brings_the_lead_back_and_is_recorded(
        self, manager, sales, lead, announced, django_capture_on_commit_callbacks
    ):
        services.delete_lead(lead=lead, actor=manager)
        with django_capture_on_commit_callbacks(execute=True):
            services.restore_lead(lead=lead, actor=manager)

        stored = fresh(lead)
        assert stored.deleted_at is None
        assert stored.version == 3
        assert lead in visible_leads(sales)
        assert the_activity(lead, Activity.Kind.RESTORED).actor == manager
        assert announced[-1] == ("lead.restored", lead.pk, manager.pk, {})

    def test_sales_cannot_restore(self, manager, sales, lead):
        services.delete_lead(lead=lead, actor=manager)
        with pytest.raises(PermissionDenied):
            services.restore_lead(lead=lead, actor=sales)
        assert Lead.objects.get(pk=lead.pk).deleted_at is not None

    def test_restoring_a_live_lead_is_refused(self, manager, lead):
        with pytest.raises(ValidationError):
            services.restore_lead(lead=lead, actor=manager)
        assert activities_of(lead) == []

    @pytest.mark.parametrize("contact", [{"email": "ada@analytical.example"}, {"phone": "+12125550123"}])
    def test_restore_is_refused_when_a_live_lead_took_the_email_or_phone(self, manager, contact):
        deleted = LeadFactory(email="ada@analytical.example", phone="+12125550123", deleted_at=timezone.now())
        newcomer = LeadFactory(**{"email": "other@prospect.example", "phone": "", **contact})
        with pytest.raises(DuplicateLead) as excinfo:
            services.restore_lead(lead=deleted, actor=manager)
        assert excinfo.value.existing == newcomer
        assert Lead.objects.get(pk=deleted.pk).deleted_at is not None
        assert activities_of(deleted, Activity.Kind.RESTORED) == []


# --- log_activity ---------------------------------------------------------------------------


class TestLogActivity:
    def test_a_note_is_added_to_the_timeline_without_changing_the_lead(
        self, sales, lead, announced, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            note = services.log_activity(lead=lead, actor=sales, kind=Activity.Kind.NOTE, body=" Likes blue ")
            assert announced == []

        assert the_activity(lead, Activity.Kind.NOTE) == note
        assert (note.actor, note.body, note.data) == (sales, "Likes blue", {})
        assert fresh(lead).version == 1
        assert announced == [("activity.logged", lead.pk, sales.pk, {"activity_id": note.pk, "kind": "note"})]

    def test_an_empty_note_is_refused(self, sales, lead):
        with pytest.raises(ValidationError) as excinfo:
            services.log_activity(lead=lead, actor=sales, kind=Activity.Kind.NOTE, body="  ")
        assert error_fields(excinfo) == {"body"}
        assert activities_of(lead) == []

    def test_a_call_records_its_outcome_and_duration(self, sales, lead):
        call = services.log_activity(
            lead=lead, actor=sales, kind=Activity.Kind.CALL, outcome="connected", duration_minutes="15"
        )
        assert (
            the_activity(lead, Activity.Kind.CALL).data
            == call.data
            == {
                "outcome": "connected",
                "duration_minutes": 15,
            }
        )

    @pytest.mark.parametrize("outcome", ["", "went great"])
    def test_a_call_needs_a_known_outcome(self, sales, lead, outcome):
        with pytest.raises(ValidationError) as excinfo:
            services.log_activity(lead=lead, actor=sales, kind=Activity.Kind.CALL, outcome=outcome)
        assert error_fields(excinfo) == {"outcome"}
        assert activities_of(lead) == []

    def test_a_meeting_is_logged(self, sales, lead):
        services.log_activity(
            lead=lead, actor=sales, kind=Activity.Kind.MEETING, body="Demo", duration_minutes=60
        )
        meeting = the_activity(lead, Activity.Kind.MEETING)
        assert (meeting.body, meeting.data) == ("Demo", {"duration_minutes": 60})

    @pytest.mark.parametrize("minutes", [0, 1440])
    def test_duration_at_the_bounds_is_accepted(self, sales, lead, minutes):
        meeting = services.log_activity(lead=lead, actor=sales, kind="meeting", duration_minutes=minutes)
        assert meeting.data["duration_minutes"] == minutes

    @pytest.mark.parametrize("minutes", [-1, 1441, "an hour", "1.5"])
    def test_duration_out_of_bounds_is_refused(self, sales, lead, minutes):
        with pytest.raises(ValidationError) as excinfo:
            services.log_activity(lead=lead, actor=sales, kind="meeting", duration_minutes=minutes)
        assert error_fields(excinfo) == {"duration_minutes"}

    @pytest.mark.parametrize("kind", sorted(set(Activity.Kind.values) - set(Activity.LOGGABLE_KINDS)))
    def test_kinds_the_services_write_cannot_be_logged_by_hand(self, sales, lead, kind):
        with pytest.raises(ValidationError) as excinfo:
            services.log_activity(lead=lead, actor=sales, kind=kind, body="Forged")
        assert error_fields(excinfo) == {"kind"}
        assert activities_of(lead) == []

    def test_an_activity_in_the_future_is_refused(self, sales, lead):
        tomorrow = timezone.now() + timedelta(days=1)
        with pytest.raises(ValidationError) as excinfo:
            services.log_activity(lead=lead, actor=sales, kind="note", body="Call", occurred_at=tomorrow)
        assert error_fields(excinfo) == {"occurred_at"}

    def test_an_activity_in_the_past_keeps_its_date(self, sales, lead):
        yesterday = timezone.now() - timedelta(days=1)
        services.log_activity(lead=lead, actor=sales, kind="call", outcome="no_answer", occurred_at=yesterday)
        assert the_activity(lead, Activity.Kind.CALL).occurred_at == yesterday

    def test_sales_cannot_log_on_another_salespersons_lead_when_sharing_is_read(self, other_sales, lead):
        with pytest.raises(PermissionDenied):
            services.log_activity(lead=lead, actor=other_sales, kind="note", body="Hi")
        assert activities_of(lead) == []

    def test_nothing_is_logged_on_a_deleted_lead(self, manager, lead):
        services.delete_lead(lead=lead, actor=manager)
        with pytest.raises(PermissionDenied):
            services.log_activity(lead=fresh(lead), actor=manager, kind="note", body="Hi")


# --- stages ---------------------------------------------------------------------------------


class TestRetireStage:
    def test_an_unused_stage_is_deleted(self, manager):
        stage = StageFactory(name="Parked")
        assert services.retire_stage(stage=stage, actor=manager) == "deleted"
        assert not Stage.objects.filter(pk=stage.pk).exists()

    def test_a_stage_with_leads_is_archived_and_its_leads_keep_it(self, manager):
        stage = StageFactory(name="Parked")
        lead = LeadFactory(stage=stage)
        assert services.retire_stage(stage=stage, actor=manager) == "archived"
        assert Stage.objects.get(pk=stage.pk).archived
        assert fresh(lead).stage == stage

    def test_a_stage_holding_only_deleted_leads_is_archived_not_deleted(self, manager):
        stage = StageFactory(name="Parked")
        LeadFactory(stage=stage, deleted_at=timezone.now())
        assert services.retire_stage(stage=stage, actor=manager) == "archived"
        assert Stage.objects.filter(pk=stage.pk, archived=True).exists()

    def test_sales_cannot_retire_a_stage(self, sales):
        stage = StageFactory(name="Parked")
        with pytest.raises(PermissionDenied):
            services.retire_stage(stage=stage, actor=sales)
        assert Stage.objects.filter(pk=stage.pk, archived=False).exists()


# --- the timeline is append-only ------------------------------------------------------------


class TestActivityIsAppendOnly:
    def test_an_existing_activity_cannot_be_saved_again(self, lead):
        activity = ActivityFactory(lead=lead, body="Original")
        activity.body = "Rewritten"
        with pytest.raises(TypeError):
            activity.save()
        assert Activity.objects.get(pk=activity.pk).body == "Original"

    def test_an_activity_cannot_be_deleted(self, lead):
        activity = ActivityFactory(lead=lead)
        with pytest.raises(TypeError):
            activity.delete()
        assert Activity.objects.filter(pk=activity.pk).exists()

    def test_activities_cannot_be_updated_in_bulk(self, lead):
        ActivityFactory(lead=lead, body="Original")
        with pytest.raises(TypeError):
            Activity.objects.filter(lead=lead).update(body="Rewritten")
        assert Activity.objects.get(lead=lead).body == "Original"

    def test_activities_cannot_be_deleted_in_bulk(self, lead):
        ActivityFactory(lead=lead)
        with pytest.raises(TypeError):
            Activity.objects.filter(lead=lead).delete()
        assert Activity.objects.filter(lead=lead).count() == 1


def test_log_activity_judges_the_lead_as_it_is_now_not_as_the_caller_read_it(sales, manager):
    lead = LeadFactory(owner=sales)
    stale_copy = Lead.objects.get(pk=lead.pk)
    services.delete_lead(lead=lead, actor=manager)
    with pytest.raises(PermissionDenied):
        services.log_activity(lead=stale_copy, actor=sales, kind="note", body="Too late")
    assert not Activity.objects.filter(kind="note").exists()


def test_create_refuses_an_archived_source(sales):
    Source.objects.filter(name="Facebook").update(archived=True)
    with pytest.raises(ValidationError) as caught:
        services.create_lead(
            actor=sales,
            name="Ann Archive",
            email="ann@example.com",
            source=Source.objects.get(name="Facebook"),
        )
    assert "archived" in caught.value.message_dict["source"][0]


def test_the_last_live_stage_cannot_be_retired(manager):
    Stage.objects.exclude(name="New Lead").update(archived=True)
    with pytest.raises(ValidationError):
        services.retire_stage(stage=stage_named("New Lead"), actor=manager)
    assert not stage_named("New Lead").archived


def test_change_lead_refuses_a_lost_reason_without_a_move_to_lost(manager):
    lead = LeadFactory()
    with pytest.raises(ValidationError) as caught:
        services.change_lead(lead=lead, actor=manager, lost_reason="Too expensive", company="Initech")
    assert "lost_reason" in caught.value.message_dict
    assert Lead.objects.get(pk=lead.pk).company != "Initech"  # all or nothing
