"""The dashboard page (/dashboard/): KPI tiles, inline-SVG charts and tables, each table also as CSV."""

import csv
from datetime import datetime, time, timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from leads import charts, policies, reports, selectors
from leads.models import Source
from leads.templatetags.dashboard_tags import duration, money, percent

PRESETS = [
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("quarter", "This quarter"),
    ("custom", "Custom range"),
]
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- links to the leads behind a number ------------------------------------------------------


def _board(filters, **extra):
    query = filters.board_query(**extra)
    return f"{reverse('leads:board')}?{query}" if query else reverse("leads:board")


def _follow_ups(filters, user_id=None):
    """The follow-ups list of one person: the owner asked for, or the viewer's own."""
    user_id = user_id or (filters.owner.pk if filters.owner else None)
    base = reverse("leads:follow_ups")
    if user_id and policies.is_manager(filters.viewer) and user_id != filters.viewer.pk:
        return f"{base}?{urlencode({'user': user_id})}"
    return base


def _won_stage_id(stage_rows):
    """The board filters by one stage: link "won" to it when the pipeline has exactly one won stage."""
    won = [row["stage_id"] for row in stage_rows if row["kind"] == "won"]
    return won[0] if len(won) == 1 else None


# board_query() narrows to leads created in the range; figures about leads as they are now drop that.
ANY_DATE = {"created_after": None, "created_before": None}


def _day_bounds(day):
    """One local day as the board's created_after/created_before."""
    zone = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), zone)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), zone)
    return {"created_after": start.isoformat(), "created_before": end.isoformat()}


# --- the page --------------------------------------------------------------------------------


def _filter_form(request, filters, errors):
    """What the filter form shows: the resolved range when valid, what was typed when not."""
    params = request.GET
    is_manager = policies.is_manager(request.user)
    return {
        "presets": PRESETS,
        "preset": filters.preset if filters else params.get("range", "30d"),
        "start": filters.start.isoformat() if filters else params.get("start", ""),
        "end": filters.end.isoformat() if filters else params.get("end", ""),
        "source": str(filters.source.pk) if filters and filters.source else params.get("source", ""),
        "owner": str(filters.owner.pk) if filters and filters.owner else params.get("owner", ""),
        "sources": Source.objects.order_by("name"),
        "owners": selectors.assignable_owners() if is_manager else None,
        "errors": errors,
    }


def _charts(filters, stage_rows):
    by_stage = charts.bar_chart(
        chart_id="by-stage",
        title="Leads by stage",
        label_name="Stage",
        bars=[
            charts.Bar(
                row["name"],
                row["count"],
                href=_board(filters, stage=row["stage_id"], **ANY_DATE),
                css=f"kind-{row['kind']}",
            )
            for row in stage_rows
        ],
        empty_text="No leads yet",
    )
    by_source = charts.bar_chart(
        chart_id="by-source",
        title="New leads by source",
        label_name="Source",
        bars=[
            charts.Bar(row["name"], row["count"], href=_board(filters, source=row["source_id"]))
            for row in reports.leads_by_source(filters)
        ],
    )
    per_day = charts.column_chart(
        chart_id="per-day",
        title="New leads per day",
        bars=[
            charts.Bar(
                f"{row['day']:%-d %b}",
                row["count"],
                href=_board(filters, **_day_bounds(row["day"])),
            )
            for row in reports.new_leads_per_day(filters)
        ],
    )
    won_lost = charts.grouped_column_chart(
        chart_id="won-lost",
        title="Won and lost per week",
        series=[charts.Series("won", "Won"), charts.Series("lost", "Lost")],
        groups=[
            charts.Group(f"{row['week_start']:%-d %b}", {"won": row["won"], "lost": row["lost"]})
            for row in reports.won_lost_per_week(filters)
        ],
        empty_text="No leads won or lost in this range",
    )
    stage_times = [row for row in reports.time_in_stage(filters) if row["average"] is not None]
    longest = max((row["average"].total_seconds() for row in stage_times), default=0)
    unit, size = ("days", 86400) if longest >= 2 * 86400 else ("hours", 3600)
    in_stage = charts.bar_chart(
        chart_id="time-in-stage",
        title="Average time in each stage",
        label_name="Stage",
        value_name="Average time",
        axis_label=f"Average {unit} in the stage (moves in this range)",
        whole=False,
        bars=[
            charts.Bar(
                row["name"],
                row["average"].total_seconds() / size,
                text=duration(row["average"]),
                href=_board(filters, stage=row["stage_id"], **ANY_DATE),
            )
            for row in stage_times
        ],
        empty_text="No stage moves in this range",
        zeros_are_data=True,
    )
    return [by_stage, by_source, per_day, won_lost, in_stage]


def _kpi_tiles(filters, kpis, won_stage):
    # Won and lost count moves in the range, whenever the lead was created.
    won_link = _board(
        filters,
        stage=won_stage,
        **ANY_DATE,
        stage_changed_after=filters.start_at.isoformat() if won_stage else None,
        stage_changed_before=filters.end_before.isoformat() if won_stage else None,
    )
    return [
        {
            "label": "Open leads",
            "value": f"{kpis['open_leads']:,}",
            "href": _board(filters, **ANY_DATE),
            "note": "now",
        },
        {"label": "New leads", "value": f"{kpis['new_leads']:,}", "href": _board(filters)},
        {
            "label": "Won",
            "value": f"{kpis['won_count']:,}",
            "href": won_link,
            "note": money(kpis["won_value"]),
        },
        {
            "label": "Conversion rate",
            "value": percent(kpis["conversion_rate"]),
            "href": won_link,
            "note": f"{kpis['won_count']:,} won of {kpis['won_count'] + kpis['lost_count']:,} closed",
        },
        {
            "label": "Median time to first contact",
            "value": duration(kpis["median_first_contact"]),
            "href": _board(filters),
            "note": "for new leads",
        },
        {
            "label": "Overdue follow-ups",
            "value": f"{kpis['overdue_follow_ups']:,}",
            "href": _follow_ups(filters),
            "note": "now",
            "alert": kpis["overdue_follow_ups"] > 0,
        },
    ]


def _csv_link(request, table):
    query = request.GET.urlencode()
    url = reverse("leads:dashboard_csv", args=[table])
    return f"{url}?{query}" if query else url


@login_required
@require_GET
def dashboard(request):
    try:
        filters = reports.parse_filters(request.GET, viewer=request.user)
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"range": exc.messages}
        context = {"form": _filter_form(request, None, errors), "is_team": policies.is_manager(request.user)}
        return render(request, "leads/dashboard.html", context, status=400)

    stage_rows = reports.leads_by_stage(filters)
    won_stage = _won_stage_id(stage_rows)
    kpis = reports.kpis(filters)
    top = [
        {**row, "href": _board(filters, owner=row["user_id"], stage=won_stage, **ANY_DATE)}
        for row in reports.top_salespeople(filters)
    ]
    agents = [
        {
            **row,
            "owned_href": _board(filters, owner=row["user_id"], **ANY_DATE),
            "new_href": _board(filters, owner=row["user_id"]),
            "won_href": _board(filters, owner=row["user_id"], stage=won_stage, **ANY_DATE),
            "follow_ups_href": _follow_ups(filters, row["user_id"]),
        }
        for row in reports.agent_performance(filters)
    ]
    sources = [
        {
            **row,
            "href": _board(filters, source=row["source_id"]),
            "won_href": _board(filters, source=row["source_id"], stage=won_stage),
        }
        for row in reports.source_effectiveness(filters)
    ]
    context = {
        "filters": filters,
        "form": _filter_form(request, filters, {}),
        "is_team": policies.is_manager(request.user),
        "tiles": _kpi_tiles(filters, kpis, won_stage),
        "charts": _charts(filters, stage_rows),
        "top_salespeople": top,
        "agents": agents,
        "sources_table": sources,
        "csv": {table.replace("-", "_"): _csv_link(request, table) for table in CSV_TABLES},
    }
    return render(request, "leads/dashboard.html", context)


# --- CSV downloads ---------------------------------------------------------------------------


def _rate(value):
    return "" if value is None else f"{float(value) * 100:.1f}"


CSV_TABLES = {
    "top-salespeople": (
        reports.top_salespeople,
        ["Salesperson", "Won", "Won value"],
        lambda r: [r["name"], r["won_count"], f"{r['won_value'] or 0:.2f}"],
    ),
    "agent-performance": (
        reports.agent_performance,
        [
            "Salesperson",
            "Leads owned",
            "New leads",
            "Contacted",
            "Notes",
            "Calls",
            "Meetings",
            "E-mails",
            "Follow-ups on time",
            "Follow-ups late",
            "Won",
            "Lost",
            "Conversion rate (%)",
        ],
        lambda r: [
            r["name"],
            r["leads_owned"],
            r["new_leads"],
            r["contacted"],
            r["notes"],
            r["calls"],
            r["meetings"],
            r["emails"],
            r["follow_ups_on_time"],
            r["follow_ups_late"],
            r["won"],
            r["lost"],
            _rate(r["conversion_rate"]),
        ],
    ),
    "source-effectiveness": (
        reports.source_effectiveness,
        ["Source", "Leads", "Won", "Conversion rate (%)"],
        lambda r: [r["name"], r["leads"], r["won"], _rate(r["conversion_rate"])],
    ),
}


def safe_cell(value):
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """csv.writer writes a row here and the response streams what it returns."""

    def write(self, value):
        return value


@login_required
@require_GET
def dashboard_csv(request, table):
    if table not in CSV_TABLES:
        raise Http404("No such table.")
    try:
        filters = reports.parse_filters(request.GET, viewer=request.user)
    except ValidationError as exc:
        messages = exc.message_dict if hasattr(exc, "error_dict") else {"range": exc.messages}
        text = "\n".join(f"{name}: {m}" for name, ms in messages.items() for m in ms)
        return HttpResponse(text + "\n", status=400, content_type="text/plain; charset=utf-8")
    read, headers, cells = CSV_TABLES[table]
    rows = read(filters)  # read now, so a database error is a 500 rather than a cut-off download
    writer = csv.writer(_Echo())
    lines = [writer.writerow(headers)] + [writer.writerow([safe_cell(c) for c in cells(r)]) for r in rows]
    response = StreamingHttpResponse(iter(lines), content_type="text/csv; charset=utf-8")
    filename = f"{table}-{filters.start:%Y-%m-%d}-to-{filters.end:%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
