"""The public capture form at /apply/: no login; size, rate and honeypot checks, then leads.intake."""

from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from leads import capture_guard, intake
from leads.capture_forms import CaptureForm
from leads.forms import apply_service_errors


@csrf_exempt  # checked in _apply_form, once the body is known to be small enough to read
@require_http_methods(["GET", "POST"])
def apply(request):
    """The form; a POST too large is refused from its Content-Length before a byte is read."""
    if request.method == "POST":
        # CsrfViewMiddleware reads the whole POST body to find the token, so this comes first.
        if capture_guard.body_too_large(request):
            context = {"form": CaptureForm(), "refused": capture_guard.too_large_message()}
            return render(request, "leads/apply.html", context, status=413)
        retry_after = capture_guard.take_submission_slot(request)
        if retry_after is not None:
            response = render(
                request,
                "leads/apply_rate_limited.html",
                {"wait": capture_guard.wait_text(retry_after)},
                status=429,
            )
            response["Retry-After"] = str(retry_after)
            return response
    return _apply_form(request)


@csrf_protect
def _apply_form(request):
    if request.method != "POST":
        return render(request, "leads/apply.html", {"form": CaptureForm()})
    form = CaptureForm(request.POST, request.FILES)
    if form.honeypot_filled():
        # Answer a bot exactly as a person, so it learns nothing; create nothing.
        return redirect("leads:apply_thanks")
    if form.is_valid():
        try:
            intake.capture_lead(**form.service_arguments(), ip=capture_guard.client_ip(request))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return redirect("leads:apply_thanks")
    file_lost = bool(request.FILES.get("resume"))
    return render(request, "leads/apply.html", {"form": form, "file_lost": file_lost}, status=400)


@require_GET
def apply_thanks(request):
    return render(request, "leads/apply_thanks.html")
