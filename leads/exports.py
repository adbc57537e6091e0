"""CSV export of leads: the columns, formula escaping, and a streamed response whose memory stays flat."""

import csv
import io

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone

# Headers the import's suggest_mapping() reads back as the same field, so an exported file
# re-imports unchanged; "ID" and "Created" come last and the import ignores them.
EXPORT_COLUMNS = [
    ("First name", lambda lead: lead.first_name),
    ("Last name", lambda lead: lead.last_name),
    ("E-mail", lambda lead: lead.email),
    ("Phone", lambda lead: lead.phone),  # E.164, as stored
    ("Company", lambda lead: lead.company),
    ("Title", lambda lead: lead.title),
    ("Source", lambda lead: lead.source.name),
    ("Owner e-mail", lambda lead: lead.owner.email if lead.owner_id else ""),
    ("Stage", lambda lead: lead.stage.name),
    # A plain decimal ("1234.50"): no thousands separator or currency a spreadsheet would misread.
    ("Value", lambda lead: f"{lead.value:.2f}"),
    ("Notes", lambda lead: lead.notes),
    ("ID", lambda lead: str(lead.pk)),
    ("Created", lambda lead: lead.created_at.isoformat()),
]
EXPORT_HEADERS = [header for header, _ in EXPORT_COLUMNS]

# Only what the columns read: a million leads' other fields would be read and thrown away.
EXPORT_ONLY = (
    "id", "first_name", "last_name", "email", "phone", "company", "title", "value", "notes",
    "created_at", "source__name", "stage__name", "owner__email",
)  # fmt: skip

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 500
DB_CHUNK_SIZE = 2000


def escape_cell(value) -> str:
    """The cell as text, with a leading "'" when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_queryset(queryset):
    """The leads of `queryset` with only the exported columns read, the related names joined."""
    return queryset.select_related("source", "stage", "owner").only(*EXPORT_ONLY)


def stream_leads_csv(queryset):
    """The CSV of `queryset` as bytes chunks: UTF-8 with a BOM, the header, then ~500 rows a chunk.

    Rows come from a database iterator (a server-side cursor on PostgreSQL) and go through one
    small reusable buffer, so memory does not grow with the number of leads.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # The BOM tells Excel the file is UTF-8 (it assumes the local code page otherwise).
    buffer.write("\ufeff")
    writer.writerow(EXPORT_HEADERS)
    rows = 0
    for lead in export_queryset(queryset).iterator(chunk_size=DB_CHUNK_SIZE):
        writer.writerow([escape_cell(getter(lead)) for _, getter in EXPORT_COLUMNS])
        rows += 1
        if rows % ROWS_PER_CHUNK == 0:
            yield _drain(buffer)
    # The header goes out even when no lead matches: an empty export is still a valid file.
    yield _drain(buffer)


def _drain(buffer):
    chunk = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate(0)
    return chunk


async def _async_chunks(chunks):
    """Serve a sync iterator to an ASGI server one chunk at a time.

    Given a sync iterator, Django's ASGI handler first reads it whole into a list: the export
    would sit in memory. Each next() runs thread-sensitively, so it uses the request's own
    database connection, as the view did.
    """
    next_chunk = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await next_chunk(chunks, None)) is not None:
            yield chunk
    finally:
        # A client that hangs up mid-download: close the cursor now rather than at garbage collection.
        await sync_to_async(chunks.close, thread_sensitive=True)()


def export_filename():
    return f"leads-{timezone.localdate().isoformat()}.csv"


def csv_export_response(request, queryset):
    """A streamed CSV download of `queryset` (already limited to what the user may see)."""
    return streamed_csv_response(request, stream_leads_csv(queryset), filename=export_filename())


def streamed_csv_response(request, chunks, *, filename):
    """A CSV download that streams `chunks` (bytes) under WSGI and ASGI alike, memory flat."""
    # A DRF Request wraps Django's; the server behind it is what decides.
    if isinstance(getattr(request, "_request", request), ASGIRequest):
        chunks = _async_chunks(chunks)
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    # An export is personal data of the moment: no shared cache should keep it.
    response["Cache-Control"] = "private, no-store"
    return response
