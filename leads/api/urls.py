"""/api/: leads, stages, sources, users, auth, and the OpenAPI schema with Swagger UI."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from accounts.api import LogoutAllView, LogoutView, MeView, TokenRefresh, TokenView
from leads.api.attachments import LeadAttachmentDownloadView, LeadAttachmentsView, LeadAttachmentView
from leads.api.docs import ApiDocsView  # Swagger UI without inline script or style (CSP)
from leads.api.follow_ups import FollowUpViewSet
from leads.api.imports import ImportViewSet  # CSV imports
from leads.api.public import PublicLeadCreateView
from leads.api.reports import (  # dashboard and reports
    AgentPerformanceView,
    DailySummaryView,
    DashboardLeadsBySourceView,
    DashboardLeadsByStageView,
    DashboardStatsView,
    DashboardTopSalesView,
)
from leads.api.views import LeadViewSet, SourceViewSet, StageViewSet, UserViewSet


class OptionalSlashRouter(DefaultRouter):
    """/api/leads/1/stage and /api/leads/1/stage/ both answer, with no redirect.

    No format-suffix routes (/api/leads/1.json): the views take no `format` argument, the
    schema does not document them, and JSON is the default anyway (?format=api still works).
    """

    include_format_suffixes = False

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("leads", LeadViewSet, basename="lead")
router.register("stages", StageViewSet, basename="stage")
router.register("sources", SourceViewSet, basename="source")
router.register("users", UserViewSet, basename="user")
# Registered before urlpatterns: router.urls is read once, when urlpatterns is built below.
router.register("follow-ups", FollowUpViewSet, basename="follow-up")
# CSV imports: /api/imports/ and its start, cancel, revert and errors actions.
router.register("imports", ImportViewSet, basename="import")

app_name = "api"
urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="token"),
    path("auth/token/refresh/", TokenRefresh.as_view(), name="token_refresh"),
    path("auth/logout/", LogoutView.as_view(), name="logout"),
    path("auth/logout-all/", LogoutAllView.as_view(), name="logout_all"),
    path("auth/me/", MeView.as_view(), name="me"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", ApiDocsView.as_view(url_name="api:schema"), name="docs"),
    # The public capture form, for sites that post to us: no login.
    path("public/leads/", PublicLeadCreateView.as_view(), name="public_lead_create"),
    # Files on a lead.
    # Optional trailing slash, as on the router's routes.
    re_path(r"^leads/(?P<pk>\d+)/attachments/?$", LeadAttachmentsView.as_view(), name="lead-attachments"),
    re_path(
        r"^leads/(?P<pk>\d+)/attachments/(?P<attachment_id>\d+)/?$",
        LeadAttachmentView.as_view(),
        name="lead-attachment",
    ),
    re_path(
        r"^leads/(?P<pk>\d+)/attachments/(?P<attachment_id>\d+)/download/?$",
        LeadAttachmentDownloadView.as_view(),
        name="lead-attachment-download",
    ),
    # Dashboard and reports: the dashboard's figures with its filters (optional trailing slash).
    re_path(r"^dashboard/stats/?$", DashboardStatsView.as_view(), name="dashboard-stats"),
    re_path(
        r"^dashboard/leads-by-stage/?$", DashboardLeadsByStageView.as_view(), name="dashboard-leads-by-stage"
    ),
    re_path(
        r"^dashboard/leads-by-source/?$",
        DashboardLeadsBySourceView.as_view(),
        name="dashboard-leads-by-source",
    ),
    re_path(r"^dashboard/top-sales/?$", DashboardTopSalesView.as_view(), name="dashboard-top-sales"),
    re_path(r"^reports/daily-summary/?$", DailySummaryView.as_view(), name="reports-daily-summary"),
    re_path(
        r"^reports/agent-performance/?$", AgentPerformanceView.as_view(), name="reports-agent-performance"
    ),
    # /api/follow-ups/ comes from the router (registered above, with the other viewsets).
    path("", include(router.urls)),
]
