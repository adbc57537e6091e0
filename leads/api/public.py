"""POST /api/public/leads/: the public capture form as an endpoint (no auth; size, rate, honeypot)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, parsers, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from leads import capture_guard, intake
from leads.api.errors import error_body
from leads.api.serializers import ErrorSerializer
from leads.api.views import errors
from leads.attachments import ACCEPTED
from leads.normalization import normalize_email, normalize_phone

RECEIVED = {"status": "received"}


class PublicLeadInputSerializer(serializers.Serializer):
    """What a prospect sends: the capture form's fields. `website` must stay empty (a bot trap)."""

    first_name = serializers.CharField(max_length=intake.MAX_LENGTHS["first_name"])
    last_name = serializers.CharField(
        max_length=intake.MAX_LENGTHS["last_name"], required=False, allow_blank=True, default=""
    )
    email = serializers.CharField(max_length=intake.MAX_LENGTHS["email"])
    phone = serializers.CharField(
        max_length=intake.MAX_LENGTHS["phone"], required=False, allow_blank=True, default=""
    )
    company = serializers.CharField(
        max_length=intake.MAX_LENGTHS["company"], required=False, allow_blank=True, default=""
    )
    message = serializers.CharField(
        max_length=intake.MAX_LENGTHS["message"], required=False, allow_blank=True, default=""
    )
    consent = serializers.BooleanField(
        help_text="Must be true: the prospect agrees that their details are stored and used to contact them."
    )
    resume = serializers.FileField(
        required=False,
        allow_null=True,
        help_text=f"Optional resume/CV (multipart/form-data only). {ACCEPTED}",
    )
    website = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=500,
        help_text="Leave empty. Filled in, the submission is answered as received and discarded.",
    )

    # The service checks these too; here they are reported together with every other field's error.
    def validate_email(self, value):
        return _as_field_error(normalize_email, value)

    def validate_phone(self, value):
        return _as_field_error(normalize_phone, value)

    def validate_consent(self, value):
        if not value:
            raise serializers.ValidationError(intake.CONSENT_REQUIRED)
        return value


def _as_field_error(normalize, value):
    try:
        return normalize(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class PublicLeadReceivedSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["received"])


def _too_large_response():
    message = capture_guard.too_large_message()
    return Response(error_body("too_large", message, {"resume": [message]}), status=413)


class PublicLeadCreateView(APIView):
    """A prospect's details from a website: makes a lead, or adds to theirs when they are already one."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    # The form's own per-IP limit (PUBLIC_FORM_RATE), shared with /apply/, replaces the API's.
    throttle_classes = []
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser]

    @extend_schema(
        summary="Submit a prospect's details (public, no authentication)",
        description=(
            "The website's contact form as an endpoint. The answer is the same `202 "
            '{"status": "received"}` whether the details made a new lead or were added to an '
            "existing one, so it reveals nothing about who is already a lead. Limited per IP "
            "address (PUBLIC_FORM_RATE, 10 an hour by default); a body larger than the attachment "
            "limit plus 1 MB is refused with 413 before it is read. Send JSON, or multipart/form-data "
            "to include a resume."
        ),
        auth=[],
        request={
            "application/json": PublicLeadInputSerializer,
            "multipart/form-data": PublicLeadInputSerializer,
            "application/x-www-form-urlencoded": PublicLeadInputSerializer,
        },
        responses={
            202: PublicLeadReceivedSerializer,
            413: OpenApiResponse(ErrorSerializer, description="The body is too large; nothing was read."),
            **errors(400, 415, 429),
        },
        examples=[
            OpenApiExample(
                "A prospect",
                request_only=True,
                value={
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "email": "ada@example.com",
                    "phone": "+44 20 7946 0018",
                    "company": "Analytical Engines",
                    "message": "We would like a demo.",
                    "consent": True,
                },
            )
        ],
    )
    def post(self, request):
        # Before request.data: parsing reads the whole body, which is what this check avoids.
        if capture_guard.body_too_large(request):
            return _too_large_response()
        retry_after = capture_guard.take_submission_slot(request)
        if retry_after is not None:
            wait = capture_guard.wait_text(retry_after)
            raise exceptions.Throttled(
                wait=retry_after, detail=f"Too many submissions from your address; try again in {wait}."
            )
        data = PublicLeadInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if values.pop("website", "").strip():
            return Response(RECEIVED, status=status.HTTP_202_ACCEPTED)
        intake.capture_lead(**values, ip=capture_guard.client_ip(request))
        return Response(RECEIVED, status=status.HTTP_202_ACCEPTED)
