"""The URL map: the board and lead pages, the REST API, accounts, and Django admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("leads.api.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("leads.urls")),
]

# /api/ paths answer errors in the API's JSON shape; pages keep Django's HTML error pages.
handler404 = "leads.api.errors.not_found"
handler500 = "leads.api.errors.server_error"
