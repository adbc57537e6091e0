"""The notifications page: the user's inbox, opening a notice (marks it read) and "Mark all read"."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from leads import notifications, policies
from leads.models import Notification

PAGE_SIZE = 25


def _own_notification(user, pk):
    """The user's notice, or 404 for anyone else's (never a 403 that confirms it exists)."""
    notification = Notification.objects.filter(pk=pk).first()
    if notification is None or not policies.can_read_notification(user, notification):
        raise Http404("No such notification.")
    return notification


@login_required
@require_GET
def inbox(request):
    page = Paginator(notifications.inbox(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "leads/notifications.html", {"page": page})


@login_required
@require_POST
def open_notification(request, pk):
    """Mark the notice read and go where it points (a page of this site only)."""
    notification = _own_notification(request.user, pk)
    notifications.mark_read(user=request.user, notification=notification)
    target = notification.url
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect("leads:notifications")


@login_required
@require_POST
def mark_all_read(request):
    changed = notifications.mark_all_read(user=request.user)
    if changed:
        messages.success(request, f"Marked {changed} notification{'s' if changed != 1 else ''} read.")
    return redirect("leads:notifications")


@require_GET
def unread(request):
    """{"unread": n} for the live bell to resync; JSON 401 (not a login redirect) when signed out."""
    if not request.user.is_authenticated:
        body = {"error": {"code": "not_authenticated", "message": "Log in first.", "fields": {}}}
        return JsonResponse(body, status=401)
    response = JsonResponse({"unread": notifications.unread_count(request.user)})
    response["Cache-Control"] = "no-store"
    return response
