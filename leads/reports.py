"""Dashboard and report figures: read-only, computed by database aggregation in a fixed number of queries.

Every figure takes a ReportFilters (from parse_filters): a date range of whole days in the current
time zone (settings.TIME_ZONE), an optional source and owner, and the viewer. Soft-deleted leads
count nowhere. Won and lost come from the timeline (stage_changed activities into a won or lost
stage during the range), so a lead won in March and reopened in April still counts as won in March.
Salespeople always see their own numbers: the owner is forced to them whatever they ask.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    Avg,
    Count,
    DateField,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    Min,
    Q,
    Sum,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncDate, TruncWeek
from django.utils import timezone

from leads.models import Activity, FollowUp, Lead, Source, Stage
from leads.policies import is_manager

PRESETS = ("today", "7d", "30d", "quarter", "custom")
DEFAULT_PRESET = "30d"
# A custom range longer than this would draw thousands of daily bars; three years is plenty.
MAX_RANGE_DAYS = 3 * 366
# Activities that mean someone got in touch with the lead (a stage change counts too).
CONTACT_KINDS = (Activity.Kind.CALL, Activity.Kind.MEETING, Activity.Kind.EMAIL)
LOGGED_KINDS = (Activity.Kind.NOTE, Activity.Kind.CALL, Activity.Kind.MEETING, Activity.Kind.EMAIL)
MONEY = DecimalField(max_digits=14, decimal_places=2)
ZERO = Decimal("0.00")


# --- filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilters:
    start: date
    end: date
    source: Source | None
    owner: object | None  # a User
    viewer: object
    preset: str = DEFAULT_PRESET

    @property
    def start_at(self):
        """The first instant of `start` in the current time zone."""
        return _day_start(self.start)

    @property
    def end_before(self):
        """The first instant after `end` (the range is [start_at, end_before))."""
        return _day_start(self.end + timedelta(days=1))

    @property
    def days(self):
        return (self.end - self.start).days + 1

    def board_query(self, **extra):
        """The /board/ query string for the leads behind a number; a None in `extra` drops that key."""
        params = {
            "source": self.source.pk if self.source else None,
            "owner": self.owner.pk if self.owner else None,
            "created_after": self.start_at.isoformat(),
            "created_before": self.end_before.isoformat(),
        }
        params.update(extra)
        return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _day_start(day):
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def _parse_day(params, names, errors):
    """The date under the first of `names` present in params, or None; a bad one is noted in errors."""
    for name in names:
        raw = (params.get(name) or "").strip()
        if not raw:
            continue
        try:
            day = date.fromisoformat(raw)
            if len(raw) != 10:
                raise ValueError
        except ValueError:
            errors[name] = [f"“{raw[:40]}” is not a date: use YYYY-MM-DD, e.g. 2026-03-31."]
            return name, None
        if not date(1970, 1, 1) <= day <= date(9999, 12, 30):
            errors[name] = ["Give a date between 1970-01-01 and 9999-12-30."]
            return name, None
        return name, day
    return names[0], None


def _preset_range(preset, today):
    if preset == "today":
        return today, today
    if preset == "7d":
        return today - timedelta(days=6), today
    if preset == "30d":
        return today - timedelta(days=29), today
    # This quarter so far.
    return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today


def _parse_source(raw, errors):
    raw = (raw or "").strip()
    if not raw:
        return None
    lookup = {"pk": int(raw)} if raw.isdecimal() and len(raw) <= 18 else {"name__iexact": raw}
    source = Source.objects.filter(**lookup).first() if "\x00" not in raw else None
    if source is None:
        errors["source"] = [f"Unknown source “{raw[:80]}”: give a source id or name."]
    return source


def _parse_owner(raw, viewer, errors):
    raw = (raw or "").strip()
    if not raw:
        return None
    if raw == "me":
        return viewer
    user = None
    if raw.isdecimal() and len(raw) <= 18:
        user = get_user_model().objects.filter(pk=int(raw)).first()
    if user is None:
        errors["owner"] = [f"There is no user with id “{raw[:20]}”: give a user id or “me”."]
    return user


def parse_filters(params, *, viewer):
    """ReportFilters from query params (range, start/end or start_date/end_date, source, owner).

    Raises ValidationError({field: [message]}) for a bad date, an end before the start, an unknown
    preset, source or owner. A salesperson's owner is always themselves.
    """
    errors = {}
    preset = (params.get("range") or "").strip()
    start_name, start = _parse_day(params, ("start", "start_date"), errors)
    end_name, end = _parse_day(params, ("end", "end_date"), errors)
    given_dates = start is not None or end is not None or start_name in errors or end_name in errors
    if not preset:
        preset = "custom" if given_dates else DEFAULT_PRESET
    if preset not in PRESETS:
        errors["range"] = [f"Unknown range “{preset[:40]}”: choose one of {', '.join(PRESETS)}."]
    today = timezone.localdate()
    if preset == "custom" and not errors:
        if start is None and end is None:
            errors[start_name] = ["A custom range needs a start date (YYYY-MM-DD)."]
        start = start or end  # only an end: that one day
        if end is None and start is not None:
            # Only a start: up to today, or that one day when it is in the future.
            end = today if start <= today else start
        if start and end and end < start:
            errors[end_name] = [f"The end date {end} is before the start date {start}."]
        elif start and end and (end - start).days + 1 > MAX_RANGE_DAYS:
            errors[end_name] = [f"A range may cover at most {MAX_RANGE_DAYS} days."]
    elif preset in PRESETS and preset != "custom":
        start, end = _preset_range(preset, today)
    source = _parse_source(params.get("source"), errors)
    owner = _parse_owner(params.get("owner"), viewer, errors)
    if errors:
        raise ValidationError(errors)
    if not is_manager(viewer):
        owner = viewer
    return ReportFilters(start=start, end=end, source=source, owner=owner, viewer=viewer, preset=preset)


def filters_for_day(day, *, viewer, source=None, owner=None):
    """ReportFilters covering one day, with the same owner rule as parse_filters."""
    if not is_manager(viewer):
        owner = viewer
    return ReportFilters(start=day, end=day, source=source, owner=owner, viewer=viewer, preset="custom")


# --- building blocks -------------------------------------------------------------------------


def _lead_scope(f, prefix=""):
    """Live leads of the filter's source and owner, as a Q on Lead (or through `prefix`, e.g. "lead__")."""
    q = Q(**{f"{prefix}deleted_at__isnull": True})
    if f.source is not None:
        q &= Q(**{f"{prefix}source_id": f.source.pk})
    if f.owner is not None:
        q &= Q(**{f"{prefix}owner_id": f.owner.pk})
    return q


def _activity_scope(f, *, by_actor):
    """Activities in the range on live leads of the source; the owner filter applies to the actor
    (what someone did) when `by_actor`, otherwise to the lead's owner."""
    q = Q(occurred_at__gte=f.start_at, occurred_at__lt=f.end_before, lead__deleted_at__isnull=True)
    if f.source is not None:
        q &= Q(lead__source_id=f.source.pk)
    if f.owner is not None:
        q &= Q(actor_id=f.owner.pk) if by_actor else Q(lead__owner_id=f.owner.pk)
    return q


def _stage_ids(kind):
    return Stage.objects.filter(kind=kind).values("pk")


def _moves_into(kind, f):
    """stage_changed activities into a stage of `kind` during the range (not filtered by lead)."""
    return Activity.objects.annotate(
        to_stage_id=Cast(KeyTextTransform("to_id", "data"), IntegerField())
    ).filter(
        kind=Activity.Kind.STAGE_CHANGED,
        occurred_at__gte=f.start_at,
        occurred_at__lt=f.end_before,
        to_stage_id__in=_stage_ids(kind),
    )


def _closed_in_range(kind, f):
    """Q on Lead: moved into a stage of `kind` during the range.

    An uncorrelated IN (subquery), not a correlated EXISTS: PostgreSQL then reads the range's moves
    once into a hash instead of probing the timeline once per lead.
    """
    return Q(pk__in=_moves_into(kind, f).values("lead_id"))


def _rate(won, lost):
    return round(won / (won + lost), 4) if won + lost else None


def _person_name(first, last, email):
    return f"{first or ''} {last or ''}".strip() or email


# --- figures ---------------------------------------------------------------------------------


def kpis(f):
    """The headline tiles. Three queries: lead counts, the median, overdue follow-ups."""
    in_range = Q(created_at__gte=f.start_at, created_at__lt=f.end_before)
    won_in_range, lost_in_range = _closed_in_range(Stage.Kind.WON, f), _closed_in_range(Stage.Kind.LOST, f)
    totals = Lead.objects.filter(_lead_scope(f)).aggregate(
        open_leads=Count("pk", filter=Q(stage__kind=Stage.Kind.OPEN)),
        new_leads=Count("pk", filter=in_range),
        won_count=Count("pk", filter=won_in_range),
        won_value=Coalesce(Sum("value", filter=won_in_range), Value(ZERO), output_field=MONEY),
        lost_count=Count("pk", filter=lost_in_range),
    )
    overdue = FollowUp.objects.filter(
        done_at__isnull=True,
        cancelled_at__isnull=True,
        due_at__lt=timezone.now(),
        lead__deleted_at__isnull=True,
    )
    if f.source is not None:
        overdue = overdue.filter(lead__source_id=f.source.pk)
    if f.owner is not None:
        overdue = overdue.filter(assigned_to_id=f.owner.pk)
    return {
        **totals,
        "conversion_rate": _rate(totals["won_count"], totals["lost_count"]),
        "median_first_contact": median_first_contact(f),
        "overdue_follow_ups": overdue.count(),
    }


def first_contact_durations(f):
    """For leads created in the range: creation → first call/meeting/e-mail or stage change.

    A join grouped by lead rather than a subquery per lead; contacts before the range start cannot
    be a first contact of a lead created in it, so the join reads only the range's activities.
    """
    contact = Q(
        activities__kind__in=(*CONTACT_KINDS, Activity.Kind.STAGE_CHANGED),
        activities__occurred_at__gte=f.start_at,
    )
    return (
        Lead.objects.filter(_lead_scope(f), created_at__gte=f.start_at, created_at__lt=f.end_before)
        .filter(contact)
        .order_by()
        .values("pk", "created_at")
        .annotate(first_contact=Min("activities__occurred_at"))
        .annotate(
            waited=ExpressionWrapper(F("first_contact") - F("created_at"), output_field=DurationField())
        )
        .values("waited")
    )


def median_first_contact(f):
    """The median of first_contact_durations(f) as a timedelta, or None: one query on either database."""
    sql, params = first_contact_durations(f).query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM t.waited))"
                f" FROM ({sql}) t",
                params,
            )
            seconds = cursor.fetchone()[0]
            return None if seconds is None else timedelta(seconds=float(seconds))
        # SQLite stores the difference in microseconds; the middle one (or the mean of the two middle
        # ones) is read with ORDER BY / LIMIT / OFFSET, still in the database.
        cursor.execute(
            f"WITH t AS ({sql}), n AS (SELECT COUNT(*) AS c FROM t)"
            " SELECT AVG(waited) FROM (SELECT waited FROM t ORDER BY waited"
            " LIMIT 2 - (SELECT c FROM n) %% 2 OFFSET ((SELECT c FROM n) - 1) / 2)",
            params,
        )
        micros = cursor.fetchone()[0]
        return None if micros is None else timedelta(microseconds=float(micros))


def leads_by_stage(f):
    """Live stages in board order with the count and value of the leads in them now (one query)."""
    lead_filter = Q(leads__deleted_at__isnull=True)
    if f.source is not None:
        lead_filter &= Q(leads__source_id=f.source.pk)
    if f.owner is not None:
        lead_filter &= Q(leads__owner_id=f.owner.pk)
    rows = (
        Stage.objects.filter(archived=False)
        .order_by("position", "id")
        .annotate(
            count=Count("leads", filter=lead_filter),
            value=Coalesce(Sum("leads__value", filter=lead_filter), Value(ZERO), output_field=MONEY),
        )
        .values("pk", "name", "kind", "count", "value")
    )
    return [{"stage_id": r["pk"], **{k: r[k] for k in ("name", "kind", "count", "value")}} for r in rows]


def leads_by_source(f):
    """Leads created in the range per source, most first; sources with none are left out (one query)."""
    rows = (
        Lead.objects.filter(_lead_scope(f), created_at__gte=f.start_at, created_at__lt=f.end_before)
        .order_by()
        .values("source_id", "source__name")
        .annotate(count=Count("pk"))
        .order_by("-count", "source__name")
    )
    return [{"source_id": r["source_id"], "name": r["source__name"], "count": r["count"]} for r in rows]


def new_leads_per_day(f):
    """Every day of the range (local days) with the leads created that day, zeros included (one query)."""
    tz = timezone.get_current_timezone()
    rows = (
        Lead.objects.filter(_lead_scope(f), created_at__gte=f.start_at, created_at__lt=f.end_before)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .order_by()
        .values("day")
        .annotate(count=Count("pk"))
    )
    counts = {r["day"]: r["count"] for r in rows}
    days = (f.start + timedelta(days=n) for n in range(f.days))
    return [{"day": day, "count": counts.get(day, 0)} for day in days]


def won_lost_per_week(f):
    """Leads won and lost per local week (Monday first) of the range, zeros included (one query)."""
    tz = timezone.get_current_timezone()
    rows = (
        Activity.objects.filter(_lead_scope(f, "lead__"))
        .annotate(to_stage_id=Cast(KeyTextTransform("to_id", "data"), IntegerField()))
        .filter(
            kind=Activity.Kind.STAGE_CHANGED,
            occurred_at__gte=f.start_at,
            occurred_at__lt=f.end_before,
            to_stage_id__in=Stage.objects.filter(kind__in=(Stage.Kind.WON, Stage.Kind.LOST)).values("pk"),
        )
        .annotate(week_start=TruncWeek("occurred_at", tzinfo=tz, output_field=DateField()))
        .order_by()
        .values("week_start")
        .annotate(
            won=Count("lead_id", distinct=True, filter=Q(to_stage_id__in=_stage_ids(Stage.Kind.WON))),
            lost=Count("lead_id", distinct=True, filter=Q(to_stage_id__in=_stage_ids(Stage.Kind.LOST))),
        )
    )
    by_week = {r["week_start"]: r for r in rows}
    first_monday = f.start - timedelta(days=f.start.weekday())
    weeks = []
    monday = first_monday
    while monday <= f.end:
        row = by_week.get(monday, {})
        weeks.append({"week_start": monday, "won": row.get("won", 0), "lost": row.get("lost", 0)})
        monday += timedelta(days=7)
    return weeks


def time_in_stage(f):
    """Average time leads spent in each stage before leaving it during the range (two queries).

    From the stage_changed activities: data.from_id is the stage left, data.seconds_in_previous how
    long the lead sat in it. Live stages in board order, and archived ones that leads left in the range.
    """
    rows = (
        Activity.objects.filter(_lead_scope(f, "lead__"), kind=Activity.Kind.STAGE_CHANGED)
        .filter(occurred_at__gte=f.start_at, occurred_at__lt=f.end_before)
        .annotate(
            from_stage_id=Cast(KeyTextTransform("from_id", "data"), IntegerField()),
            seconds=Cast(KeyTextTransform("seconds_in_previous", "data"), FloatField()),
        )
        .filter(from_stage_id__isnull=False, seconds__isnull=False)
        .order_by()
        .values("from_stage_id")
        .annotate(average=Avg("seconds"), samples=Count("pk"))
    )
    by_stage = {r["from_stage_id"]: r for r in rows}
    stages = Stage.objects.filter(Q(archived=False) | Q(pk__in=list(by_stage))).order_by("position", "id")
    result = []
    for stage in stages.only("pk", "name"):
        row = by_stage.get(stage.pk)
        average = timedelta(seconds=round(row["average"])) if row else None
        result.append(
            {
                "stage_id": stage.pk,
                "name": stage.name,
                "average": average,
                "samples": row["samples"] if row else 0,
            }
        )
    return result


def top_salespeople(f, limit=10):
    """Owners of the leads won in the range, by won value then count (one query)."""
    rows = (
        Lead.objects.filter(_lead_scope(f), _closed_in_range(Stage.Kind.WON, f), owner__isnull=False)
        .order_by()
        .values("owner_id", "owner__first_name", "owner__last_name", "owner__email")
        .annotate(won_count=Count("pk"), won_value=Coalesce(Sum("value"), Value(ZERO), output_field=MONEY))
        .order_by("-won_value", "-won_count", "owner_id")[:limit]
    )
    return [
        {
            "user_id": r["owner_id"],
            "name": _person_name(r["owner__first_name"], r["owner__last_name"], r["owner__email"]),
            "won_count": r["won_count"],
            "won_value": r["won_value"],
        }
        for r in rows
    ]


def agent_performance(f):
    """One row per person for the range (four queries: leads by owner, activities by actor,
    follow-ups by assignee, the people).

    leads_owned: live leads they own now; new_leads: of those, created in the range; contacted:
    distinct leads they called, met or e-mailed in the range; notes…emails: what they logged;
    follow-ups done in the range on time (by due_at) or late; won/lost: their leads closed in the range.
    """
    in_range = Q(created_at__gte=f.start_at, created_at__lt=f.end_before)
    won_in_range, lost_in_range = _closed_in_range(Stage.Kind.WON, f), _closed_in_range(Stage.Kind.LOST, f)
    leads = (
        Lead.objects.filter(_lead_scope(f), owner__isnull=False)
        .order_by()
        .values("owner_id")
        .annotate(
            leads_owned=Count("pk"),
            new_leads=Count("pk", filter=in_range),
            won=Count("pk", filter=won_in_range),
            lost=Count("pk", filter=lost_in_range),
        )
    )
    activities = (
        Activity.objects.filter(_activity_scope(f, by_actor=True), actor__isnull=False, kind__in=LOGGED_KINDS)
        .order_by()
        .values("actor_id")
        .annotate(
            contacted=Count("lead_id", distinct=True, filter=Q(kind__in=CONTACT_KINDS)),
            notes=Count("pk", filter=Q(kind=Activity.Kind.NOTE)),
            calls=Count("pk", filter=Q(kind=Activity.Kind.CALL)),
            meetings=Count("pk", filter=Q(kind=Activity.Kind.MEETING)),
            emails=Count("pk", filter=Q(kind=Activity.Kind.EMAIL)),
        )
    )
    follow_ups = FollowUp.objects.filter(
        done_at__gte=f.start_at, done_at__lt=f.end_before, lead__deleted_at__isnull=True
    )
    if f.source is not None:
        follow_ups = follow_ups.filter(lead__source_id=f.source.pk)
    if f.owner is not None:
        follow_ups = follow_ups.filter(assigned_to_id=f.owner.pk)
    follow_ups = (
        follow_ups.order_by()
        .values("assigned_to_id")
        .annotate(
            follow_ups_on_time=Count("pk", filter=Q(done_at__lte=F("due_at"))),
            follow_ups_late=Count("pk", filter=Q(done_at__gt=F("due_at"))),
        )
    )
    by_user = {}
    for key, rows in (("owner_id", leads), ("actor_id", activities), ("assigned_to_id", follow_ups)):
        for row in rows:
            by_user.setdefault(row.pop(key), {}).update(row)
    people = get_user_model().objects.order_by("first_name", "last_name", "email")
    if f.owner is not None:
        people = people.filter(pk=f.owner.pk)
    else:
        people = people.filter(Q(is_active=True) | Q(pk__in=list(by_user)))
    zeros = dict.fromkeys(
        (
            "leads_owned", "new_leads", "contacted", "notes", "calls", "meetings", "emails",
            "follow_ups_on_time", "follow_ups_late", "won", "lost",
        ),
        0,
    )  # fmt: skip
    result = []
    for person in people.only("pk", "first_name", "last_name", "email"):
        row = {**zeros, **by_user.get(person.pk, {})}
        result.append(
            {
                "user_id": person.pk,
                "name": _person_name(person.first_name, person.last_name, person.email),
                **row,
                "conversion_rate": _rate(row["won"], row["lost"]),
            }
        )
    return result


def source_effectiveness(f):
    """Per source, the leads created in the range and how many of them are won or lost now (one query)."""
    rows = (
        Lead.objects.filter(_lead_scope(f), created_at__gte=f.start_at, created_at__lt=f.end_before)
        .order_by()
        .values("source_id", "source__name")
        .annotate(
            leads=Count("pk"),
            won=Count("pk", filter=Q(stage__kind=Stage.Kind.WON)),
            lost=Count("pk", filter=Q(stage__kind=Stage.Kind.LOST)),
        )
        .order_by("-leads", "source__name")
    )
    return [
        {
            "source_id": r["source_id"],
            "name": r["source__name"],
            "leads": r["leads"],
            "won": r["won"],
            "conversion_rate": _rate(r["won"], r["lost"]),
        }
        for r in rows
    ]


def daily_summary(day, *, viewer, source=None, owner=None):
    """One local day: new, won and lost leads, activities by kind, follow-ups done and due (three queries)."""
    f = filters_for_day(day, viewer=viewer, source=source, owner=owner)
    won_in_range, lost_in_range = _closed_in_range(Stage.Kind.WON, f), _closed_in_range(Stage.Kind.LOST, f)
    leads = Lead.objects.filter(_lead_scope(f)).aggregate(
        new_leads=Count("pk", filter=Q(created_at__gte=f.start_at, created_at__lt=f.end_before)),
        won=Count("pk", filter=won_in_range),
        won_value=Coalesce(Sum("value", filter=won_in_range), Value(ZERO), output_field=MONEY),
        lost=Count("pk", filter=lost_in_range),
    )
    activity_rows = (
        Activity.objects.filter(_activity_scope(f, by_actor=True))
        .order_by()
        .values("kind")
        .annotate(count=Count("pk"))
    )
    activities = dict.fromkeys(LOGGED_KINDS, 0) | {r["kind"]: r["count"] for r in activity_rows}
    follow_ups = FollowUp.objects.filter(lead__deleted_at__isnull=True)
    if f.source is not None:
        follow_ups = follow_ups.filter(lead__source_id=f.source.pk)
    if f.owner is not None:
        follow_ups = follow_ups.filter(assigned_to_id=f.owner.pk)
    on_day = {"gte": f.start_at, "lt": f.end_before}
    follow_up_counts = follow_ups.aggregate(
        follow_ups_done=Count("pk", filter=Q(done_at__gte=on_day["gte"], done_at__lt=on_day["lt"])),
        follow_ups_due=Count(
            "pk", filter=Q(due_at__gte=on_day["gte"], due_at__lt=on_day["lt"], cancelled_at__isnull=True)
        ),
    )
    return {
        "date": day,
        **leads,
        "activities": {str(k): v for k, v in activities.items()},
        **follow_up_counts,
    }


def dashboard(f):
    """Every figure the dashboard shows, for the benchmark and the page (a fixed number of queries)."""
    return {
        "kpis": kpis(f),
        "leads_by_stage": leads_by_stage(f),
        "leads_by_source": leads_by_source(f),
        "new_leads_per_day": new_leads_per_day(f),
        "won_lost_per_week": won_lost_per_week(f),
        "time_in_stage": time_in_stage(f),
        "top_salespeople": top_salespeople(f),
        "agent_performance": agent_performance(f),
        "source_effectiveness": source_effectiveness(f),
    }
