"""CSV import pages: upload and history, mapping with its preview, progress, result, cancel, revert."""

import csv
from datetime import timedelta
from pathlib import PurePath

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leads import imports, policies, selectors
from leads.exports import escape_cell, streamed_csv_response
from leads.forms import apply_service_errors
from leads.import_forms import ImportMappingForm, ImportUploadForm
from leads.models import ImportJob

HISTORY_SIZE = 50
PREVIEW_ROWS = 20
ACTIVE_STATUSES = {ImportJob.Status.QUEUED, ImportJob.Status.RUNNING}
REVERTABLE_STATUSES = {ImportJob.Status.DONE, ImportJob.Status.CANCELLED, ImportJob.Status.FAILED}


def _duration(seconds):
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def progress_text(progress):
    """ "12,345 of 100,000 rows · 8,200 rows/s · about 11 s left", from imports.job_progress()."""
    done, total = progress.get("rows_done") or 0, progress.get("total_rows")
    parts = [f"{done:,} of {total:,} rows" if total is not None else f"{done:,} rows"]
    if progress.get("finished"):
        parts.append(progress.get("status_label") or "")
        return " · ".join(part for part in parts if part)
    if progress.get("rate_per_second"):
        parts.append(f"{round(progress['rate_per_second']):,} rows/s")
    if progress.get("seconds_left") is not None:
        parts.append(f"about {_duration(progress['seconds_left'])} left")
    if not done and progress.get("status") == ImportJob.Status.QUEUED:
        parts.append("waiting to start")
    return " · ".join(parts)


def job_progress(job):
    """The engine's progress numbers plus the sentence the page shows, so page and script agree."""
    progress = imports.job_progress(job)
    return {**progress, "text": progress_text(progress)}


def _revert_deadline(job):
    reference = job.finished_at or job.created_at
    return reference + timedelta(days=settings.IMPORT_REVERT_DAYS)


def _may_offer_revert(user, job):
    # Only decides whether to show the button; imports.revert_import enforces the same rule.
    return (
        policies.can_revert_import(user, job)
        and job.status in REVERTABLE_STATUSES
        and (job.created_count or job.updated_count)
        and timezone.now() < _revert_deadline(job)
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_list(request):
    """/imports/: upload a CSV (POST) and the history of imports the user may see."""
    if not policies.can_import(request.user):
        raise PermissionDenied("Your account may not import leads.")
    form = ImportUploadForm()
    status = 200
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                job = imports.start_upload(actor=request.user, file=form.cleaned_data["file"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(
                    request, f"Uploaded {job.filename}. Check how its columns map to lead fields."
                )
                return redirect("leads:import_detail", pk=job.pk)
        status = 400
    history = list(selectors.visible_imports(request.user).select_related("created_by")[: HISTORY_SIZE + 1])
    context = {
        "form": form,
        "jobs": history[:HISTORY_SIZE],
        "more": len(history) > HISTORY_SIZE,
        "max_megabytes": settings.IMPORT_MAX_BYTES // (1024 * 1024),
        "is_manager": policies.is_manager(request.user),
    }
    return render(request, "leads/imports.html", context, status=status)


def _render_detail(request, job, *, form=None, status=200):
    context = {
        "job": job,
        "is_active": job.status in ACTIVE_STATUSES,
        "can_cancel": job.status in ACTIVE_STATUSES | {ImportJob.Status.MAPPING}
        and policies.can_cancel_import(request.user, job),
        "can_revert": _may_offer_revert(request.user, job),
        "revert_deadline": _revert_deadline(job),
        "progress": job_progress(job),
    }
    if job.status == ImportJob.Status.MAPPING:
        form = form or ImportMappingForm(job=job, user=request.user)
        chosen = form.settings() if form.is_bound and form.is_valid() else {}
        rows = imports.preview(job, limit=PREVIEW_ROWS, **chosen)
        width = len(job.headers or [])
        # A short row gets empty cells (and a long one loses its extras) so the table stays aligned.
        preview = [(row, [*row.cells[:width], *[""] * (width - len(row.cells))]) for row in rows]
        samples = preview[0][1] if preview else [""] * width
        context |= {
            "form": form,
            "columns": list(zip(form.column_fields(), samples)),
            "preview": preview,
            "preview_limit": PREVIEW_ROWS,
        }
    return render(request, "leads/import_detail.html", context, status=status)


def _configure(request, job):
    """Apply the posted mapping through the service; the form carries any errors."""
    form = ImportMappingForm(request.POST, job=job, user=request.user)
    if form.is_valid():
        try:
            job = imports.configure_import(job=job, actor=request.user, **form.settings())
        except ValidationError as exc:
            apply_service_errors(form, exc)
    return job, form


@login_required
@require_http_methods(["GET", "POST"])
def import_detail(request, pk):
    """One import: the mapping step while it waits for one (POST: "Check again"), else progress and result."""
    job = selectors.get_visible_import(request.user, pk)
    if request.method == "POST":
        if job.status != ImportJob.Status.MAPPING:
            messages.error(request, "This import has started; its mapping can no longer change.")
            return redirect("leads:import_detail", pk=job.pk)
        job, form = _configure(request, job)
        return _render_detail(request, job, form=form, status=400 if form.errors else 200)
    return _render_detail(request, job)


@login_required
@require_POST
def import_start(request, pk):
    job = selectors.get_visible_import(request.user, pk)
    if job.status != ImportJob.Status.MAPPING:
        messages.error(request, "This import has already started.")
        return redirect("leads:import_detail", pk=job.pk)
    job, form = _configure(request, job)
    if form.errors:
        return _render_detail(request, job, form=form, status=400)
    try:
        job = imports.queue_import(job=job, actor=request.user)
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return _render_detail(request, job, form=form, status=400)
    messages.success(request, f"Import of {job.filename} started.")
    return redirect("leads:import_detail", pk=job.pk)


@login_required
@require_POST
def import_cancel(request, pk):
    job = selectors.get_visible_import(request.user, pk)
    try:
        job = imports.cancel_import(job=job, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Import cancelled. Rows already imported stay; a manager can revert them.")
    return redirect("leads:import_detail", pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def import_revert(request, pk):
    """GET: what a revert will do and a confirm button; POST: revert the import."""
    job = selectors.get_visible_import(request.user, pk)
    if not policies.can_revert_import(request.user, job):
        raise PermissionDenied("Only managers can revert an import.")
    if request.method == "POST":
        try:
            imports.revert_import(job=job, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Reverted the import of {job.filename}.")
        return redirect("leads:import_detail", pk=pk)
    context = {
        "job": job,
        "revert_deadline": _revert_deadline(job),
        "revert_days": settings.IMPORT_REVERT_DAYS,
        "can_revert": _may_offer_revert(request.user, job),
    }
    return render(request, "leads/import_revert.html", context)


class _Echo:
    """csv.writer needs a file; this one hands each formatted line back so it can be streamed."""

    def write(self, value):
        return value


def error_report_response(request, job):
    """The error report as a streamed CSV download (UTF-8 with BOM so spreadsheets read it right).

    Cells are escaped like an export's: the rows came from a stranger's file and are opened in a
    spreadsheet; the import strips the escape again when the fixed report is re-imported.
    """
    writer = csv.writer(_Echo())

    def lines():
        yield "\ufeff".encode()
        for row in imports.error_report_rows(job):
            yield writer.writerow([escape_cell(cell) for cell in row]).encode()

    stem = PurePath(job.filename or "import").stem or "import"
    return streamed_csv_response(request, lines(), filename=f"{_safe_filename(stem)}-errors.csv")


def _safe_filename(stem):
    return (
        "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in stem)[:100]
        or "import"
    )


@login_required
@require_GET
def import_errors(request, pk):
    return error_report_response(request, selectors.get_visible_import(request.user, pk))


@login_required
@require_GET
def import_progress(request, pk):
    """The progress bar's numbers as JSON, polled by static/js/imports.js."""
    job = selectors.get_visible_import(request.user, pk)
    response = JsonResponse(job_progress(job))
    response["Cache-Control"] = "no-store"
    return response
