"""Reads: the leads a user may see, the board's columns and a lead's timeline, each in fixed queries."""

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.http import Http404

from leads.models import Lead, Source, Stage
from leads.policies import visible_leads_q
from leads.services import DEFAULT_SOURCE_NAME


def visible_leads(user):
    """Live leads `user` may see, with what cards and rows show already joined."""
    return Lead.objects.live().filter(visible_leads_q(user)).select_related("stage", "source", "owner")


def get_visible_lead(user, pk):
    """The lead, or 404 when it does not exist or the user may not see it (never a 403)."""
    try:
        return visible_leads(user).select_related("created_by").get(pk=int(pk))
    except (Lead.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such lead.") from None


def lead_timeline(lead):
    return lead.activities.select_related("actor").order_by("-occurred_at", "-id")


def board_stages():
    return list(Stage.objects.filter(archived=False).order_by("position", "id"))


def active_sources():
    return Source.objects.filter(archived=False).order_by("name")


def assignable_owners():
    """Users who may own leads: every active person."""
    return get_user_model().objects.filter(is_active=True).order_by("first_name", "last_name", "email")


def default_source_id():
    """The source forms offer first ("Manual"), or None when it is gone."""
    return Source.objects.filter(name=DEFAULT_SOURCE_NAME).values_list("pk", flat=True).first()


@dataclass
class BoardColumn:
    stage: Stage
    count: int = 0
    total_value: object = 0
    leads: list = field(default_factory=list)
    page: int = 1
    page_size: int = 25

    @property
    def has_more(self):
        return self.page * self.page_size < self.count

    @property
    def has_previous(self):
        return self.page > 1

    @property
    def first_shown(self):
        return (self.page - 1) * self.page_size + 1 if self.leads else 0

    @property
    def last_shown(self):
        return (self.page - 1) * self.page_size + len(self.leads)


def board_columns(*, leads, stages, column_pages=None, page_size=None):
    """One column per stage: count and value of all matching leads, and one page of cards.

    `leads` is an already filtered visible_leads() queryset. Queries: one aggregate for all
    columns and one page query per stage, whatever the number of leads.
    """
    page_size = page_size or settings.BOARD_COLUMN_PAGE_SIZE
    column_pages = column_pages or {}
    columns = {stage.pk: BoardColumn(stage=stage, page_size=page_size) for stage in stages}
    totals = (
        leads.filter(stage__in=list(columns))
        .order_by()
        .values("stage")
        .annotate(count=Count("pk"), total_value=Sum("value"))
    )
    for row in totals:
        column = columns[row["stage"]]
        column.count, column.total_value = row["count"], row["total_value"] or 0
    for column in columns.values():
        if not column.count:
            continue
        last_page = (column.count - 1) // page_size + 1
        column.page = min(max(column_pages.get(column.stage.pk, 1), 1), last_page)
        start = (column.page - 1) * page_size
        column.leads = list(
            leads.filter(stage=column.stage).order_by("-stage_changed_at", "-id")[start : start + page_size]
        )
    return list(columns.values())
