"""GET /api/leads/export/: the list's leads, with the list's filters, as one streamed CSV file."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer

from leads.api.serializers import ErrorSerializer
from leads.exports import EXPORT_HEADERS, csv_export_response


class CSVOrJSONErrorsNegotiation(BaseContentNegotiation):
    """The export answers text/csv whatever Accept says (no 406 for "Accept: text/csv"); errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _error(description):
    return OpenApiResponse(ErrorSerializer, description=description)


class LeadExportMixin:
    """The export action of LeadViewSet: its get_queryset() (visibility) and its LeadFilter."""

    @extend_schema(
        summary="Export leads as CSV",
        operation_id="leads_export",
        description=(
            "The leads `GET /api/leads/` would list for the same filters, all of them (no pages), "
            "streamed as CSV (UTF-8 with a BOM). Columns: " + ", ".join(EXPORT_HEADERS) + ". "
            "A cell starting with =, +, -, @, a tab or a carriage return is prefixed with ' so "
            "spreadsheets do not run it; the import removes that prefix again."
        ),
        filters=True,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="Content-Disposition: attachment; filename=leads-<date>.csv"
            ),
            400: _error("Invalid filter; `fields` names each filter and why."),
            401: _error("Not authenticated."),
            429: _error("Too many requests; see Retry-After."),
        },
    )
    @action(
        detail=False,
        methods=["get"],
        url_path="export",
        pagination_class=None,
        renderer_classes=[JSONRenderer],
        content_negotiation_class=CSVOrJSONErrorsNegotiation,
    )
    def export(self, request):
        return csv_export_response(request, self.filter_queryset(self.get_queryset()))
