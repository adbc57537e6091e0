"""/api/follow-ups/: list, schedule (idempotent), read, reschedule, cancel and complete follow-ups."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from leads import follow_ups, selectors
from leads.api.pagination import PageLimitPagination
from leads.api.serializers import OwnerRefSerializer, RefSerializer, UserIdField
from leads.api.views import COMMON, WITH_BODY, errors
from leads.filters import FollowUpFilter
from leads.models import FollowUp

IDEMPOTENCY_HEADER = "Idempotency-Key"


class FollowUpPagination(PageLimitPagination):
    results_key = "follow_ups"


class FollowUpSerializer(serializers.ModelSerializer):
    """A follow-up as integrators read it. Needs lead and assigned_to joined (the selector does)."""

    lead = RefSerializer()
    assigned_to = OwnerRefSerializer()
    status = serializers.SerializerMethodField()
    created_by = serializers.IntegerField(source="created_by_id", allow_null=True)
    outcome = serializers.CharField(
        help_text=f'How it went ({", ".join(FollowUp.Outcome.values)}), or "" until it is done.'
    )

    class Meta:
        model = FollowUp
        fields = [
            "id",
            "lead",
            "kind",
            "title",
            "assigned_to",
            "due_at",
            "status",
            "done_at",
            "cancelled_at",
            "outcome",
            "notes",
            "duration_minutes",
            "idempotency_key",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_status(self, follow_up) -> str:
        """open, done or cancelled."""
        if follow_up.done_at is not None:
            return "done"
        if follow_up.cancelled_at is not None:
            return "cancelled"
        return "open"


class LeadIdField(serializers.IntegerField):
    """A lead the caller may see, by id; one they may not see is reported as unknown."""

    def to_internal_value(self, data):
        pk = super().to_internal_value(data)
        if not 1 <= pk < 2**63:
            raise serializers.ValidationError(f"There is no lead with id {pk}.")
        lead = selectors.visible_leads(self.context["request"].user).filter(pk=pk).first()
        if lead is None:
            raise serializers.ValidationError(f"There is no lead with id {pk} that you can see.")
        return lead


class FollowUpInputSerializer(serializers.Serializer):
    """What POST /api/follow-ups/ accepts."""

    lead = LeadIdField(help_text="The lead's id.")
    kind = serializers.ChoiceField(choices=FollowUp.Kind.choices, default=FollowUp.Kind.CALL)
    title = serializers.CharField(max_length=200)
    due_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone; a past time is allowed.")
    assigned_to = UserIdField(
        required=False, allow_null=True, help_text="User id; defaults to you. Managers may pick anyone."
    )
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    idempotency_key = serializers.CharField(
        required=False,
        max_length=255,
        help_text="Or the Idempotency-Key header: a retry with the key returns the first follow-up (200).",
    )


class FollowUpChangeSerializer(serializers.Serializer):
    """What PUT and PATCH accept: reschedule, reassign, reword."""

    kind = serializers.ChoiceField(choices=FollowUp.Kind.choices, required=False)
    title = serializers.CharField(max_length=200, required=False)
    due_at = serializers.DateTimeField(required=False)
    assigned_to = UserIdField(required=False, allow_null=False, help_text="User id (managers: anyone).")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)

    def validate(self, data):
        if not self.partial:
            missing = [name for name in ("title", "due_at") if name not in data]
            if missing:
                raise serializers.ValidationError({name: ["This field is required."] for name in missing})
        return data


class CompleteInputSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=FollowUp.Outcome.choices)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    duration_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1440)


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="A key for safe retries: a follow-up already created with it (by you) is returned with 200.",
)


@extend_schema_view(
    list=extend_schema(
        summary="List follow-ups on leads you can see",
        responses={200: FollowUpSerializer(many=True), **errors(400, *COMMON)},
    ),
    create=extend_schema(
        summary="Schedule a follow-up (201; 200 when the idempotency key was used before)",
        request=FollowUpInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: FollowUpSerializer,
            200: OpenApiResponse(FollowUpSerializer, description="The follow-up made earlier with this key."),
            **errors(*WITH_BODY, 403, *COMMON),
        },
    ),
    retrieve=extend_schema(
        summary="One follow-up", responses={200: FollowUpSerializer, **errors(404, *COMMON)}
    ),
    update=extend_schema(
        summary="Reschedule, reassign or reword an open follow-up",
        request=FollowUpChangeSerializer,
        responses={200: FollowUpSerializer, **errors(*WITH_BODY, 403, 404, *COMMON)},
    ),
    partial_update=extend_schema(
        summary="Change some of an open follow-up",
        request=FollowUpChangeSerializer,
        responses={200: FollowUpSerializer, **errors(*WITH_BODY, 403, 404, *COMMON)},
    ),
    destroy=extend_schema(
        summary="Cancel a follow-up (it stays on record as cancelled)",
        responses={204: OpenApiResponse(description="Cancelled"), **errors(400, 403, 404, *COMMON)},
    ),
)
class FollowUpViewSet(viewsets.GenericViewSet):
    """Follow-ups on leads the caller may see; every write goes through leads.follow_ups."""

    serializer_class = FollowUpSerializer
    pagination_class = FollowUpPagination
    filterset_class = FollowUpFilter
    lookup_value_regex = r"\d+"
    queryset = FollowUp.objects.none()  # for the schema; get_queryset() scopes every request

    def get_queryset(self):
        return selectors.visible_follow_ups(self.request.user).order_by("due_at", "id")

    def get_object(self):
        return selectors.get_visible_follow_up(self.request.user, self.kwargs["pk"])

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(FollowUpSerializer(page, many=True).data)

    def create(self, request):
        data = FollowUpInputSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        key = request.headers.get(IDEMPOTENCY_HEADER) or values.pop("idempotency_key", None)
        values.pop("idempotency_key", None)
        follow_up = follow_ups.schedule_follow_up(actor=request.user, idempotency_key=key, **values)
        created = getattr(follow_up, "just_created", True)
        headers = {"Location": request.build_absolute_uri(f"/api/follow-ups/{follow_up.pk}/")}
        return Response(
            FollowUpSerializer(follow_up).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers=headers,
        )

    def retrieve(self, request, pk=None):
        return Response(FollowUpSerializer(self.get_object()).data)

    def update(self, request, pk=None, partial=False):
        follow_up = self.get_object()
        data = FollowUpChangeSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        follow_up = follow_ups.reschedule_follow_up(
            follow_up=follow_up, actor=request.user, **data.validated_data
        )
        return Response(FollowUpSerializer(follow_up).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    def destroy(self, request, pk=None):
        follow_ups.cancel_follow_up(follow_up=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Mark a follow-up done, with how it went",
        request=CompleteInputSerializer,
        responses={200: FollowUpSerializer, **errors(*WITH_BODY, 403, 404, *COMMON)},
    )
    @action(detail=True, methods=["post"], url_path="complete")
    def complete(self, request, pk=None):
        follow_up = self.get_object()
        data = CompleteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        follow_up = follow_ups.complete_follow_up(
            follow_up=follow_up, actor=request.user, **data.validated_data
        )
        return Response(FollowUpSerializer(follow_up).data)
