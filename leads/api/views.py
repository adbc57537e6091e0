"""API endpoints: each parses input, calls one selector or service, and serializes the result."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from leads import selectors, services
from leads.api.exports import LeadExportMixin  # export: GET /api/leads/export/
from leads.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from leads.api.idempotency import IdempotentPostMixin
from leads.api.pagination import ActivityPagination, LeadFilterBackend, LeadPagination
from leads.api.serializers import (
    ActivityInputSerializer,
    ActivitySerializer,
    ClaimInputSerializer,
    ErrorSerializer,
    LeadInputSerializer,
    LeadSerializer,
    MoveInputSerializer,
    OwnerInputSerializer,
    SourceInputSerializer,
    SourceSerializer,
    StageInputSerializer,
    StageSerializer,
    UserSerializer,
)
from leads.filters import LeadFilter
from leads.models import Source, Stage
from leads.policies import is_manager


def errors(*codes):
    """The error responses an operation documents, all in the one error shape."""
    described = {
        400: "Invalid input; `fields` names each field and why.",
        401: "Not authenticated.",
        403: "Authenticated, but your role may not do this.",
        404: "No such lead, or you cannot see it.",
        409: "Conflict: a duplicate e-mail/phone (`existing_id`), or a stale `version` (`current`).",
        415: "The body's Content-Type is not JSON, a form or multipart.",
        422: "Idempotency-Key reused with a different body.",
        429: "Too many requests; see Retry-After.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=described[code]) for code in codes}


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe POST: the same key and body within 24 hours returns the first response.",
)
COMMON = (401, 429)
# Every operation that reads a request body: invalid fields, or a body it cannot parse at all.
WITH_BODY = (400, 415)


class ManagersWrite(permissions.BasePermission):
    """Everyone signed in reads; managers and admins write."""

    message = "Only managers and admins can change this."

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or is_manager(request.user)


@extend_schema_view(
    list=extend_schema(
        summary="List leads", responses={200: LeadSerializer(many=True), **errors(400, *COMMON)}
    ),
    create=extend_schema(
        summary="Create a lead",
        request=LeadInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: LeadSerializer, **errors(*WITH_BODY, 403, 409, 422, *COMMON)},
    ),
    retrieve=extend_schema(summary="One lead", responses={200: LeadSerializer, **errors(404, *COMMON)}),
    update=extend_schema(
        summary="Replace a lead's fields",
        request=LeadInputSerializer,
        responses={200: LeadSerializer, **errors(*WITH_BODY, 403, 404, 409, *COMMON)},
    ),
    partial_update=extend_schema(
        summary="Change some of a lead's fields",
        request=LeadInputSerializer,
        responses={200: LeadSerializer, **errors(*WITH_BODY, 403, 404, 409, *COMMON)},
    ),
    destroy=extend_schema(
        summary="Delete a lead (soft; managers and admins)",
        responses={204: OpenApiResponse(description="Deleted"), **errors(403, 404, *COMMON)},
    ),
)
class LeadViewSet(LeadExportMixin, IdempotentPostMixin, viewsets.GenericViewSet):  # export: the mixin
    """Leads the caller may see; every write goes through leads.services, as on the board."""

    serializer_class = LeadSerializer
    pagination_class = LeadPagination
    filter_backends = [LeadFilterBackend]  # DjangoFilterBackend, remembering the filters for counts
    filterset_class = LeadFilter
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return selectors.visible_leads(self.request.user).order_by("-created_at", "-id")

    def get_object(self):
        return selectors.get_visible_lead(self.request.user, self.kwargs["pk"])

    def list(self, request):
        leads = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(LeadSerializer(leads, many=True).data)

    def create(self, request):
        data = LeadInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lead = services.create_lead(actor=request.user, **data.service_arguments())
        headers = {"Location": request.build_absolute_uri(f"/api/leads/{lead.pk}/")}
        return Response(LeadSerializer(lead).data, status=status.HTTP_201_CREATED, headers=headers)

    def retrieve(self, request, pk=None):
        return Response(LeadSerializer(self.get_object()).data)

    def update(self, request, pk=None, partial=False):
        lead = self.get_object()
        data = LeadInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        lead = services.change_lead(
            lead=lead,
            actor=request.user,
            expected_version=data.validated_data.get("version"),
            **data.service_arguments(),
        )
        return Response(LeadSerializer(lead).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    def destroy(self, request, pk=None):
        services.delete_lead(lead=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Move a lead to another stage",
        request=MoveInputSerializer,
        responses={200: LeadSerializer, **errors(*WITH_BODY, 403, 404, 409, *COMMON)},
    )
    @action(detail=True, methods=["patch"], url_path="stage")
    def stage(self, request, pk=None):
        lead = self.get_object()
        data = MoveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lead = services.move_lead(
            lead=lead,
            stage=data.validated_data["stage"],
            actor=request.user,
            expected_version=data.validated_data.get("version"),
            lost_reason=data.validated_data.get("lost_reason", ""),
        )
        return Response(LeadSerializer(lead).data)

    @extend_schema(
        summary="Reassign a lead (managers and admins)",
        request=OwnerInputSerializer,
        responses={200: LeadSerializer, **errors(*WITH_BODY, 403, 404, 409, *COMMON)},
    )
    @action(detail=True, methods=["patch"], url_path="owner")
    def owner(self, request, pk=None):
        lead = self.get_object()
        data = OwnerInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lead = services.reassign_lead(
            lead=lead,
            owner=data.validated_data["owner"],
            actor=request.user,
            expected_version=data.validated_data.get("version"),
        )
        return Response(LeadSerializer(lead).data)

    @extend_schema(
        summary="Claim an unassigned lead: it becomes yours",
        request=ClaimInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: LeadSerializer, **errors(*WITH_BODY, 403, 404, 409, 422, *COMMON)},
    )
    @action(detail=True, methods=["post"], url_path="claim")
    def claim(self, request, pk=None):
        lead = self.get_object()
        data = ClaimInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lead = services.claim_lead(
            lead=lead, actor=request.user, expected_version=data.validated_data.get("version")
        )
        return Response(LeadSerializer(lead).data)

    @extend_schema(
        methods=["GET"],
        summary="A lead's timeline, newest first",
        responses={200: ActivitySerializer(many=True), **errors(400, 404, *COMMON)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Log a note, call or meeting",
        request=ActivityInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: ActivitySerializer, **errors(*WITH_BODY, 403, 404, 422, *COMMON)},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="activities",
        pagination_class=ActivityPagination,
        filterset_class=None,
    )
    def activities(self, request, pk=None):
        lead = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(selectors.lead_timeline(lead))
            return self.get_paginated_response(ActivitySerializer(page, many=True).data)
        data = ActivityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        activity = services.log_activity(lead=lead, actor=request.user, **data.validated_data)
        return Response(ActivitySerializer(activity).data, status=status.HTTP_201_CREATED)


class _NamedRowViewSet(
    IdempotentPostMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Stages and sources: read by everyone, changed by managers through the services."""

    permission_classes = [permissions.IsAuthenticated, ManagersWrite]
    pagination_class = None
    lookup_value_regex = r"\d+"
    input_serializer = None
    noun = ""

    def _save(self, request, instance=None, partial=False):
        data = self.input_serializer(instance, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        saved = self.save_service(actor=request.user, **{self.noun: instance}, **data.validated_data)
        return Response(self.serializer_class(saved).data, status=status.HTTP_200_OK if instance else 201)

    def create(self, request):
        return self._save(request)

    def update(self, request, pk=None):
        return self._save(request, self.get_object())

    def partial_update(self, request, pk=None):
        return self._save(request, self.get_object(), partial=True)

    def destroy(self, request, pk=None):
        outcome = self.retire_service(actor=request.user, **{self.noun: self.get_object()})
        if outcome == "archived":
            return Response(self.serializer_class(self.get_object()).data, status=status.HTTP_200_OK)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _named_row_schema(noun, serializer, input_serializer, destroy_errors=()):
    return extend_schema_view(
        list=extend_schema(summary=f"All {noun}s", responses={200: serializer(many=True), **errors(*COMMON)}),
        retrieve=extend_schema(summary=f"One {noun}", responses={200: serializer, **errors(404, *COMMON)}),
        create=extend_schema(
            summary=f"Add a {noun} (managers)",
            request=input_serializer,
            parameters=[IDEMPOTENCY_PARAMETER],
            responses={201: serializer, **errors(*WITH_BODY, 403, 422, *COMMON)},
        ),
        update=extend_schema(
            summary=f"Change a {noun} (managers)",
            request=input_serializer,
            responses={200: serializer, **errors(*WITH_BODY, 403, 404, *COMMON)},
        ),
        partial_update=extend_schema(
            summary=f"Change a {noun} (managers)",
            request=input_serializer,
            responses={200: serializer, **errors(*WITH_BODY, 403, 404, *COMMON)},
        ),
        destroy=extend_schema(
            summary=f"Remove a {noun} (managers): deleted when unused, archived (200) when leads use it",
            responses={
                200: serializer,
                204: OpenApiResponse(description="Deleted"),
                **errors(*destroy_errors, 403, 404, *COMMON),
            },
        ),
    )


# 400: the last stage that is not archived can be neither deleted nor archived.
@_named_row_schema("stage", StageSerializer, StageInputSerializer, destroy_errors=(400,))
class StageViewSet(_NamedRowViewSet):
    """Pipeline stages in board order."""

    queryset = Stage.objects.order_by("position", "id")
    serializer_class = StageSerializer
    input_serializer = StageInputSerializer
    noun = "stage"
    save_service = staticmethod(services.save_stage)
    retire_service = staticmethod(services.retire_stage)


@_named_row_schema("source", SourceSerializer, SourceInputSerializer)
class SourceViewSet(_NamedRowViewSet):
    """Where leads come from."""

    queryset = Source.objects.order_by("name")
    serializer_class = SourceSerializer
    input_serializer = SourceInputSerializer
    noun = "source"
    save_service = staticmethod(services.save_source)
    retire_service = staticmethod(services.retire_source)


@extend_schema_view(
    list=extend_schema(
        summary="Users, for owner pickers", responses={200: UserSerializer(many=True), **errors(*COMMON)}
    ),
    retrieve=extend_schema(summary="One user", responses={200: UserSerializer, **errors(404, *COMMON)}),
)
class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The team, for owner pickers."""

    queryset = get_user_model().objects.order_by("first_name", "last_name", "email")
    serializer_class = UserSerializer
    pagination_class = None
    lookup_value_regex = r"\d+"
