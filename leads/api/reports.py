"""/api/dashboard/ and /api/reports/: the dashboard's figures as JSON, with the page's filters and rules."""

from datetime import date

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from leads import reports
from leads.api.views import COMMON, errors


@extend_schema_field(OpenApiTypes.INT)
class DurationSecondsField(serializers.Field):
    """A timedelta as whole seconds (a JSON number), or null."""

    def to_representation(self, value):
        return round(value.total_seconds())


def _seconds(help_text):
    return DurationSecondsField(allow_null=True, help_text=help_text)


def _money(help_text):
    return serializers.DecimalField(max_digits=14, decimal_places=2, help_text=help_text)


def _rate():
    return serializers.FloatField(
        allow_null=True,
        help_text="won / (won + lost), 0 to 1, rounded to 4 places; null when nothing closed.",
    )


class ReportFiltersSerializer(serializers.Serializer):
    """The filters the figures were computed with (a salesperson's owner is always themselves)."""

    preset = serializers.ChoiceField(choices=reports.PRESETS)
    start = serializers.DateField(help_text="First day of the range (inclusive), in the server's time zone.")
    end = serializers.DateField(help_text="Last day of the range (inclusive).")
    source = serializers.IntegerField(allow_null=True, source="source.pk", help_text="Source id, or null.")
    owner = serializers.IntegerField(
        allow_null=True, source="owner.pk", help_text="User id, or null (the team)."
    )
    time_zone = serializers.SerializerMethodField()

    def get_time_zone(self, f) -> str:
        """The time zone whose days the range counts (settings.TIME_ZONE)."""
        return timezone.get_current_timezone_name()


class StatsSerializer(serializers.Serializer):
    filters = ReportFiltersSerializer()
    open_leads = serializers.IntegerField(help_text="Live leads in open stages now.")
    new_leads = serializers.IntegerField(help_text="Leads created in the range.")
    won_count = serializers.IntegerField(help_text="Leads moved into a won stage in the range.")
    won_value = _money("Their total expected value.")
    lost_count = serializers.IntegerField(help_text="Leads moved into a lost stage in the range.")
    conversion_rate = _rate()
    median_first_contact = _seconds(
        "Median seconds from creation to the first call, meeting, e-mail or stage change, for leads "
        "created in the range; null when none was contacted."
    )
    overdue_follow_ups = serializers.IntegerField(help_text="Open follow-ups past due now.")


class StageCountSerializer(serializers.Serializer):
    stage_id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="open, won or lost.")
    count = serializers.IntegerField()
    value = _money("Total expected value of the stage's leads.")


class LeadsByStageSerializer(serializers.Serializer):
    filters = ReportFiltersSerializer()
    stages = StageCountSerializer(many=True, help_text="Live stages in board order; leads in them now.")


class SourceCountSerializer(serializers.Serializer):
    source_id = serializers.IntegerField()
    name = serializers.CharField()
    count = serializers.IntegerField(help_text="Leads created in the range.")


class LeadsBySourceSerializer(serializers.Serializer):
    filters = ReportFiltersSerializer()
    sources = SourceCountSerializer(
        many=True, help_text="Sources with leads created in the range, most first."
    )


class SalespersonSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    name = serializers.CharField()
    won_count = serializers.IntegerField()
    won_value = _money("Expected value of the leads they won in the range.")


class TopSalesSerializer(serializers.Serializer):
    filters = ReportFiltersSerializer()
    salespeople = SalespersonSerializer(many=True, help_text="By won value, then won count.")


class AgentSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    name = serializers.CharField()
    leads_owned = serializers.IntegerField(help_text="Live leads they own now.")
    new_leads = serializers.IntegerField(help_text="Of those, created in the range.")
    contacted = serializers.IntegerField(
        help_text="Distinct leads they called, met or e-mailed in the range."
    )
    notes = serializers.IntegerField()
    calls = serializers.IntegerField()
    meetings = serializers.IntegerField()
    emails = serializers.IntegerField()
    follow_ups_on_time = serializers.IntegerField(help_text="Follow-ups done in the range by their due time.")
    follow_ups_late = serializers.IntegerField(help_text="Follow-ups done in the range after their due time.")
    won = serializers.IntegerField()
    lost = serializers.IntegerField()
    conversion_rate = _rate()


class AgentPerformanceSerializer(serializers.Serializer):
    filters = ReportFiltersSerializer()
    agents = AgentSerializer(many=True)


class DailySummarySerializer(serializers.Serializer):
    date = serializers.DateField()
    time_zone = serializers.CharField()
    new_leads = serializers.IntegerField()
    won = serializers.IntegerField()
    won_value = _money("Expected value of the leads won that day.")
    lost = serializers.IntegerField()
    activities = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Timeline entries that day by kind (note, call, meeting and email always present).",
    )
    follow_ups_done = serializers.IntegerField()
    follow_ups_due = serializers.IntegerField(help_text="Follow-ups due that day and not cancelled.")


def _query(name, description, type_=str, **kwargs):
    return OpenApiParameter(
        name, type_, OpenApiParameter.QUERY, required=False, description=description, **kwargs
    )


SOURCE = _query("source", "A source id or name (any case).")
OWNER = _query("owner", "A user id or `me`. Ignored for salespeople: they always see their own numbers.")
RANGE_PARAMETERS = [
    _query(
        "range", "A preset: today, 7d, 30d (default), quarter (so far) or custom.", enum=list(reports.PRESETS)
    ),
    _query("start", "Custom range start, YYYY-MM-DD (implies range=custom).", date),
    _query("end", "Custom range end, YYYY-MM-DD, inclusive; defaults to today.", date),
    SOURCE,
    OWNER,
]
REPORT_RANGE_PARAMETERS = [
    _query("start_date", "First day, YYYY-MM-DD (without dates: the last 30 days).", date),
    _query("end_date", "Last day, YYYY-MM-DD, inclusive; defaults to today.", date),
    SOURCE,
    OWNER,
]
RESPONSES_400 = errors(400, *COMMON)
TAGS = ["dashboard"]


class FiguresView(APIView):
    """GET: parse the filters (a 400 names the bad one), compute one figure, serialize it."""

    def filters(self, request):
        return reports.parse_filters(request.query_params, viewer=request.user)


@extend_schema(
    summary="Dashboard headline figures",
    tags=TAGS,
    parameters=RANGE_PARAMETERS,
    responses={200: StatsSerializer, **RESPONSES_400},
)
class DashboardStatsView(FiguresView):
    def get(self, request):
        f = self.filters(request)
        return Response(StatsSerializer({"filters": f, **reports.kpis(f)}).data)


@extend_schema(
    summary="Leads in each stage now",
    tags=TAGS,
    parameters=RANGE_PARAMETERS,
    responses={200: LeadsByStageSerializer, **RESPONSES_400},
)
class DashboardLeadsByStageView(FiguresView):
    def get(self, request):
        f = self.filters(request)
        return Response(LeadsByStageSerializer({"filters": f, "stages": reports.leads_by_stage(f)}).data)


@extend_schema(
    summary="Leads created in the range, by source",
    tags=TAGS,
    parameters=RANGE_PARAMETERS,
    responses={200: LeadsBySourceSerializer, **RESPONSES_400},
)
class DashboardLeadsBySourceView(FiguresView):
    def get(self, request):
        f = self.filters(request)
        return Response(LeadsBySourceSerializer({"filters": f, "sources": reports.leads_by_source(f)}).data)


@extend_schema(
    summary="Top salespeople by won value",
    tags=TAGS,
    parameters=[*RANGE_PARAMETERS, _query("limit", "How many people, 1 to 50 (default 10).", int)],
    responses={200: TopSalesSerializer, **RESPONSES_400},
)
class DashboardTopSalesView(FiguresView):
    def get(self, request):
        raw = request.query_params.get("limit", "10").strip()
        if not raw.isdecimal() or not 1 <= int(raw[:3]) <= 50 or len(raw) > 3:
            raise ValidationError({"limit": [f"Give a whole number from 1 to 50, not “{raw[:20]}”."]})
        f = self.filters(request)
        rows = reports.top_salespeople(f, limit=int(raw))
        return Response(TopSalesSerializer({"filters": f, "salespeople": rows}).data)


@extend_schema(
    summary="One day's summary",
    tags=["reports"],
    parameters=[
        _query("date", "The day, YYYY-MM-DD, in the server's time zone (default: today).", date),
        SOURCE,
        OWNER,
    ],
    responses={200: DailySummarySerializer, **RESPONSES_400},
)
class DailySummaryView(FiguresView):
    def get(self, request):
        params = request.query_params
        day = (params.get("date") or "").strip()
        if day and not _is_day(day):
            raise ValidationError({"date": [f"“{day[:40]}” is not a date: use YYYY-MM-DD, e.g. 2026-03-31."]})
        # One day is a custom range of one day: the same parsing, messages and owner rule as the dashboard.
        span = {"start": day, "end": day} if day else {"range": "today"}
        try:
            f = reports.parse_filters(
                {**span, "source": params.get("source"), "owner": params.get("owner")}, viewer=request.user
            )
        except ValidationError as error:
            # The dates are named start/end inside; this endpoint's parameter is `date`.
            fields = error.message_dict
            raise ValidationError(
                {("date" if k in ("start", "end") else k): v for k, v in fields.items()}
            ) from None
        summary = reports.daily_summary(f.start, viewer=request.user, source=f.source, owner=f.owner)
        summary["time_zone"] = timezone.get_current_timezone_name()
        return Response(DailySummarySerializer(summary).data)


def _is_day(raw):
    try:
        date.fromisoformat(raw)
    except ValueError:
        return False
    return len(raw) == 10


@extend_schema(
    summary="Each person's performance over a date range",
    tags=["reports"],
    parameters=REPORT_RANGE_PARAMETERS,
    responses={200: AgentPerformanceSerializer, **RESPONSES_400},
)
class AgentPerformanceView(FiguresView):
    def get(self, request):
        params = request.query_params
        # This endpoint speaks start_date/end_date only (the page's start/end and presets are not its words).
        f = reports.parse_filters(
            {k: params.get(k) for k in ("start_date", "end_date", "source", "owner")}, viewer=request.user
        )
        return Response(
            AgentPerformanceSerializer({"filters": f, "agents": reports.agent_performance(f)}).data
        )
