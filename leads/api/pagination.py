"""?page=&limit= pagination: {"<items>": [...], "count", "totalPages", "page", "next", "previous"}."""

import math

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from leads import counts


class PageLimitPagination(BasePagination):
    results_key = "results"
    default_limit = 20
    max_limit = 100

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page = self._positive_int(request, "page", 1)
        self.limit = min(self._positive_int(request, "limit", self.default_limit), self.max_limit)
        self.count = self.count_rows(queryset, request, view)
        self.total_pages = math.ceil(self.count / self.limit)
        offset = (self.page - 1) * self.limit
        # A page past the end is empty, not an error: the counts still tell the truth.
        return self.page_rows(queryset, offset, self.limit) if offset < self.count else []

    def count_rows(self, queryset, request, view):
        return queryset.count()

    def page_rows(self, queryset, offset, limit):
        return list(queryset[offset : offset + limit])

    @staticmethod
    def _positive_int(request, name, default):
        raw = request.query_params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError({name: [f"Must be a whole number, not “{raw[:40]}”."]}) from None
        if value < 1 or value > 10_000_000:
            raise ValidationError({name: ["Must be between 1 and 10,000,000."]})
        return value

    def _page_url(self, page):
        url = self.request.build_absolute_uri()
        return remove_query_param(url, "page") if page == 1 else replace_query_param(url, "page", page)

    def get_paginated_response(self, data):
        has_next = self.page < self.total_pages
        has_previous = 1 < self.page <= self.total_pages + 1
        return Response(
            {
                self.results_key: data,
                "count": self.count,
                "totalPages": self.total_pages,
                "page": self.page,
                "next": self._page_url(self.page + 1) if has_next else None,
                "previous": self._page_url(self.page - 1) if has_previous else None,
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": [self.results_key, "count", "totalPages", "page", "next", "previous"],
            "properties": {
                self.results_key: schema,
                "count": {"type": "integer", "example": 123},
                "totalPages": {"type": "integer", "example": 7},
                "page": {"type": "integer", "example": 1},
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "page",
                "in": "query",
                "required": False,
                "description": "Page number, from 1.",
                "schema": {"type": "integer", "minimum": 1, "default": 1},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"Items per page (at most {self.max_limit}; more is capped).",
                "schema": {"type": "integer", "minimum": 1, "default": self.default_limit},
            },
        ]


class LeadPagination(PageLimitPagination):
    """Lead lists at a million rows: `count` from the lead counters when the filters allow, and
    deep pages of the default order found index-only, then fetched by id.

    The contract (?page=&limit=, exact count and totalPages) is the base class's; only how the
    numbers are found changes, and leads/tests/api/test_pagination_keyset.py holds them equal.
    """

    results_key = "leads"
    # LeadViewSet.get_queryset's order, with the tie-breaker ?ordering=-created_at adds.
    DEFAULT_ORDERS = {("-created_at", "-id"), ("-created_at", "-pk")}
    # From this offset on, a page's ids come from the index lead_list_order alone (an index-only
    # scan of the offset entries, no heap visits) and the rows in a second query by id. Nearer
    # the top of an unfiltered list one query is cheaper. A filtered list always goes by ids:
    # its stage/source/owner are in the index, so rows that do not match cost no heap visit
    # (?source=&owner= page 1 at a million leads: 0.2 ms instead of 26 ms).
    DEFERRED_JOIN_FROM = 200

    def count_rows(self, queryset, request, view):
        filters = self._active_filters(request, view)
        self.narrowed = filters is None or bool(set(filters) - counts.ORDER_ONLY_FILTERS)
        q = counts.counter_q(request.user, filters) if filters is not None else None
        if q is None:
            return queryset.count()  # search, dates: only the rows can tell
        return counts.totals(q)[0]

    @staticmethod
    def _active_filters(request, view):
        """The LeadFilter that filtered this list, as {name: cleaned value}; None when the view
        did not filter through LeadFilterBackend (then the rows are counted)."""
        filterset = getattr(request, LeadFilterBackend.remembered_as, None)
        if filterset is None or not filterset.is_valid():
            return None
        return filterset.active_filters()

    def page_rows(self, queryset, offset, limit):
        by_ids = offset >= self.DEFERRED_JOIN_FROM or getattr(self, "narrowed", True)
        if not by_ids or tuple(queryset.query.order_by) not in self.DEFAULT_ORDERS:
            # A user-chosen ?ordering= walks the OFFSET: same rows, no index to skip with.
            return super().page_rows(queryset, offset, limit)
        ids = queryset.values_list("pk", flat=True)
        from_end = self.count - offset - limit
        if from_end < offset:
            # Nearer the end than the start: walk the index from the oldest lead (the exact count
            # says where), fewer entries to skip; the page's ids come back in list order.
            shown = limit + min(from_end, 0)
            ids = list(ids.order_by("created_at", "id")[max(from_end, 0) : max(from_end, 0) + shown])[::-1]
        else:
            ids = list(ids[offset : offset + limit])
        # Same queryset (visibility, filters, order, joins), narrowed to the page's ids.
        return list(queryset.filter(pk__in=ids)) if ids else []


class ActivityPagination(PageLimitPagination):
    results_key = "activities"


class LeadFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend that keeps the filterset it applied on the request, so LeadPagination
    knows the cleaned filters (is the list countable from counters?) without cleaning them again
    (each ?source=/?stage=/?owner= costs a query)."""

    remembered_as = "_lead_filterset"

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        setattr(request, self.remembered_as, filterset)
        return filterset
