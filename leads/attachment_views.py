"""Lead page files: upload, permission-checked download, and delete with a confirm page."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leads import attachments, policies, selectors

logger = logging.getLogger("leadboard.attachments")


def _files_panel(lead):
    return f"{lead.get_absolute_url()}#files"


@login_required
@require_POST
def upload(request, pk):
    lead = selectors.get_visible_lead(request.user, pk)
    if not policies.can_attach(request.user, lead):
        raise PermissionDenied("You can see this lead but not attach files to it.")
    try:
        attachment = attachments.add_attachment(lead=lead, file=request.FILES.get("file"), actor=request.user)
    except ValidationError as exc:
        # A small page with the reason and the form again; the lead page stays as it was.
        errors = exc.message_dict.get("file") or exc.messages
        context = {"lead": lead, "errors": errors, "accept": attachments.ACCEPT_ATTRIBUTE}
        context["max_megabytes"] = attachments.max_upload_bytes() // (1024 * 1024)
        return render(request, "leads/attachment_upload.html", context, status=400)
    messages.success(request, f"Attached {attachment.filename}.")
    return redirect(_files_panel(lead))


def file_response(attachment):
    """The stored file as a download that browsers save rather than render (no sniffing either)."""
    try:
        handle = attachment.file.open("rb")
    except (FileNotFoundError, OSError):
        logger.error("Attachment %s is missing from storage (%s)", attachment.pk, attachment.file.name)
        raise Http404("This file is missing from storage.") from None
    response = FileResponse(
        handle, as_attachment=True, filename=attachment.filename, content_type=attachment.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    # Even if a browser were told to render it, it would run nothing and load nothing.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@login_required
@require_GET
def download(request, pk, file_id):
    lead = selectors.get_visible_lead(request.user, pk)
    return file_response(selectors.get_lead_attachment(lead, file_id))


@login_required
@require_http_methods(["GET", "POST"])
def delete(request, pk, file_id):
    lead = selectors.get_visible_lead(request.user, pk)
    attachment = selectors.get_lead_attachment(lead, file_id)
    if not policies.can_delete_attachment(request.user, attachment):
        raise PermissionDenied("Only managers, the uploader or the lead's owner can delete this file.")
    if request.method == "GET":
        return render(request, "leads/attachment_delete.html", {"lead": lead, "attachment": attachment})
    try:
        attachments.delete_attachment(attachment=attachment, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Deleted {attachment.filename}.")
    return redirect(_files_panel(lead))
