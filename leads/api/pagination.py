"""?page=&limit= pagination: {"<items>": [...], "count", "totalPages", "page", "next", "previous"}."""

import math

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


class PageLimitPagination(BasePagination):
    results_key = "results"
    default_limit = 20
    max_limit = 100

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page = self._positive_int(request, "page", 1)
        self.limit = min(self._positive_int(request, "limit", self.default_limit), self.max_limit)
        self.count = queryset.count()
        self.total_pages = math.ceil(self.count / self.limit)
        offset = (self.page - 1) * self.limit
        # A page past the end is empty, not an error: the counts still tell the truth.
        return list(queryset[offset : offset + self.limit]) if offset < self.count else []

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
    results_key = "leads"


class ActivityPagination(PageLimitPagination):
    results_key = "activities"
