"""The one FilterSet behind the board, the API and exports: ?query=&source=&owner=&stage=."""

import re

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field

from leads.models import Lead, Source, Stage
from leads.normalization import phone_digits

MAX_QUERY_LENGTH = 200


class NameOrIdChoiceField(forms.ModelChoiceField):
    """Accepts a row's id or its name (any case), so ?source=facebook and ?source=3 agree."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        value = str(value).strip()
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        lookup = {"pk": int(value)} if value.isdecimal() else {"name__iexact": value}
        try:
            return self.queryset.get(**lookup)
        except (self.queryset.model.DoesNotExist, self.queryset.model.MultipleObjectsReturned, OverflowError):
            names = ", ".join(self.queryset.values_list("name", flat=True))
            raise ValidationError(
                f"Unknown {self.label.lower()} “{value[:80]}”. Choose one of: {names}.",
                code="invalid_choice",
            ) from None


class OwnerChoiceField(forms.ChoiceField):
    """A user id, "me" or "unassigned"; cleans to that string or the User."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        users = get_user_model().objects.filter(is_active=True)
        self.choices = [("", "Anyone"), ("me", "Me"), ("unassigned", "Unassigned")] + [
            (str(u.pk), str(u)) for u in users
        ]

    def valid_value(self, value):
        return True  # checked in clean(), against the database rather than the rendered list

    def clean(self, value):
        value = super().clean(value)
        if value in ("", "me", "unassigned"):
            return value
        if not value.isdecimal():
            raise ValidationError(f"Owner must be a user id, “me” or “unassigned”, not “{value[:80]}”.")
        try:
            return get_user_model().objects.get(pk=int(value))
        except (get_user_model().DoesNotExist, OverflowError):
            raise ValidationError(f"There is no user with id {value[:20]}.") from None


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


def _looks_like_phone(text):
    """Digits and the punctuation people type in numbers ("+1 (212) 555-0123"), 3+ digits."""
    return len(phone_digits(text)) >= 3 and re.fullmatch(r"[\d\s+().-]+", text) is not None


def search_leads(queryset, term):
    """Every word must match the first or last name, e-mail, company or phone digits.

    A term that is a whole phone number also matches as one number, so that its country
    code ("+1", too short to be a fragment on its own) does not make the search fail.
    """
    condition = Q()
    for word in term.split()[:8]:
        match = (
            Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(email__icontains=word)
            | Q(company__icontains=word)
        )
        # Only words that look like a phone fragment are matched against phones.
        if _looks_like_phone(word):
            match |= Q(phone__contains=phone_digits(word))
        condition &= match
    if _looks_like_phone(term):
        condition |= Q(phone__contains=phone_digits(term))
    return queryset.filter(condition)


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
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created on or after (ISO 8601 date or time)"
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601 date or time)"
    )
    ordering = django_filters.OrderingFilter(
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
        fields = ["query", "source", "owner", "stage", "created_after", "created_before", "ordering"]

    def filter_query(self, queryset, name, value):
        return search_leads(queryset, value) if value.strip() else queryset

    def active_filters(self):
        """The filters the user set and that were valid, as {name: cleaned value}."""
        if not self.is_bound or not hasattr(self.form, "cleaned_data"):
            return {}
        return {k: v for k, v in self.form.cleaned_data.items() if v not in (None, "")}
