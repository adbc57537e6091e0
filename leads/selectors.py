"""Reads: the leads a user may see, the board's columns and a lead's timeline, each in fixed queries."""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.http import Http404
from django.utils import timezone

from leads import counts
from leads.models import Activity, Attachment, FollowUp, Lead, Source, Stage
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


# How many links of a merge chain (A merged into B, B into C) a survivor's timeline follows.
MERGE_CHAIN_DEPTH = 4


def absorbed_lead_ids(lead):
    """Ids of the leads merged into this one, directly or through a chain of merges.

    One small indexed query per level (merged_into has an index), and almost always just the
    first, which finds nothing: joining leads_lead to itself once per level in a single query
    made PostgreSQL scan the whole table (8 s for one lead page at a million leads).
    """
    found, frontier = [], [lead.pk]
    for _ in range(MERGE_CHAIN_DEPTH):
        frontier = list(Lead.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True))
        if not frontier:
            break
        found += frontier
    return found


def lead_timeline(lead):
    """The lead's activities and those of every lead merged into it, newest first.

    A merged lead keeps its own (append-only) activities; merged_into points at the survivor
    until the merge is undone, so the survivor's timeline reads them through that link.
    """
    timeline = Q(lead_id=lead.pk)
    absorbed = absorbed_lead_ids(lead)
    if absorbed:
        # A merged lead's own "merged into …" record would repeat the survivor's "merged in …" record.
        timeline |= Q(lead_id__in=absorbed) & ~Q(kind=Activity.Kind.MERGED, data__has_key="merged_into")
    return Activity.objects.filter(timeline).select_related("actor").order_by("-occurred_at", "-id")


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


def board_columns(*, leads, stages, column_pages=None, page_size=None, counted=None):
    """One column per stage: count and value of all matching leads, and one page of cards.

    `leads` is an already filtered visible_leads() queryset; `counted`, when given, the same
    selection as counts.counter_q() (column heads from the lead counters, not a scan). Queries:
    one aggregate for all columns and one page query per stage, whatever the number of leads.
    """
    page_size = page_size or settings.BOARD_COLUMN_PAGE_SIZE
    column_pages = column_pages or {}
    columns = {stage.pk: BoardColumn(stage=stage, page_size=page_size) for stage in stages}
    totals = board_column_totals(leads=leads, stages=stages, counted=counted)
    for stage_pk, (count, total_value) in totals.items():
        columns[stage_pk].count, columns[stage_pk].total_value = count, total_value
    for column in columns.values():
        if not column.count:
            continue
        last_page = (column.count - 1) // page_size + 1
        column.page = min(max(column_pages.get(column.stage.pk, 1), 1), last_page)
        start = (column.page - 1) * page_size
        column.leads = list(
            with_card_badges(leads.filter(stage=column.stage)).order_by("-stage_changed_at", "-id")[
                start : start + page_size
            ]
        )
    return list(columns.values())


def lead_attachments(lead):
    """The lead's live files, newest first, with who uploaded each joined."""
    return (
        Attachment.objects.live()
        .filter(lead=lead)
        .select_related("uploaded_by")
        .order_by("-uploaded_at", "-id")
    )


def get_lead_attachment(lead, attachment_id):
    """A live file of this lead, or 404 (deleted, another lead's, or no such file)."""
    try:
        attachment = lead_attachments(lead).get(pk=int(attachment_id))
    except (Attachment.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such file on this lead.") from None
    attachment.lead = lead  # already loaded and permission-checked; spares a query
    return attachment


# --- follow-ups ---------------------------------------------------------------------------------

DONE_SHOWN_FOR = timedelta(days=30)


def with_card_badges(leads):
    """Leads annotated with what a card's badges need, as subqueries of the same query:
    next_follow_up_at (the earliest open follow-up) and last_activity_at (the newest activity)."""
    next_due = FollowUp.objects.filter(lead=OuterRef("pk"), done_at__isnull=True, cancelled_at__isnull=True)
    last_activity = Activity.objects.filter(lead=OuterRef("pk")).order_by("-occurred_at", "-id")
    return leads.annotate(
        next_follow_up_at=Subquery(next_due.order_by("due_at", "id").values("due_at")[:1]),
        last_activity_at=Subquery(last_activity.values("occurred_at")[:1]),
    )


def card_badges(lead, now=None):
    """(overdue, stale) for an annotated lead: its next follow-up is past due; an open lead
    nobody has touched for settings.STALE_LEAD_DAYS."""
    now = now or timezone.now()
    next_due = getattr(lead, "next_follow_up_at", None)
    overdue = next_due is not None and next_due < now
    last_touched = getattr(lead, "last_activity_at", None) or lead.created_at
    stale = (
        lead.stage.kind == Stage.Kind.OPEN
        and last_touched is not None
        and last_touched < now - timedelta(days=settings.STALE_LEAD_DAYS)
    )
    return overdue, stale


def visible_follow_ups(user):
    """Follow-ups on live leads `user` may see, with their lead and assignee joined."""
    return FollowUp.objects.filter(
        lead__in=Lead.objects.live().filter(visible_leads_q(user)).values("pk")
    ).select_related("lead", "assigned_to")


def get_visible_follow_up(user, pk):
    """The follow-up, or 404 when it does not exist or its lead is hidden from the user."""
    try:
        return visible_follow_ups(user).get(pk=int(pk))
    except (FollowUp.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such follow-up.") from None


def open_follow_ups(lead):
    return (
        lead.follow_ups.filter(done_at__isnull=True, cancelled_at__isnull=True)
        .select_related("assigned_to")
        .order_by("due_at", "id")
    )


def today_bounds(now=None):
    """The start and end of today in the current time zone (settings.TIME_ZONE unless activated)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    zone = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(today, time.min), zone)
    end = timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min), zone)
    return start, end


@dataclass
class FollowUpGroups:
    overdue: list
    today: list
    upcoming: list
    done: list

    def __iter__(self):
        yield from (
            ("overdue", "Overdue", self.overdue),
            ("today", "Today", self.today),
            ("upcoming", "Upcoming", self.upcoming),
            ("done", "Done in the last 30 days", self.done),
        )


def my_follow_ups(user, *, viewer=None, now=None):
    """`user`'s follow-ups as overdue / today / upcoming / done (last 30 days), on leads `viewer`
    (default: the user) may see. Two queries: the open ones and the recently done ones."""
    now = now or timezone.now()
    _, end_of_today = today_bounds(now)
    mine = visible_follow_ups(viewer or user).filter(assigned_to=user)
    open_ones = list(mine.filter(done_at__isnull=True, cancelled_at__isnull=True).order_by("due_at", "id"))
    done = list(mine.filter(done_at__gte=now - DONE_SHOWN_FOR).order_by("-done_at", "-id"))
    return FollowUpGroups(
        overdue=[f for f in open_ones if f.due_at < now],
        today=[f for f in open_ones if now <= f.due_at < end_of_today],
        upcoming=[f for f in open_ones if f.due_at >= end_of_today],
        done=done,
    )


def board_column_totals(*, leads, stages, counted=None):
    """{stage id: (count, total value)} of `leads` in each of `stages`, in one query; stages
    without leads are left out. The board's column heads, and the live board's updates of them.
    With `counted` (counts.counter_q() of the same filters) they come from the lead counters."""
    if counted is not None:
        return counts.totals_by_stage(counted, stages)
    totals = (
        leads.filter(stage__in=[stage.pk for stage in stages])
        .order_by()
        .values("stage")
        .annotate(count=Count("pk"), total_value=Sum("value"))
    )
    return {row["stage"]: (row["count"], row["total_value"] or 0) for row in totals}


# --- CSV imports (import engine) --------------------------------------------------------------


def visible_imports(user):
    """The import jobs `user` may see (policies.can_view_import as a queryset), newest first."""
    from leads.models import ImportJob
    from leads.policies import is_manager

    jobs = ImportJob.objects.select_related("created_by")
    if is_manager(user):
        return jobs
    if user is None or not user.is_authenticated or not user.is_active:
        return jobs.none()
    return jobs.filter(created_by=user)


def get_visible_import(user, pk):
    """The import job, or 404 when it does not exist or the user may not see it."""
    from leads.models import ImportJob

    try:
        return visible_imports(user).get(pk=int(pk))
    except (ImportJob.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such import.") from None
