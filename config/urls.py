"""The URL map: the board and lead pages, the REST API, accounts, and Django admin."""

from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path


def favicon(request):
    # Resolved per request, not at import, so the URLconf never depends on collectstatic.
    return redirect(static("img/favicon.svg"), permanent=True)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("leads.api.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("leads.urls")),
    # Browsers ask for /favicon.ico on pages that name no icon (admin, the browsable API).
    path("favicon.ico", favicon),
]

# /api/ paths answer errors in the API's JSON shape; pages keep Django's HTML error pages.
handler404 = "leads.api.errors.not_found"
handler500 = "leads.api.errors.server_error"
