"""The board's "Export CSV": the leads the board shows for the same filters, streamed as a file."""

from django.contrib.auth.decorators import login_required
from django.views.decorators.http import require_GET

from leads.exports import csv_export_response
from leads.forms import QuickAddForm
from leads.views import _render_board, filtered_board


@login_required
@require_GET
def board_export(request):
    _, filterset, leads, _, shown = filtered_board(request)
    if filterset.errors:
        # The board with its filter errors shown inline, rather than a file of nothing.
        return _render_board(request, quick_add=QuickAddForm(), status=400)
    # The board's columns, not every stage: a lead the board does not show is not in its export.
    return csv_export_response(request, leads.filter(stage__in=shown))
