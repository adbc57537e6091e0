"""/api/imports/: upload a CSV, map and preview it, start, watch, cancel and revert it, its error report."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from leads import imports, selectors
from leads.api.attachments import JSONForErrorsNegotiation
from leads.api.pagination import PageLimitPagination
from leads.api.serializers import OwnerRefSerializer
from leads.api.views import COMMON, WITH_BODY, errors
from leads.import_views import PREVIEW_ROWS, error_report_response
from leads.models import ImportJob


class ImportPagination(PageLimitPagination):
    results_key = "imports"


class ProgressSerializer(serializers.Serializer):
    """How far an import got (imports.job_progress)."""

    status = serializers.ChoiceField(choices=ImportJob.Status.choices)
    status_label = serializers.CharField()
    total_rows = serializers.IntegerField(allow_null=True, help_text="Null until the file has been counted.")
    rows_done = serializers.IntegerField()
    percent = serializers.FloatField()
    rate_per_second = serializers.FloatField(allow_null=True)
    seconds_left = serializers.FloatField(allow_null=True)
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    skipped = serializers.IntegerField()
    failed = serializers.IntegerField()
    finished = serializers.BooleanField()


class PreviewRowSerializer(serializers.Serializer):
    """What the import would do with one row, under the job's current mapping."""

    line = serializers.IntegerField(help_text="The row's line in the file (the header is line 1).")
    cells = serializers.ListField(child=serializers.CharField(allow_blank=True), help_text="The row as read.")
    values = serializers.DictField(help_text="Lead field → the cleaned value the import would write.")
    errors = serializers.ListField(child=serializers.CharField(), help_text="Why the row would fail.")
    action = serializers.ChoiceField(choices=["create", "update", "skip", "fail"])
    existing_id = serializers.IntegerField(allow_null=True, help_text="The lead the row matches, if any.")


class ImportJobSerializer(serializers.ModelSerializer):
    """An import as the API shows it. Needs created_by joined (the selector does)."""

    created_by = OwnerRefSerializer()
    status_label = serializers.CharField(source="get_status_display")
    mapping = serializers.DictField(
        child=serializers.ChoiceField(choices=imports.IMPORT_FIELDS),
        help_text='{"<column index>": "<lead field>"}; unmapped columns are ignored.',
    )
    defaults = serializers.DictField(help_text='{"source": id, "stage": id, "owner": id}, each optional.')
    available_fields = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    errors_url = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "filename",
            "size",
            "status",
            "status_label",
            "created_by",
            "created_at",
            "encoding",
            "delimiter",
            "headers",
            "mapping",
            "defaults",
            "duplicate_mode",
            "available_fields",
            "total_rows",
            "rows_done",
            "created_count",
            "updated_count",
            "skipped_count",
            "failed_count",
            "started_at",
            "finished_at",
            "error",
            "reverted_at",
            "progress",
            "errors_url",
        ]
        read_only_fields = fields

    def get_available_fields(self, job) -> list[str]:
        """The lead fields a column may map to."""
        return list(imports.IMPORT_FIELDS)

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, job):
        return imports.job_progress(job)

    def get_errors_url(self, job) -> str:
        path = f"/api/imports/{job.pk}/errors/"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class ImportJobWithPreviewSerializer(ImportJobSerializer):
    """The job plus what the import would do with its first rows (context["preview"])."""

    preview = serializers.SerializerMethodField()

    class Meta(ImportJobSerializer.Meta):
        fields = [*ImportJobSerializer.Meta.fields, "preview"]
        read_only_fields = fields

    @extend_schema_field(PreviewRowSerializer(many=True))
    def get_preview(self, job):
        return PreviewRowSerializer(self.context.get("preview") or [], many=True).data


class ImportUploadSerializer(serializers.Serializer):
    """Documents the multipart body; imports.start_upload checks the file itself."""

    file = serializers.FileField(
        help_text="A CSV file (comma, semicolon or tab separated; UTF-8, UTF-16, Latin-1) with a header row."
    )


class ImportChangeSerializer(serializers.Serializer):
    """What PATCH accepts; what is left out keeps its current value."""

    mapping = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text=f'{{"<column index>": "<lead field>"}}; fields: {", ".join(imports.IMPORT_FIELDS)}.',
    )
    defaults = serializers.DictField(
        child=serializers.IntegerField(allow_null=True, min_value=1),
        required=False,
        help_text='Ids for rows without a known value: {"source": id, "stage": id, "owner": id (managers)}.',
    )
    duplicate_mode = serializers.ChoiceField(choices=ImportJob.DuplicateMode.choices, required=False)


@extend_schema_view(
    list=extend_schema(
        summary="Imports you can see (managers: everyone's), newest first",
        responses={200: ImportJobSerializer(many=True), **errors(400, *COMMON)},
    ),
    retrieve=extend_schema(
        summary="One import, with its progress",
        responses={200: ImportJobSerializer, **errors(404, *COMMON)},
    ),
)
class ImportViewSet(viewsets.GenericViewSet):
    """CSV imports; every write goes through leads.imports, every read through the selectors."""

    serializer_class = ImportJobSerializer
    pagination_class = ImportPagination
    filter_backends = []
    lookup_value_regex = r"\d+"
    queryset = ImportJob.objects.none()  # for the schema; get_queryset() scopes every request

    def get_parsers(self):
        # An upload is multipart only; a JSON body cannot carry a file (415 says so).
        # (self.action is not set yet when DRF asks; the upload is the only POST without an id.)
        if self.request is not None and self.request.method == "POST" and "pk" not in self.kwargs:
            return [MultiPartParser()]
        return super().get_parsers()

    def get_queryset(self):
        return selectors.visible_imports(self.request.user).select_related("created_by")

    def get_object(self):
        return selectors.get_visible_import(self.request.user, self.kwargs["pk"])

    def _with_preview(self, job, status_code=status.HTTP_200_OK, **extra):
        rows = imports.preview(job, limit=PREVIEW_ROWS)
        context = {"request": self.request, "preview": rows}
        return Response(
            ImportJobWithPreviewSerializer(job, context=context).data, status=status_code, **extra
        )

    def _job(self, job, status_code=status.HTTP_200_OK):
        return Response(ImportJobSerializer(job, context={"request": self.request}).data, status=status_code)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            ImportJobSerializer(page, many=True, context={"request": request}).data
        )

    @extend_schema(
        summary="Upload a CSV (multipart, field `file`): the job with headers, suggested mapping and preview",
        request={"multipart/form-data": ImportUploadSerializer},
        responses={201: ImportJobWithPreviewSerializer, **errors(*WITH_BODY, 403, *COMMON)},
    )
    def create(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise serializers.ValidationError({"file": ["Send the CSV file as the multipart field `file`."]})
        job = imports.start_upload(actor=request.user, file=upload)
        headers = {"Location": request.build_absolute_uri(f"/api/imports/{job.pk}/")}
        return self._with_preview(job, status.HTTP_201_CREATED, headers=headers)

    def retrieve(self, request, pk=None):
        return self._job(self.get_object())

    @extend_schema(
        summary="Change the mapping, defaults or duplicate handling; answers with the new preview",
        request=ImportChangeSerializer,
        responses={200: ImportJobWithPreviewSerializer, **errors(*WITH_BODY, 403, 404, *COMMON)},
    )
    def partial_update(self, request, pk=None):
        job = self.get_object()
        data = ImportChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        job = imports.configure_import(
            job=job,
            actor=request.user,
            mapping={key: field for key, field in values.get("mapping", job.mapping).items() if field},
            defaults={
                key: value for key, value in values.get("defaults", job.defaults).items() if value is not None
            },
            duplicate_mode=values.get("duplicate_mode", job.duplicate_mode),
        )
        return self._with_preview(job)

    @extend_schema(
        summary="Start the import in the background (202); poll GET /api/imports/{id}/ for progress",
        request=None,
        responses={202: ImportJobSerializer, **errors(400, 403, 404, *COMMON)},
    )
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        job = imports.queue_import(job=self.get_object(), actor=request.user)
        job.refresh_from_db()  # the in-process backend may have run it already
        return self._job(job, status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel an import (a running one stops after its current batch)",
        request=None,
        responses={200: ImportJobSerializer, **errors(400, 403, 404, *COMMON)},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = imports.cancel_import(job=self.get_object(), actor=request.user)
        return self._job(job)

    @extend_schema(
        summary="Revert a finished import (managers, within IMPORT_REVERT_DAYS)",
        request=None,
        responses={200: ImportJobSerializer, **errors(400, 403, 404, *COMMON)},
    )
    @action(detail=True, methods=["post"])
    def revert(self, request, pk=None):
        job = imports.revert_import(job=self.get_object(), actor=request.user)
        return self._job(job)

    @extend_schema(
        summary="The error report: each refused row as it was in the file, plus its line and reason",
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.BINARY, description="CSV (UTF-8 with BOM): the file's headers + line, reason."
            ),
            **errors(404, *COMMON),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="errors",
        url_name="errors",
        renderer_classes=[JSONRenderer],
        content_negotiation_class=JSONForErrorsNegotiation,
    )
    def error_report(self, request, pk=None):
        return error_report_response(request, self.get_object())
