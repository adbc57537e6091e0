"""measure_lists(): server time of the lead list API and the board at bench scale, beside baselines.

Called by the benchmark command (manage.py bench) on a database filled by bench_dashboard; run
alone with `manage.py shell -c "from leads.bench_lists import print_lists; print_lists()"`.
Every figure is a median of in-process requests (django.test.Client), so middleware, filters,
serializers and pagination are in; the network is not.
"""

import statistics
import time
from unittest import mock

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from rest_framework import pagination, serializers, viewsets
from rest_framework.test import APIRequestFactory, force_authenticate

from accounts.models import User
from leads import selectors
from leads.counts import counter_q, rebuild_lead_counts
from leads.models import Lead, Source

BENCH_DOMAIN = "bench.example"
DEEP_PAGE = 5000


class _DefaultLeadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lead
        fields = "__all__"


class _DefaultPagination(pagination.PageNumberPagination):
    page_size = 20
    page_size_query_param = "limit"


class _DefaultLeadViewSet(viewsets.ModelViewSet):
    """The baseline: what DRF gives out of the box (COUNT(*), OFFSET, ModelSerializer)."""

    serializer_class = _DefaultLeadSerializer
    pagination_class = _DefaultPagination

    def get_queryset(self):
        leads = selectors.visible_leads(self.request.user).order_by("-created_at", "-id")
        for name in ("stage", "source", "owner"):
            if self.request.query_params.get(name):
                leads = leads.filter(**{f"{name}_id": self.request.query_params[name]})
        return leads


class _QueryCounter:
    """Counts the statements run (CaptureQueriesContext loses them: a request empties the log)."""

    def __init__(self):
        self.n = 0

    def __call__(self, execute, sql, params, many, context):
        self.n += 1
        return execute(sql, params, many, context)


def _median_ms(run, runs, warmup):
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _cases(owner, source, stage):
    return [
        ("list page 1", {}),
        ("source+owner", {"source": source.pk, "owner": owner.pk}),
        ("stage", {"stage": stage.pk}),
        (f"page {DEEP_PAGE:,}", {"page": DEEP_PAGE}),
    ]


def measure_lists(*, runs=15, warmup=2):
    """[(label, queries, ours ms, baseline ms, old SQL ms)] as the bench manager (needs the bench
    users and leads of bench_dashboard). Lists: the baseline is DRF's defaults (ModelViewSet,
    PageNumberPagination, ModelSerializer), old SQL its COUNT(*) and OFFSET page through psycopg.
    Board: the baseline is the same code with the column heads aggregated from the leads (as
    before the counters), old SQL that aggregate alone."""
    manager = User.objects.get(email=f"manager@{BENCH_DOMAIN}")
    # bench_dashboard inserts with session_replication_role = replica, which skips triggers:
    # recount once (a few seconds at a million leads) so the lists show true counts.
    rebuild_lead_counts()
    # The busiest salesperson and source: the filters hit the most rows.
    owner = User.objects.filter(email__endswith=f"@{BENCH_DOMAIN}", role="sales").order_by("pk").first()
    source = Source.objects.order_by("pk").first()
    stage = selectors.board_stages()[0]
    client = Client(raise_request_exception=True)
    client.force_login(manager)
    host = next((h for h in settings.ALLOWED_HOSTS if h != "*" and not h.startswith(".")), "localhost")
    default_view = _DefaultLeadViewSet.as_view({"get": "list"})
    factory = APIRequestFactory()
    raw = connection.connection
    results = []
    for label, params in _cases(owner, source, stage):
        query = {"limit": 20, **params}

        def ours(query=query):
            response = client.get("/api/leads/", query, HTTP_HOST=host)
            assert response.status_code == 200, response.status_code

        def drf_default(query=query):
            request = factory.get("/api/leads/", query, HTTP_HOST=host)
            force_authenticate(request, user=manager)
            response = default_view(request)
            response.render()
            assert response.status_code == 200, response.status_code

        # The old path's two statements (COUNT(*), then the page by OFFSET), straight through psycopg.
        old = selectors.visible_leads(manager).order_by("-created_at", "-id")
        old = old.filter(**{f"{k}_id": v for k, v in params.items() if k != "page"})
        offset = (params.get("page", 1) - 1) * 20
        page_sql = old[offset : offset + 20].query.sql_with_params()
        count_sql = old.order_by().values("pk").query.sql_with_params()

        def old_raw(page_sql=page_sql, count_sql=count_sql):
            with raw.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM ({count_sql[0]}) AS t", count_sql[1])
                cursor.fetchall()
                cursor.execute(*page_sql)
                cursor.fetchall()

        with connection.execute_wrapper(counted := _QueryCounter()):
            ours()
        results.append(
            (
                label,
                counted.n,
                _median_ms(ours, runs, warmup),
                _median_ms(drf_default, runs, warmup),
                _median_ms(old_raw, runs, warmup),
            )
        )

    stages = selectors.board_stages()

    def board():
        columns = selectors.board_columns(
            leads=selectors.visible_leads(manager), stages=stages, counted=counter_q(manager, {})
        )
        assert columns

    def board_old():
        assert selectors.board_columns(leads=selectors.visible_leads(manager), stages=stages)

    def board_page():
        # The manifest of collected static files may not exist here; the page's time is measured.
        storages = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        with override_settings(STORAGES=storages):
            response = client.get(reverse("leads:board"), HTTP_HOST=host)
        assert response.status_code == 200, response.status_code

    def board_page_old():
        with mock.patch("leads.views.counted_board", return_value=None):
            board_page()

    # The old column heads: one COUNT/SUM over every visible lead, grouped by stage.
    heads = selectors.visible_leads(manager).filter(stage__in=stages).order_by().values("stage")
    heads_sql = heads.annotate(n=Count("pk"), v=Sum("value")).query.sql_with_params()

    def heads_raw():
        with raw.cursor() as cursor:
            cursor.execute(*heads_sql)
            cursor.fetchall()

    heads_ms = None
    for label, run, old_run in (
        ("board columns (selector)", board, board_old),
        ("GET /board/ (page)", board_page, board_page_old),
    ):
        try:
            with connection.execute_wrapper(counted := _QueryCounter()):
                run()
        except Exception as exc:  # a page another change broke still lets the rest be measured
            results.append((f"{label}: failed ({type(exc).__name__})", 0, 0.0, 0.0, 0.0))
            continue
        heads_ms = heads_ms or _median_ms(heads_raw, runs, warmup)
        ours = _median_ms(run, runs, warmup)
        results.append((label, counted.n, ours, _median_ms(old_run, runs, warmup), heads_ms))
    return results


def print_lists(*, runs=15, warmup=2, write=print):
    write(f"{'measure':<28}{'queries':>8}{'ours ms':>10}{'base ms':>10}{'old SQL ms':>11}{'base/ours':>10}")
    for label, queries, ours, default, old in measure_lists(runs=runs, warmup=warmup):
        ratio = f"{default / ours:9.1f}×" if ours else ""
        write(f"{label:<28}{queries:>8}{ours:>10.1f}{default:>10.1f}{old:>11.1f}{ratio:>10}")
