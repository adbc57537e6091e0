"""The live board's card endpoint: one card as the board would show it now, with column totals."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from leads import selectors
from leads.views import _card_html, counted_board, filtered_board


def _columns(leads, shown, counted=None):
    totals = selectors.board_column_totals(leads=leads, stages=shown, counted=counted)
    columns = {}
    for stage in shown:
        count, value = totals.get(stage.pk, (0, 0))
        columns[str(stage.pk)] = {"count": count, "value": str(value)}
    return columns


@login_required
@require_GET
def card(request, pk):
    """GET /board/cards/<pk>/?<board filters>: what the board shows for this lead now.

    After a live "lead changed" note the page asks here with its own filters, then places,
    replaces or removes the card. A lead the user may not see (any more) answers 404, still with
    the column totals, so the page can drop the card and keep its counts right.
    """
    filter_data, filterset, leads, stages, shown = filtered_board(request)
    columns = _columns(leads, shown, counted_board(request, filterset))
    try:
        lead = selectors.get_visible_lead(request.user, pk)
    except Http404:
        return JsonResponse({"lead_id": pk, "visible": False, "columns": columns}, status=404)
    shown_pks = {stage.pk for stage in shown}
    visible_in_filter = lead.stage_id in shown_pks and leads.filter(pk=lead.pk).exists()
    # The card's move form returns to the board as the person filtered it.
    board_url = reverse("leads:board") + (f"?{urlencode(filter_data)}" if filter_data else "")
    return JsonResponse(
        {
            "lead_id": lead.pk,
            "version": lead.version,
            "stage_id": lead.stage_id,
            "visible_in_filter": visible_in_filter,
            "card_html": _card_html(request, lead, stages, board_url) if visible_in_filter else "",
            "columns": columns,
        }
    )
