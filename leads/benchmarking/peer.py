"""The peer: leads as DRF's defaults would serve them, mounted only while manage.py bench runs.

A ModelViewSet with PageNumberPagination (PAGE_SIZE 20), a ModelSerializer with every field,
DjangoFilterBackend on source/owner/stage and SearchFilter over names, e-mail, phone and company:
what a team gets from the tutorial. It is a yardstick for our endpoint, never a URL of the product.
"""

from django.urls import include, path
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters, pagination, routers, serializers, viewsets

from config.urls import urlpatterns as real_urlpatterns
from leads.models import Lead

PEER_PREFIX = "bench-peer/"


class PeerPagination(pagination.PageNumberPagination):
    page_size = 20


class PeerLeadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lead
        fields = "__all__"


class PeerLeadViewSet(viewsets.ModelViewSet):
    # The same rows and order as /api/leads/ for a manager, so both answer the same question.
    queryset = Lead.objects.filter(deleted_at__isnull=True).order_by("-created_at", "-id")
    serializer_class = PeerLeadSerializer
    pagination_class = PeerPagination
    filter_backends = [DjangoFilterBackend, filters.SearchFilter]
    filterset_fields = ["source", "owner", "stage"]
    search_fields = ["first_name", "last_name", "email", "phone", "company"]


router = routers.DefaultRouter()
router.register("leads", PeerLeadViewSet, basename="bench-peer-lead")

# The real URLs, plus the peer's: override_settings(ROOT_URLCONF="leads.benchmarking.peer") mounts it.
urlpatterns = [path(PEER_PREFIX, include(router.urls)), *real_urlpatterns]
handler404 = "leads.api.errors.not_found"
handler500 = "leads.api.errors.server_error"
