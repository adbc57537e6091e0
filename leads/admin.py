"""Django admin for managers: leads (every change through leads.services), stages, sources, activities."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from leads import policies, selectors, services
from leads.exceptions import DuplicateLead, StaleLead
from leads.filters import MAX_QUERY_LENGTH, search_leads
from leads.intake import (
    AssignmentRule,
    assignment_rule,
    next_in_turn,
    rotation_candidates,
    update_assignment_rule,
)
from leads.mail import retry_emails
from leads.models import Activity, FollowUp, Lead, OutgoingEmail, Source, Stage

# How many leads one bulk action may touch: each is its own service call and transaction,
# so a larger batch belongs in a background job, not in one admin request.
MAX_LEADS_PER_ACTION = 500
ACTIVITY_INLINE_LIMIT = 50
FAILURES_LISTED = 10


class CappedCountPaginator(Paginator):
    """A paginator whose count stops at `cap`, so a list never runs a full COUNT(*).

    Counting every matching row means reading every matching row: on a million leads that
    is seconds per page view, and filters make it worse, not better. Counting a LIMITed
    subquery (SELECT COUNT(*) FROM (SELECT id ... LIMIT cap + 1)) stops early. Past the cap
    the list says "more than 10,000" and pages through the first 10,000; deeper than that,
    a filter or a search finds a lead sooner than paging would.
    """

    cap = 10_000

    @cached_property
    def _rows_up_to_cap(self):
        return self.object_list.order_by().values("pk")[: self.cap + 1].count()

    @cached_property
    def count(self):
        return min(self._rows_up_to_cap, self.cap)

    @property
    def capped(self):
        return self._rows_up_to_cap > self.cap


# --- timeline text ---------------------------------------------------------------------------


def _shown(value):
    return "—" if value in (None, "") else str(value)


def describe_activity(activity):
    """What an activity recorded, in one line: from what to what, the outcome, the note."""
    data = activity.data or {}
    kind = activity.kind
    if kind == Activity.Kind.STAGE_CHANGED:
        detail = f"{_shown(data.get('from'))} → {_shown(data.get('to'))}"
        if data.get("lost_reason"):
            detail += f" (lost: {data['lost_reason']})"
    elif kind == Activity.Kind.OWNER_CHANGED:
        detail = f"{data.get('from') or 'unassigned'} → {data.get('to') or 'unassigned'}"
    elif kind == Activity.Kind.UPDATED:
        detail = "; ".join(
            f"{field}: {_shown(change.get('from'))} → {_shown(change.get('to'))}"
            for field, change in (data.get("changes") or {}).items()
        )
    elif kind == Activity.Kind.CALL and data.get("outcome") in Activity.CallOutcome.values:
        detail = Activity.CallOutcome(data["outcome"]).label
    else:
        detail = ""
    if data.get("duration_minutes") is not None:
        detail = f"{detail} ({data['duration_minutes']} min)".strip()
    return " — ".join(part for part in (detail, activity.body) if part)


# --- list filters ----------------------------------------------------------------------------


class LiveOrDeletedFilter(admin.SimpleListFilter):
    """Live leads unless asked: deleted ones are kept for restoring, not for working."""

    title = "state"
    parameter_name = "state"
    default = "live"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("deleted", "Deleted"), ("all", "All")]

    def choices(self, changelist):
        current = self.value() or self.default
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        value = self.value() or self.default
        if value == "live":
            return queryset.filter(deleted_at__isnull=True)
        if value == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        if value == "all":
            return queryset
        raise IncorrectLookupParameters(f"Unknown state {value!r}")


def _row_id(value):
    """The id in a query-string value, or None; guards against numbers no id column can hold."""
    return int(value) if value and value.isdecimal() and len(value) < 19 else None


class OwnerFilter(admin.SimpleListFilter):
    """Me, unassigned, or one person (?owner=<id>, linked from the owner column).

    Django's related-field filter lists every user in the sidebar, which stops working long
    before ten thousand users; this one lists two choices plus the person picked.
    """

    title = "owner"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        choices = [("me", "Me"), ("unassigned", "Unassigned")]
        picked = _row_id(self.value())
        if picked is not None:
            user = get_user_model().objects.filter(pk=picked).first()
            if user is not None:
                choices.append((str(picked), str(user)))
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == "me":
            return queryset.filter(owner=request.user)
        if value == "unassigned":
            return queryset.filter(owner__isnull=True)
        if _row_id(value) is not None:
            return queryset.filter(owner_id=_row_id(value))
        raise IncorrectLookupParameters(f"Unknown owner {value!r}")


# --- saving through the services -----------------------------------------------------------


class ServiceRefusal(Exception):
    """A service refused what an admin form asked; `errors` is {field: [messages]} to show."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def _field_errors(exc):
    if isinstance(exc, ValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    return {NON_FIELD_ERRORS: [str(exc) or "You may not make this change."]}


def _reason(exc):
    """A refusal as one sentence, for messages and the per-lead report of a bulk action."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or "Not allowed."


def call_service(service, **kwargs):
    """Call a service; turn its refusal into a ServiceRefusal, which ServiceAdmin's views catch."""
    try:
        return service(**kwargs)
    except (ValidationError, PermissionDenied) as exc:
        raise ServiceRefusal(_field_errors(exc)) from exc


class ServiceErrorsForm(forms.ModelForm):
    """A ModelForm that also shows the errors a service gave for this very input."""

    # Set by ServiceAdmin.get_form when it validates a refused input again.
    service_errors = {}

    def clean(self):
        cleaned_data = super().clean()
        for field, field_messages in self.service_errors.items():
            self.add_error(field if field in self.fields else None, field_messages)
        return cleaned_data


class ServiceAdmin(admin.ModelAdmin):
    """A ModelAdmin whose save_model and delete_model call services, which may say no.

    A refusal (ServiceRefusal) propagates out of the admin's transaction, so nothing is
    written. The change form then validates the same input again with the refusal's errors
    attached and comes back as the user typed it, errors beside the fields; the list and
    the delete page show the refusal as a message. Never a 500.
    """

    form = ServiceErrorsForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        errors = getattr(request, "_service_errors", None)
        if errors:
            form = type(form.__name__, (form,), {"service_errors": errors})
        return form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefusal as refusal:
            request._service_errors = refusal.errors
            return super().changeform_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except ServiceRefusal as refusal:
            # A row edited in the list (list_editable) was refused; the whole save rolled back.
            self._report_refusal(request, refusal)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceRefusal as refusal:
            self._report_refusal(request, refusal)
            change = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change"
            return HttpResponseRedirect(reverse(change, args=[object_id]))

    def _report_refusal(self, request, refusal):
        for field_messages in refusal.errors.values():
            self.message_user(request, " ".join(field_messages), messages.ERROR)


# --- the lead form and the bulk actions' forms -----------------------------------------------


class LeadAdminForm(ServiceErrorsForm):
    """The lead form. It only parses input: LeadAdmin.save_model hands it to leads.services."""

    # The version the page was drawn from: saving a page older than the lead is refused.
    expected_version = forms.CharField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Lead
        fields = (
            "first_name", "last_name", "email", "phone", "company", "title",
            "stage", "lost_reason", "owner", "source", "value", "priority", "notes",
        )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["expected_version"].initial = self.instance.version

    def clean(self):
        # Checked here rather than on the hidden field, whose errors the admin would not show.
        if self.instance.pk is not None and not self.cleaned_data.get("expected_version", "").isdecimal():
            self.add_error(
                None, "This page did not say which version of the lead it shows; reload it and try again."
            )
        return super().clean()

    def _post_clean(self):
        # ModelForm would copy the input onto the instance and run model validation here. The
        # services do both after normalising (an e-mail in capitals is not a duplicate of the
        # same one in lower case), and their messages, not constraint names, are what people read.
        pass


class MoveToStageForm(forms.Form):
    stage = forms.ModelChoiceField(queryset=Stage.objects.filter(archived=False), empty_label=None)
    lost_reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Needed when the stage is a lost stage.",
    )

    def __init__(self, *args, admin_site=None, **kwargs):
        super().__init__(*args, **kwargs)

    def clean(self):
        cleaned_data = super().clean()
        stage = cleaned_data.get("stage")
        if stage is not None and stage.is_lost and not cleaned_data.get("lost_reason", "").strip():
            self.add_error("lost_reason", f"Say why these leads were lost before moving them to {stage}.")
        return cleaned_data


class ReassignOwnerForm(forms.Form):
    unassign = forms.BooleanField(
        required=False, label="Unassign instead", help_text="Put the leads back in the unassigned pool."
    )

    def __init__(self, *args, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        # Autocomplete, as on the lead form: a select of every user does not scale.
        self.fields["owner"] = forms.ModelChoiceField(
            queryset=selectors.assignable_owners(),
            required=False,
            widget=AutocompleteSelect(Lead._meta.get_field("owner"), admin_site),
            help_text="Type a name or an e-mail address.",
        )
        self.order_fields(["owner", "unassign"])

    def clean(self):
        cleaned_data = super().clean()
        owner, unassign = cleaned_data.get("owner"), cleaned_data.get("unassign")
        if owner is not None and unassign:
            raise ValidationError("Choose an owner or tick “Unassign instead”, not both.")
        if owner is None and not unassign and "owner" not in self.errors:
            raise ValidationError("Choose an owner, or tick “Unassign instead”.")
        return cleaned_data


# --- activities shown on the lead ----------------------------------------------------------


class LatestActivitiesFormSet(BaseInlineFormSet):
    """Only the newest activities: a long-lived lead's whole timeline would swamp the page."""

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            newest = self.queryset.order_by("-occurred_at", "-id")
            # A formset cannot take a sliced queryset, but it can take one filtered by a slice.
            self._queryset = newest.filter(pk__in=newest.values("pk")[:ACTIVITY_INLINE_LIMIT])
        return self._queryset


class ActivityInline(admin.TabularInline):
    model = Activity
    formset = LatestActivitiesFormSet
    fields = ("occurred_at", "kind", "actor", "summary")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = f"latest activities (newest first, up to {ACTIVITY_INLINE_LIMIT})"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="what happened")
    def summary(self, activity):
        return describe_activity(activity)


# --- leads -----------------------------------------------------------------------------------


def _count_leads(n):
    return f"{n} lead" if n == 1 else f"{n} leads"


def _failure_report(heading, failures):
    """One message naming each refused lead and why (line breaks: admin styles nested lists as messages)."""
    items = format_html_join(
        "", "<br>{} (#{}): {}", ((lead.name, lead.pk, reason) for lead, reason in failures[:FAILURES_LISTED])
    )
    more = len(failures) - FAILURES_LISTED
    tail = format_html("<br>…and {} more.", more) if more > 0 else ""
    return format_html("{} {}:{}{}", heading, _count_leads(len(failures)), items, tail)


@admin.register(Lead)
class LeadAdmin(ServiceAdmin):
    form = LeadAdminForm
    list_display = (
        "lead_name", "email", "phone", "company", "stage", "source", "owner_link", "value",
        "created_at", "deleted_at",
    )  # fmt: skip
    list_filter = (
        LiveOrDeletedFilter,
        OwnerFilter,
        "stage",
        "source",
        ("created_at", admin.DateFieldListFilter),
        "priority",
    )
    search_fields = ("first_name", "last_name", "email", "phone", "company")
    search_help_text = "Name, e-mail, company or phone digits; every word must match."
    list_select_related = ("stage", "source", "owner")
    # No date_hierarchy: its year links come from SELECT DISTINCT date_trunc(...) over every lead
    # (0.2-0.3 s at a million); the "Created" filter offers the same ranges for free.
    ordering = ("-created_at",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    # Facets count every filter choice over the whole table: the COUNT(*) the paginator avoids.
    show_facets = admin.ShowFacets.NEVER
    autocomplete_fields = ("owner",)
    readonly_fields = (
        "version", "created_by", "created_at", "updated_at", "stage_changed_at", "deleted_at",
        "full_timeline",
    )  # fmt: skip
    actions = ("move_to_stage", "reassign_owner", "soft_delete", "restore")

    # Page layout -------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        pipeline = ["stage", "lost_reason", "owner", "source", ("value", "priority")]
        if obj is not None and self.has_change_permission(request, obj):
            pipeline.append("expected_version")
        fieldsets = [
            ("Contact", {"fields": [("first_name", "last_name"), ("email", "phone"), ("company", "title")]}),
            ("Pipeline", {"fields": pipeline}),
            ("Notes", {"fields": ["notes"]}),
        ]
        if obj is not None:
            fieldsets.append(("Record", {"fields": list(self.readonly_fields)}))
        return fieldsets

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in ("owner", "stage", "source"):
            # Users, stages and sources are managed on their own pages, not from inside a lead.
            formfield.widget.can_add_related = False
            formfield.widget.can_change_related = False
        return formfield

    def get_inlines(self, request, obj):
        return [ActivityInline] if obj is not None else []

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("owner", request.user.pk)
        try:
            initial.setdefault("stage", services.default_stage().pk)
        except ValidationError:
            pass  # no open stage yet: the form asks for one
        manual = selectors.default_source_id()
        if manual is not None:
            initial.setdefault("source", manual)
        return initial

    def has_change_permission(self, request, obj=None):
        # A deleted lead is read-only until restored, as on every other door.
        if obj is not None and obj.is_deleted:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_deleted:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Django's delete_selected deletes rows; leads are only ever soft-deleted.
        actions.pop("delete_selected", None)
        return actions

    def get_search_results(self, request, queryset, search_term):
        # The board's search, so a phone typed as "+1 (212) 555" matches here as it does there.
        if not search_term.strip():
            return queryset, False
        return search_leads(queryset, search_term[:MAX_QUERY_LENGTH]), False

    # Columns and read-only fields ------------------------------------------------------------

    @admin.display(description="name", ordering="first_name")
    def lead_name(self, lead):
        return lead.name

    @admin.display(description="owner", ordering="owner__first_name")
    def owner_link(self, lead):
        if lead.owner is None:
            return "unassigned"
        return format_html(
            '<a href="?owner={}" title="Only {}’s leads">{}</a>', lead.owner_id, lead.owner, lead.owner
        )

    @admin.display(description="timeline")
    def full_timeline(self, lead):
        url = reverse(f"{self.admin_site.name}:leads_activity_changelist") + f"?lead={lead.pk}"
        link = format_html('<a href="{}">Every activity of this lead</a>', url)
        try:
            page = format_html(' · <a href="{}">the lead page</a>', lead.get_absolute_url())
        except NoReverseMatch:
            page = ""
        return format_html("{}{}", link, page)

    # Saving through the services ------------------------------------------------------------

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except StaleLead as stale:
            # Show the lead as it is now rather than the outdated input over it.
            self.message_user(request, str(stale), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        save = self._save_service(request, form, obj if change else None)
        try:
            lead = save()
        except DuplicateLead as exc:
            raise ServiceRefusal({exc.field: [self._duplicate_message(exc)]}) from exc
        except (ValidationError, PermissionDenied) as exc:
            raise ServiceRefusal(_field_errors(exc)) from exc
        # The admin goes on with `obj` (messages, history, inlines): make it the saved lead.
        obj.pk = lead.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def _save_service(self, request, form, lead):
        """The service call that saves this form, as a function of no arguments."""
        data = form.cleaned_data
        if lead is None:
            fields = {name: data[name] for name in services.EDITABLE_FIELDS if name in data}
            return lambda: services.create_lead(
                actor=request.user, owner=data.get("owner"), stage=data["stage"],
                lost_reason=data.get("lost_reason", ""), **fields,
            )  # fmt: skip
        changed = set(form.changed_data)
        if "lost_reason" in changed and "stage" not in changed:
            message = "The lost reason is recorded when the lead moves to a lost stage: change the stage too."
            raise ServiceRefusal({"lost_reason": [message]})
        # Only what the user changed: change_lead records each part as the service of its own.
        parts = {
            name: data[name] for name in (*services.EDITABLE_FIELDS, "stage", "owner") if name in changed
        }
        return lambda: services.change_lead(
            lead=lead, actor=request.user, expected_version=data["expected_version"],
            lost_reason=data.get("lost_reason", ""), **parts,
        )  # fmt: skip

    def _duplicate_message(self, exc):
        url = reverse(f"{self.admin_site.name}:leads_lead_change", args=[exc.existing.pk])
        return format_html('{} <a href="{}">Open it</a>.', " ".join(exc.messages), url)

    # Deleting is a soft delete ----------------------------------------------------------------

    def get_deleted_objects(self, objs, request):
        # A soft delete removes no rows, so there are no related rows to list or to protect.
        leads = list(objs)
        perms_needed = set() if self.has_delete_permission(request) else {self.opts.verbose_name}
        return [str(lead) for lead in leads], {self.opts.verbose_name_plural: len(leads)}, perms_needed, []

    def delete_model(self, request, obj):
        call_service(services.delete_lead, lead=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        self._apply_each(
            request,
            list(queryset),
            lambda lead: services.delete_lead(lead=lead, actor=request.user),
            done=lambda n: f"Deleted {_count_leads(n)}.",
            failed="Could not delete",
        )

    def log_deletions(self, request, queryset):
        # Nothing is removed: record a change, so the admin's history keeps linking to the lead.
        for lead in queryset:
            self.log_change(request, lead, "Deleted (soft: it can be restored).")

    # Bulk actions ---------------------------------------------------------------------------

    @admin.action(description="Move to stage…", permissions=["change"])
    def move_to_stage(self, request, queryset):
        def move(leads, data):
            stage, reason = data["stage"], data["lost_reason"]
            self._apply_each(
                request,
                leads,
                lambda lead: services.move_lead(
                    lead=lead, stage=stage, actor=request.user, lost_reason=reason
                ),
                done=lambda n: f"Moved {_count_leads(n)} to {stage}.",
                failed="Could not move",
            )

        return self._action_with_form(
            request, queryset, action="move_to_stage", form_class=MoveToStageForm,
            title="Move leads to a stage", submit_label="Move", apply=move,
        )  # fmt: skip

    @admin.action(description="Reassign owner…", permissions=["change"])
    def reassign_owner(self, request, queryset):
        def reassign(leads, data):
            owner = data["owner"]
            self._apply_each(
                request,
                leads,
                lambda lead: services.reassign_lead(lead=lead, owner=owner, actor=request.user),
                done=lambda n: (
                    f"Gave {_count_leads(n)} to {owner}." if owner else f"Unassigned {_count_leads(n)}."
                ),
                failed="Could not reassign",
            )

        return self._action_with_form(
            request, queryset, action="reassign_owner", form_class=ReassignOwnerForm,
            title="Reassign leads", submit_label="Reassign", apply=reassign,
        )  # fmt: skip

    @admin.action(description="Delete (soft: they can be restored)", permissions=["delete"])
    def soft_delete(self, request, queryset):
        leads = self._selected_leads(request, queryset)
        if leads is not None:
            self._apply_each(
                request,
                leads,
                lambda lead: services.delete_lead(lead=lead, actor=request.user),
                done=lambda n: (
                    f"Deleted {_count_leads(n)}; the “Deleted” state filter lists them for restoring."
                ),
                failed="Could not delete",
            )

    @admin.action(description="Restore deleted leads", permissions=["delete"])
    def restore(self, request, queryset):
        leads = self._selected_leads(request, queryset)
        if leads is not None:
            self._apply_each(
                request,
                leads,
                lambda lead: services.restore_lead(lead=lead, actor=request.user),
                done=lambda n: f"Restored {_count_leads(n)}.",
                failed="Could not restore",
            )

    def _selected_leads(self, request, queryset):
        leads = list(queryset.select_related("stage", "owner")[: MAX_LEADS_PER_ACTION + 1])
        if len(leads) > MAX_LEADS_PER_ACTION:
            self.message_user(
                request,
                f"Select at most {MAX_LEADS_PER_ACTION} leads at a time; nothing was changed. "
                "Narrow the list with a filter first.",
                messages.ERROR,
            )
            return None
        return leads

    def _action_with_form(self, request, queryset, *, action, form_class, title, submit_label, apply):
        """An action that asks for input first: show its form, and apply it once it is valid."""
        leads = self._selected_leads(request, queryset)
        if leads is None:
            return None
        data = request.POST if "apply" in request.POST else None
        form = form_class(data, admin_site=self.admin_site)
        if form.is_bound and form.is_valid():
            apply(leads, form.cleaned_data)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "form": form,
            "leads": leads,
            "action": action,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "submit_label": submit_label,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/leads/lead/action_form.html", context)

    def _apply_each(self, request, leads, change, *, done, failed):
        """Change each lead through its service, in its own transaction; a refusal skips one lead only."""
        succeeded, failures = 0, []
        for lead in leads:
            try:
                change(lead)
            except (PermissionDenied, ValidationError, StaleLead) as exc:
                failures.append((lead, _reason(exc)))
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, done(succeeded), messages.SUCCESS)
        if failures:
            self.message_user(request, _failure_report(failed, failures), messages.WARNING)


# --- stages and sources ----------------------------------------------------------------------


def _lead_counts(field, objs):
    """{pk: number of leads, deleted ones included} for the stages or sources in objs."""
    rows = (
        Lead.objects.filter(**{f"{field}__in": [obj.pk for obj in objs]})
        .order_by()
        .values(field)
        .annotate(n=Count("pk"))
    )
    return {row[field]: row["n"] for row in rows}


class PipelineSettingAdmin(ServiceAdmin):
    """Stages and sources: saved by their service, and archived instead of deleted while leads use them.

    Leads keep their stage and source (PROTECT), so the retire service archives one that
    leads use and deletes only an unused one; the pages here say which will happen.
    """

    save_service = None  # services.save_stage / save_source
    retire_service = None  # services.retire_stage / retire_source
    archived_means = ""  # what archiving changes, for the message

    def get_queryset(self, request):
        # The live leads column, counted in the list's own query.
        live = Count("leads", filter=Q(leads__deleted_at__isnull=True))
        return super().get_queryset(request).annotate(live_leads=live)

    @admin.display(description="live leads", ordering="live_leads")
    def lead_count(self, obj):
        return obj.live_leads

    def save_model(self, request, obj, form, change):
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        call_service(self.save_service, actor=request.user, **{self.opts.model_name: obj}, **changed)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Django's delete_selected would say "deleted" of rows that were archived.
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Delete (archive those that leads use)", permissions=["delete"])
    def retire_selected(self, request, queryset):
        items = list(queryset)
        archived = [obj for obj in items if self._retire(request, obj) == "archived"]
        deleted = len(items) - len(archived)
        if deleted:
            self.message_user(request, f"Deleted {deleted} unused {self._noun(deleted)}.", messages.SUCCESS)
        if archived:
            self.message_user(request, self._archived_message(archived), messages.WARNING)

    def get_deleted_objects(self, objs, request):
        items = list(objs)
        in_use = _lead_counts(self.opts.model_name, items)
        lines = [
            f"{obj}: {_count_leads(in_use[obj.pk])} {'uses' if in_use[obj.pk] == 1 else 'use'} it, "
            "so it will be archived instead"
            if obj.pk in in_use
            else str(obj)
            for obj in items
        ]
        perms_needed = set() if self.has_delete_permission(request) else {self.opts.verbose_name}
        return lines, {self.opts.verbose_name_plural: len(items)}, perms_needed, []

    def delete_model(self, request, obj):
        if self._retire(request, obj) == "archived":
            self.message_user(request, self._archived_message([obj]), messages.WARNING)

    def delete_queryset(self, request, queryset):
        self.retire_selected(request, queryset)

    def log_deletions(self, request, queryset):
        items = list(queryset)
        in_use = _lead_counts(self.opts.model_name, items)
        for obj in items:
            if obj.pk in in_use:
                self.log_change(request, obj, "Archived instead of deleted: leads use it.")
        unused = [obj for obj in items if obj.pk not in in_use]
        if unused:
            super().log_deletions(request, unused)

    def response_delete(self, request, obj_display, obj_id):
        if self.model.objects.filter(pk=obj_id).exists():
            # Archived, not deleted: delete_model said so; "deleted successfully" would not be true.
            changelist = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_changelist"
            return HttpResponseRedirect(reverse(changelist))
        return super().response_delete(request, obj_display, obj_id)

    def _retire(self, request, obj):
        return call_service(self.retire_service, actor=request.user, **{self.opts.model_name: obj})

    def _noun(self, n):
        return self.opts.verbose_name if n == 1 else self.opts.verbose_name_plural

    def _archived_message(self, objs):
        names = ", ".join(f"“{obj}”" for obj in objs)
        were = "it was" if len(objs) == 1 else "they were"
        return f"Leads use {names}, so {were} archived instead of deleted: {self.archived_means}"


@admin.register(Stage)
class StageAdmin(PipelineSettingAdmin):
    list_display = ("name", "position", "kind", "archived", "lead_count")
    list_editable = ("position", "archived")
    list_filter = ("archived", "kind")
    ordering = ("position", "id")
    search_fields = ("name",)
    actions = ("retire_selected",)
    save_service = staticmethod(services.save_stage)
    retire_service = staticmethod(services.retire_stage)
    archived_means = "archived stages leave the board, and their leads keep them."


@admin.register(Source)
class SourceAdmin(PipelineSettingAdmin):
    list_display = ("name", "archived", "lead_count")
    list_editable = ("archived",)
    list_filter = ("archived",)
    ordering = ("name",)
    search_fields = ("name",)
    actions = ("retire_selected",)
    save_service = staticmethod(services.save_source)
    retire_service = staticmethod(services.retire_source)
    archived_means = "archived sources are not offered for new leads, and their leads keep them."


# --- the activity log ------------------------------------------------------------------------


class ActivityLeadFilter(admin.SimpleListFilter):
    """One lead's timeline (?lead=<id>, linked from the lead's admin page)."""

    title = "lead"
    parameter_name = "lead"

    def lookups(self, request, model_admin):
        picked = _row_id(self.value())
        lead = Lead.objects.filter(pk=picked).first() if picked is not None else None
        return [(str(lead.pk), str(lead))] if lead is not None else []

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        if _row_id(self.value()) is None:
            raise IncorrectLookupParameters(f"Unknown lead {self.value()!r}")
        return queryset.filter(lead_id=_row_id(self.value()))


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    """The timeline across all leads. Append-only: nobody adds, edits or deletes here."""

    list_display = ("occurred_at", "lead_link", "kind", "actor", "summary")
    list_select_related = ("lead", "actor")
    list_filter = (ActivityLeadFilter, "kind")
    # Newest recorded first by primary key: sorting a big table by occurred_at reads all of it.
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = ("lead", "kind", "actor", "occurred_at", "body", "data")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="lead", ordering="lead_id")
    def lead_link(self, activity):
        url = reverse(f"{self.admin_site.name}:leads_lead_change", args=[activity.lead_id])
        return format_html('<a href="{}">{}</a>', url, activity.lead)

    @admin.display(description="what happened")
    def summary(self, activity):
        return describe_activity(activity)


# --- the assignment rule -------------------------------------------------------------------


class AssignmentRuleForm(forms.ModelForm):
    class Meta:
        model = AssignmentRule
        fields = ("rule", "members")
        widgets = {"members": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only people who can take a lead are offered; inactive members are skipped anyway.
        self.fields["members"].queryset = rotation_candidates()
        self.fields["members"].label = "Salespeople in the rotation"


@admin.register(AssignmentRule)
class AssignmentRuleAdmin(admin.ModelAdmin):
    """How leads from the public form get an owner: the one rule, edited in place by managers."""

    form = AssignmentRuleForm
    fields = ("rule", "members", "turns")
    readonly_fields = ("turns",)

    def has_module_permission(self, request):
        return policies.is_manager(request.user)

    def has_view_permission(self, request, obj=None):
        return policies.is_manager(request.user)

    def has_change_permission(self, request, obj=None):
        return policies.is_manager(request.user)

    def has_add_permission(self, request):
        # One rule for the whole team, made on first use (opening it here, or the first capture):
        # it is edited, never added. (No exists() query here: the admin asks on every page.)
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        """A list of one row is a detour: open the rule itself (the admin index links here)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rule = assignment_rule()
        url = reverse(f"{self.admin_site.name}:leads_assignmentrule_change", args=[rule.pk])
        return HttpResponseRedirect(url)

    @admin.display(description="whose turn")
    def turns(self, rule):
        if rule.pk is None:
            return "—"
        upcoming = next_in_turn(rule)
        last = rule.last_assigned or "nobody yet"
        if rule.rule != AssignmentRule.Rule.ROUND_ROBIN:
            return f"New leads go to the unassigned pool. Last given out: {last}."
        if upcoming is None:
            return f"Nobody active is in the rotation, so new leads go to the unassigned pool. Last: {last}."
        return f"Last lead went to {last}; the next goes to {upcoming}."

    def save_model(self, request, obj, form, change):
        saved = update_assignment_rule(
            actor=request.user, rule=form.cleaned_data["rule"], members=form.cleaned_data["members"]
        )
        obj.pk = saved.pk

    def save_related(self, request, form, formsets, change):
        # update_assignment_rule() already set the members.
        pass


# --- merging duplicates --------------------------------------------------------------------


@admin.action(description="Merge two selected leads", permissions=["change"])
def merge_two_selected_leads(modeladmin, request, queryset):
    """Open the merge page for exactly two live leads; the older one is offered as the one that stays."""
    from leads import policies  # here, not at the top: this block is the merge feature's own

    leads = list(queryset.order_by("pk")[:3])
    if len(leads) != 2:
        modeladmin.message_user(
            request, f"Select exactly two leads to merge (you selected {queryset.count()}).", messages.ERROR
        )
        return None
    if any(lead.is_deleted for lead in leads):
        refusal = "Only live leads can be merged: restore the deleted one first."
        modeladmin.message_user(request, refusal, messages.ERROR)
        return None
    if not policies.can_merge(request.user):
        modeladmin.message_user(request, "Only managers and admins can merge leads.", messages.ERROR)
        return None
    return HttpResponseRedirect(reverse("leads:merge", args=[leads[0].pk, leads[1].pk]))


LeadAdmin.actions = (*LeadAdmin.actions, merge_two_selected_leads)

# --- the e-mail outbox ----------------------------------------------------------------------


class OutgoingEmailAdmin(admin.ModelAdmin):
    """The e-mail outbox: what was sent to whom, what is waiting, and why a message failed. Read-only."""

    list_display = ("to", "subject", "status", "attempts", "short_error", "created_at", "sent_at")
    list_filter = ("status",)
    search_fields = ("to", "subject", "key")
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "key", "to", "subject", "status", "attempts", "last_error", "next_attempt_at",
        "created_at", "sent_at", "lead", "body_text", "body_html",
    )  # fmt: skip
    readonly_fields = fields
    actions = ("retry_now",)

    def has_module_permission(self, request):
        return policies.can_view_outgoing_email(request.user)

    def has_view_permission(self, request, obj=None):
        return policies.can_view_outgoing_email(request.user)

    def has_retry_permission(self, request):
        return policies.can_retry_outgoing_email(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="last error")
    def short_error(self, email):
        return email.last_error[:80] + ("…" if len(email.last_error) > 80 else "")

    @admin.action(description="Retry now (pending and failed ones)", permissions=["retry"])
    def retry_now(self, request, queryset):
        ids = retry_emails(queryset)
        skipped = queryset.count() - len(ids)
        noun = "e-mail" if len(ids) == 1 else "e-mails"
        self.message_user(request, f"Retrying {len(ids)} {noun} now.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Left {skipped} alone: already sent or being sent right now.", messages.WARNING
            )


admin.site.register(OutgoingEmail, OutgoingEmailAdmin)
# --- follow-ups ------------------------------------------------------------------------------


class FollowUpStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("overdue", "Overdue"), ("done", "Done"), ("cancelled", "Cancelled")]

    def queryset(self, request, queryset):

        open_q = Q(done_at__isnull=True, cancelled_at__isnull=True)
        match self.value():
            case "open":
                return queryset.filter(open_q)
            case "overdue":
                return queryset.filter(open_q, due_at__lt=timezone.now())
            case "done":
                return queryset.filter(done_at__isnull=False)
            case "cancelled":
                return queryset.filter(cancelled_at__isnull=False)
        return queryset


@admin.register(FollowUp)
class FollowUpAdmin(ServiceAdmin):
    """Follow-ups across the team. Read-mostly: a change reschedules through leads.follow_ups;
    new ones are scheduled on the lead page or the API; cancelling is an action, never a delete."""

    list_display = ("title", "lead", "kind", "assigned_to", "due_at", "done_at", "cancelled_at", "outcome")
    list_select_related = ("lead", "assigned_to")
    list_filter = (FollowUpStatusFilter, "kind", "outcome", ("assigned_to", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "lead__first_name", "lead__last_name", "lead__email", "lead__company")
    date_hierarchy = "due_at"
    ordering = ("-due_at", "-id")
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "lead", "kind", "title", "assigned_to", "due_at", "notes", "done_at", "cancelled_at", "outcome",
        "duration_minutes", "created_by", "created_at", "idempotency_key",
    )  # fmt: skip
    readonly_fields = (
        "lead", "done_at", "cancelled_at", "outcome", "duration_minutes", "created_by", "created_at",
        "idempotency_key",
    )  # fmt: skip
    actions = ("cancel_selected",)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "assigned_to":
            kwargs["queryset"] = selectors.assignable_owners()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        from leads import follow_ups

        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        if not changed:
            return
        try:
            follow_ups.reschedule_follow_up(follow_up=obj, actor=request.user, **changed)
        except (ValidationError, PermissionDenied) as exc:
            raise ServiceRefusal(_field_errors(exc)) from exc
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        pass  # nothing related to save, and the service already saved the row

    @admin.action(description="Cancel the selected follow-ups")
    def cancel_selected(self, request, queryset):
        from leads import follow_ups

        done, refused = 0, []
        for follow_up in queryset.select_related("lead", "assigned_to")[:MAX_LEADS_PER_ACTION]:
            try:
                follow_ups.cancel_follow_up(follow_up=follow_up, actor=request.user)
                done += 1
            except (ValidationError, PermissionDenied) as exc:
                refused.append(f"{follow_up}: {' '.join(getattr(exc, 'messages', [str(exc)]))}")
        if done:
            self.message_user(request, f"Cancelled {done} follow-up(s).", messages.SUCCESS)
        for line in refused[:FAILURES_LISTED]:
            self.message_user(request, line, messages.ERROR)


# --- export ---


@admin.action(description="Export selected to CSV", permissions=["view"])
def export_selected_to_csv(modeladmin, request, queryset):
    """The ticked leads as a CSV file; after "Select all", the whole list as filtered and searched.

    Read-only and streamed, so MAX_LEADS_PER_ACTION does not apply. Visibility is asked of the
    policy, although only managers reach the admin, so the rule lives in one place.
    """
    from leads.exports import csv_export_response

    return csv_export_response(request, queryset.filter(policies.visible_leads_q(request.user)))


# Appended rather than edited into LeadAdmin.actions, which the admin reads on each request.
LeadAdmin.actions = (*LeadAdmin.actions, export_selected_to_csv)
