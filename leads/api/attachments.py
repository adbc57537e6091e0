"""API for files on leads: list and upload, metadata, permission-checked download, soft delete."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from leads import attachments, selectors
from leads.api.idempotency import IdempotentPostMixin
from leads.api.pagination import PageLimitPagination
from leads.api.serializers import OwnerRefSerializer
from leads.api.views import COMMON, IDEMPOTENCY_PARAMETER, WITH_BODY, errors
from leads.attachment_views import file_response
from leads.models import Attachment


class AttachmentPagination(PageLimitPagination):
    results_key = "attachments"


class AttachmentSerializer(serializers.ModelSerializer):
    """A file's metadata; needs uploaded_by joined (selectors.lead_attachments does)."""

    uploaded_by = OwnerRefSerializer(allow_null=True, help_text="Null when it came from the public form.")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "uploaded_at", "uploaded_by", "download_url"]
        read_only_fields = fields

    def get_download_url(self, attachment) -> str:
        path = reverse("api:lead-attachment-download", args=[attachment.lead_id, attachment.pk])
        path = path if path.endswith("/") else f"{path}/"  # the route's slash is optional; show it
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class AttachmentUploadSerializer(serializers.Serializer):
    """Documents the multipart body; the file itself is checked by leads.attachments.validate_upload."""

    file = serializers.FileField(
        help_text=f"The file. {attachments.ACCEPTED} The extension must match the content."
    )


class JSONForErrorsNegotiation(BaseContentNegotiation):
    """A download answers with the file's own type whatever Accept says; errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _LeadAttachmentMixin:
    def get_lead(self):
        return selectors.get_visible_lead(self.request.user, self.kwargs["pk"])

    def get_attachment(self):
        return selectors.get_lead_attachment(self.get_lead(), self.kwargs["attachment_id"])


class LeadAttachmentsView(IdempotentPostMixin, _LeadAttachmentMixin, generics.GenericAPIView):
    serializer_class = AttachmentSerializer
    pagination_class = AttachmentPagination
    filter_backends = []

    def get_parsers(self):
        # Uploads are multipart only; a JSON body cannot carry a file (415 says so).
        if self.request is not None and self.request.method == "POST":
            return [MultiPartParser()]
        return super().get_parsers()

    @extend_schema(
        summary="A lead's files, newest first",
        responses={200: AttachmentSerializer(many=True), **errors(400, 404, *COMMON)},
    )
    def get(self, request, pk):
        page = self.paginate_queryset(selectors.lead_attachments(self.get_lead()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Attach a file to a lead (multipart, field `file`)",
        request={"multipart/form-data": AttachmentUploadSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: AttachmentSerializer, **errors(*WITH_BODY, 403, 404, 422, *COMMON)},
    )
    def post(self, request, pk):
        lead = self.get_lead()
        attachment = attachments.add_attachment(lead=lead, file=request.FILES.get("file"), actor=request.user)
        data = self.get_serializer(attachment).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["download_url"]})


class LeadAttachmentView(_LeadAttachmentMixin, generics.GenericAPIView):
    serializer_class = AttachmentSerializer

    @extend_schema(
        summary="One file's metadata, with its download URL",
        responses={200: AttachmentSerializer, **errors(404, *COMMON)},
    )
    def get(self, request, pk, attachment_id):
        return Response(self.get_serializer(self.get_attachment()).data)

    @extend_schema(
        summary="Delete a file (soft; managers, the uploader or the lead's owner)",
        responses={204: OpenApiResponse(description="Deleted"), **errors(403, 404, *COMMON)},
    )
    def delete(self, request, pk, attachment_id):
        attachments.delete_attachment(attachment=self.get_attachment(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeadAttachmentDownloadView(_LeadAttachmentMixin, generics.GenericAPIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONForErrorsNegotiation

    @extend_schema(
        summary="Download a file (Content-Disposition: attachment)",
        responses={
            **{
                (200, content_type): OpenApiResponse(
                    OpenApiTypes.BINARY, description="The file, in the type it was stored as."
                )
                for content_type in attachments.TYPE_LABELS
            },
            **errors(404, *COMMON),
        },
    )
    def get(self, request, pk, attachment_id):
        return file_response(self.get_attachment())
