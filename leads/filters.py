"""The one FilterSet behind the board, the API and exports: ?query=&source=&owner=&stage=."""

from datetime import UTC

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django_filters.constants import EMPTY_VALUES
from drf_spectacular.utils import extend_schema_field

from leads import selectors
from leads.models import FollowUp, Lead, Source, Stage
from leads.search import looks_like_phone, search_condition

MAX_QUERY_LENGTH = 200


class NameOrIdChoiceField(forms.ModelChoiceField):
    """Accepts a row's id or its name (any case), so ?source=facebook and ?source=3 agree."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        value = str(value).strip()
        # isdecimal, not isdigit: "²" is a digit that int() refuses. No id has 19 digits, and
        # int() refuses thousands of them, so a longer number is looked up as a name (and fails).
        lookup = {"pk": int(value)} if value.isdecimal() and len(value) <= 18 else {"name__iexact": value}
        try:
            if "\x00" in value:  # no name holds one, and PostgreSQL refuses it in a query (a 500)
                raise self.queryset.model.DoesNotExist
            return self.queryset.get(**lookup)
        except (self.queryset.model.DoesNotExist, self.queryset.model.MultipleObjectsReturned, OverflowError):
            # User input goes in params, never into the message itself: a "%" in it would
            # break the "%"-formatting django-filter and Django forms apply to messages.
            raise ValidationError(
                "Unknown %(noun)s “%(value)s”. Choose one of: %(names)s.",
                code="invalid_choice",
                params={
                    "noun": self.label.lower(),
                    "value": value[:80],
                    "names": ", ".join(self.queryset.values_list("name", flat=True)),
                },
            ) from None


class OwnerChoiceField(forms.ChoiceField):
    """A user id, "me" or "unassigned"; cleans to that string or the User."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A callable, so the users are read only when a page renders the menu, never by the API;
        # remembered, because a render asks for the choices more than once.
        self._menu_choices = None
        self.choices = self._menu

    def _menu(self):
        if self._menu_choices is None:
            users = selectors.assignable_owners()
            fixed = [("", "Anyone"), ("me", "Me"), ("unassigned", "Unassigned")]
            self._menu_choices = fixed + [(str(u.pk), str(u)) for u in users]
        return self._menu_choices

    def valid_value(self, value):
        return True  # checked in clean(), against the database rather than the rendered list

    def clean(self, value):
        value = super().clean(value)
        if value in ("", "me", "unassigned"):
            return value
        if not value.isdecimal():
            raise ValidationError(
                "Owner must be a user id, “me” or “unassigned”, not “%(value)s”.",
                code="invalid_choice",
                params={"value": value[:80]},
            )
        try:
            if len(value) > 18:  # no id is that long, and int() refuses thousands of digits
                raise get_user_model().DoesNotExist
            return get_user_model().objects.get(pk=int(value))
        except (get_user_model().DoesNotExist, OverflowError):
            raise ValidationError(
                "There is no user with id %(value)s.", code="invalid_choice", params={"value": value[:20]}
            ) from None


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 date-time, turned into UTC before it reaches the database.

    Python reads offsets up to ±23:59 but PostgreSQL refuses those past ±15:59 (a 500, not a
    400), and a time at the very edge of the calendar has no UTC equivalent at all.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValidationError(
                "Give a date and time between the years 1 and 9999.", code="invalid"
            ) from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


@extend_schema_field({"type": "string", "description": "A name (any case) or an id."})
class NameOrIdFilter(django_filters.ModelChoiceFilter):
    field_class = NameOrIdChoiceField


@extend_schema_field({"type": "string", "description": "A user id, `me` or `unassigned`."})
class OwnerFilter(django_filters.Filter):
    field_class = OwnerChoiceField

    def filter(self, qs, value):
        if value in ("", None):
            return qs
        if value == "unassigned":
            return qs.filter(owner__isnull=True)
        if value == "me":
            user = getattr(self.parent.request, "user", None)
            return qs.filter(owner=user) if user and user.is_authenticated else qs.none()
        return qs.filter(owner=value)


# Kept under its old name: leads.benchmarking imports it from here.
_looks_like_phone = looks_like_phone


def search_leads(queryset, term):
    """Every word must match the first or last name, e-mail, company or phone digits.

    The SQL and its rules (a term of only 1-2 character words matches the start of fields,
    trigram indexes on PostgreSQL, the same results on SQLite) are in leads.search.
    """
    condition = search_condition(term)
    return queryset if condition is None else queryset.filter(condition)


class StableOrderingFilter(django_filters.OrderingFilter):
    """The chosen order, ties broken by id in the same direction.

    Without a unique last key the database may order equal values differently from one
    LIMIT/OFFSET query to the next (PostgreSQL does), so pages would repeat and skip leads.
    """

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        # "?ordering=," cleans to ["", ""]: blanks name no field, so they are skipped, not a 500.
        ordering = [self.get_ordering_value(param) for param in value if param]
        if not ordering:
            return qs
        return qs.order_by(*ordering, "-pk" if ordering[0].startswith("-") else "pk")


class LeadFilter(django_filters.FilterSet):
    query = django_filters.CharFilter(
        method="filter_query",
        label="Search",
        max_length=MAX_QUERY_LENGTH,
        help_text="Name, e-mail, phone or company",
    )
    source = NameOrIdFilter(queryset=Source.objects.all(), label="Source", empty_label="Any source")
    owner = OwnerFilter(label="Owner")
    stage = NameOrIdFilter(queryset=Stage.objects.all(), label="Stage", empty_label="Any stage")
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created on or after (ISO 8601 date or time)"
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601 date or time)"
    )
    # Dashboard and reports: the leads behind "won/lost in range" (moved into their stage then).
    stage_changed_after = UtcIsoDateTimeFilter(
        field_name="stage_changed_at", lookup_expr="gte", label="Moved to its stage on or after (ISO 8601)"
    )
    stage_changed_before = UtcIsoDateTimeFilter(
        field_name="stage_changed_at", lookup_expr="lt", label="Moved to its stage before (ISO 8601)"
    )
    ordering = StableOrderingFilter(
        fields=(
            ("created_at", "created_at"),
            ("updated_at", "updated_at"),
            ("stage_changed_at", "stage_changed_at"),
            ("value", "value"),
            ("last_name", "last_name"),
        ),
        label="Order by (prefix - for descending)",
    )

    class Meta:
        model = Lead
        fields = [
            "query",
            "source",
            "owner",
            "stage",
            "created_after",
            "created_before",
            "stage_changed_after",  # dashboard and reports
            "stage_changed_before",  # dashboard and reports
            "ordering",
        ]

    def filter_query(self, queryset, name, value):
        return search_leads(queryset, value) if value.strip() else queryset

    def active_filters(self):
        """The filters the user set and that were valid, as {name: cleaned value}."""
        if not self.is_bound or not hasattr(self.form, "cleaned_data"):
            return {}
        return {k: v for k, v in self.form.cleaned_data.items() if v not in (None, "")}


# --- follow-ups ------------------------------------------------------------------------------


FOLLOW_UP_STATUSES = {
    "open": Q(done_at__isnull=True, cancelled_at__isnull=True),
    "done": Q(done_at__isnull=False),
    "cancelled": Q(cancelled_at__isnull=False),
}


@extend_schema_field({"type": "string", "description": "A user id or `me`."})
class AssigneeFilter(django_filters.Filter):
    field_class = forms.CharField

    def filter(self, qs, value):
        if value in ("", None):
            return qs
        if value == "me":
            user = getattr(self.parent.request, "user", None)
            return qs.filter(assigned_to=user) if user and user.is_authenticated else qs.none()
        if not value.isdecimal() or len(value) > 18:
            raise ValidationError({"assigned_to": [f"Give a user id or “me”, not “{value[:40]}”."]})
        return qs.filter(assigned_to_id=int(value))


class FollowUpFilter(django_filters.FilterSet):
    """?assigned_to=&lead=&status=&due_before=&due_after= for /api/follow-ups/."""

    assigned_to = AssigneeFilter(label="Assigned to (a user id or “me”)")
    lead = django_filters.NumberFilter(
        field_name="lead_id", label="Lead id", min_value=1, max_value=2**63 - 1
    )
    status = django_filters.ChoiceFilter(
        choices=[
            ("open", "Open"),
            ("overdue", "Open and past due"),
            ("done", "Done"),
            ("cancelled", "Cancelled"),
        ],
        method="filter_status",
        label="Status",
    )
    due_after = UtcIsoDateTimeFilter(
        field_name="due_at", lookup_expr="gte", label="Due on or after (ISO 8601)"
    )
    due_before = UtcIsoDateTimeFilter(field_name="due_at", lookup_expr="lt", label="Due before (ISO 8601)")

    class Meta:
        model = FollowUp
        fields = ["assigned_to", "lead", "status", "due_after", "due_before"]

    def filter_status(self, queryset, name, value):
        if value == "overdue":
            return queryset.filter(FOLLOW_UP_STATUSES["open"], due_at__lt=timezone.now())
        return queryset.filter(FOLLOW_UP_STATUSES[value])
