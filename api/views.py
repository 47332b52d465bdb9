"""REST API views for lab information systems.

Thin over the services, as the web pages are:

* uploads go through ``diagnostics.services.upload`` (every file check of the
  web upload page, the same all-or-nothing case creation);
* progress and summary come from ``diagnostics.services.cases`` and
  ``review.services``;
* reports from ``reports.services``.

Lab isolation: every object is looked up through ``diagnostics.access``, so
another lab's case, image or report is "not found" (404), exactly as on the
web pages. Errors have one shape (``api.exceptions``).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from api import serializers as s
from api.exceptions import ApiError
from api.permissions import CanUploadToCase, IsLabMember
from api.throttling import (
    ApiAnonThrottle,
    ApiTokenThrottle,
    ApiUploadThrottle,
    ApiUserThrottle,
)
from apitokens import services as api_tokens
from diagnostics import access, audit
from diagnostics.models import AuditEvent, Case, CaseStatus, ModelVersion
from diagnostics.services import cases as case_service
from diagnostics.services import upload as upload_service
from diagnostics.services.case_record import build_case_record, case_figures
from diagnostics.views import protected_media
from reports import services as report_service
from reports.models import Report, ReportStatus
from review import services as review_service

logger = logging.getLogger("marrowfind.api")

MAX_DB_ID = 2**63 - 1  # BigAutoField


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error responses of an operation, all with the one error shape."""
    text = {
        400: "Invalid request (`invalid`, `parse_error`, or an operation-specific code).",
        401: "No or bad credentials (`not_authenticated`, `authentication_failed`).",
        403: "Authenticated, but not allowed (`no_lab`, `permission_denied`).",
        404: "No such object in your labs (`not_found`): another lab's objects are never revealed.",
        405: "Method not allowed.",
        406: "Not acceptable (check the Accept header).",
        409: "Conflicts with the current state (`duplicate_accession`, `case_closed`, `draft_failed`).",
        413: "The request is too large (`payload_too_large`).",
        415: "Unsupported media type: send multipart/form-data.",
        429: "Rate limit reached (`throttled`); see Retry-After.",
        503: "A service the site needs is down (`unavailable`).",
    }
    return {code: OpenApiResponse(s.ErrorSerializer, description=text[code]) for code in codes}


READ_ERRORS = (401, 403, 404, 406, 429)
WRITE_ERRORS = (400, 401, 403, 404, 406, 409, 413, 415, 429)


class PdfRenderer(BaseRenderer):
    """Lets ``Accept: application/pdf`` through content negotiation; the report
    view answers with the PDF bytes itself."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class JsonErrorsMixin:
    """Errors are always rendered as JSON, even when the client asked for a
    type (the report's PDF, the schema's YAML) that an error cannot be."""

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and getattr(response, "exception", False):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class ApiView(JsonErrorsMixin, GenericAPIView):
    """Defaults of every API view: JSON only, lab members only, throttled."""

    renderer_classes = (JSONRenderer,)
    permission_classes = (IsLabMember,)
    throttle_classes = (ApiAnonThrottle, ApiUserThrottle)

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        # Ids come from <int:...> converters, which accept any number of digits;
        # one beyond a 64-bit column is no object (SQLite would overflow).
        if any(isinstance(value, int) and not 0 < value <= MAX_DB_ID for value in kwargs.values()):
            raise Http404("No such object")

    def get_case(self) -> Case:
        return access.get_case_or_404(self.request.user, self.kwargs["pk"])


# --------------------------------------------------------------------------- schema, health and tokens


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    """The OpenAPI 3 schema (YAML; ``?format=json`` for JSON). Public: it
    describes the API, not any lab's data."""

    throttle_classes = (ApiAnonThrottle, ApiUserThrottle)


class DocsView(JsonErrorsMixin, SpectacularSwaggerSplitView):
    """Swagger UI for the schema, from drf-spectacular-sidecar's self-hosted files."""

    throttle_classes = (ApiAnonThrottle, ApiUserThrottle)


class HealthView(ApiView):
    """Liveness for load balancers and compose healthchecks: the process
    answers and the database accepts a query. Public, never throttled."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()
    serializer_class = s.HealthSerializer

    @extend_schema(
        operation_id="health",
        auth=[],
        responses={200: s.HealthSerializer, **error_responses(503)},
        tags=["service"],
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as exc:
            logger.warning("health check: database unavailable: %s", exc)
            raise ApiError("The database is unavailable.", code="unavailable", status_code=503) from None
        return Response({"status": "ok", "database": "ok"})


class TokenView(ApiView):
    """Your API token. POST issues a new one and revokes the old one (rotation);
    DELETE revokes it. Sign in on the site and call this with the session (and
    its CSRF token), or call it with the current token to rotate it."""

    permission_classes = (IsAuthenticated,)
    throttle_classes = (ApiAnonThrottle, ApiUserThrottle, ApiTokenThrottle)
    serializer_class = s.TokenSerializer

    @extend_schema(
        operation_id="token_rotate",
        request=None,
        responses={201: s.TokenSerializer, **error_responses(401, 403, 406, 429)},
        tags=["auth"],
    )
    def post(self, request):
        token = api_tokens.issue(request.user)
        audit.record(AuditEvent.Verb.OTHER, actor=request.user, action="api_token_issued")
        return Response(
            s.TokenSerializer(token, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        operation_id="token_revoke",
        request=None,
        responses={204: None, **error_responses(401, 403, 406, 429)},
        tags=["auth"],
    )
    def delete(self, request):
        if api_tokens.revoke(request.user):
            audit.record(AuditEvent.Verb.OTHER, actor=request.user, action="api_token_revoked")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- model versions


class ModelVersionListView(ApiView):
    """The registered model versions, newest first; `is_active` marks the one the workers use, `is_demo` a
    model trained on synthetic data (not for diagnosis)."""

    serializer_class = s.ModelVersionSerializer

    def get_queryset(self):
        return ModelVersion.objects.order_by("-created_at", "-id")

    @extend_schema(
        operation_id="models_list",
        responses={
            200: s.ModelVersionSerializer(many=True),
            **error_responses(*READ_ERRORS),
        },
        tags=["models"],
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


# --------------------------------------------------------------------------- cases


def _upload_error(exc: upload_service.UploadError) -> ApiError:
    if isinstance(exc, upload_service.DuplicateAccessionError):
        return ApiError(str(exc), code="duplicate_accession", status_code=status.HTTP_409_CONFLICT)
    if isinstance(exc, upload_service.CaseClosedError):
        return ApiError(str(exc), code="case_closed", status_code=status.HTTP_409_CONFLICT)
    if isinstance(exc, upload_service.NoUsableImagesError):
        return ApiError(
            str(exc),
            code="no_usable_images",
            details={"rejected": [r.as_dict() for r in exc.rejected]},
        )
    return ApiError(str(exc), code="upload_refused")


class CaseListView(ApiView):
    """Your labs' cases, newest first (GET), and a new case with its first images (POST)."""

    serializer_class = s.CaseSerializer
    parser_classes = (MultiPartParser,)
    throttle_classes = (ApiAnonThrottle, ApiUserThrottle, ApiUploadThrottle)

    def get_queryset(self):
        cases = access.cases_for(self.request.user).select_related("lab").annotate(image_total=Count("images"))
        params = self.request.query_params
        if params.get("accession_number"):
            cases = cases.filter(accession_number=params["accession_number"].strip())
        if params.get("status"):
            if params["status"] not in CaseStatus.values:
                raise ApiError(
                    "Unknown case status.",
                    code="invalid",
                    details={"status": [f"Choose from {', '.join(CaseStatus.values)}."]},
                )
            cases = cases.filter(status=params["status"])
        if params.get("lab"):
            cases = cases.filter(lab__slug=params["lab"])
        return cases.order_by("-created_at", "-id")

    @extend_schema(
        operation_id="cases_list",
        parameters=[
            OpenApiParameter(
                "accession_number",
                str,
                description="Only the case with this accession number.",
            ),
            OpenApiParameter(
                "status",
                str,
                enum=CaseStatus.values,
                description="Only cases in this state.",
            ),
            OpenApiParameter("lab", str, description="Only cases of this lab (slug)."),
        ],
        responses={
            200: s.CaseSerializer(many=True),
            **error_responses(400, *READ_ERRORS),
        },
        tags=["cases"],
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        operation_id="cases_create",
        request={"multipart/form-data": s.CaseCreateSerializer},
        responses={201: s.CaseCreatedSerializer, **error_responses(*WRITE_ERRORS)},
        description=(
            "Create a case with its first images, as the web upload page does: the case fields plus one or "
            "many files (`files`, repeated), images or zip archives. Each file is checked; refused files are "
            "listed in `batch.rejected` with their reason and the rest go on. The analysis is queued when "
            "the request commits; poll `links.progress`. If no file can be used, nothing is created "
            "(400 `no_usable_images`, with each file's reason in `details.rejected`)."
        ),
        tags=["cases"],
    )
    def post(self, request):
        serializer = s.CaseCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        try:
            result = upload_service.create_case(
                lab=serializer.validated_data["lab"],
                user=request.user,
                fields=serializer.case_fields(),
                files=serializer.validated_data["files"],
            )
        except upload_service.UploadError as exc:
            raise _upload_error(exc) from None
        case = Case.objects.select_related("lab").annotate(image_total=Count("images")).get(pk=result.case.pk)
        body = {
            "case": s.CaseSerializer(case, context={"request": request}).data,
            "batch": s.batch_result(result),
        }
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Location": request.build_absolute_uri(reverse("api-case-detail", kwargs={"pk": case.pk}))},
        )


class CaseDetailView(ApiView):
    """One case: its fields, status and links to its images, progress, summary and report."""

    serializer_class = s.CaseSerializer

    @extend_schema(
        operation_id="cases_retrieve",
        responses={200: s.CaseSerializer, **error_responses(*READ_ERRORS)},
        tags=["cases"],
    )
    def get(self, request, pk: int):
        case = self.get_case()
        return Response(self.get_serializer(case).data)


class CaseImagesView(ApiView):
    """The images of a case with their results (GET), and more images for it (POST)."""

    serializer_class = s.ImageResultSerializer
    parser_classes = (MultiPartParser,)
    permission_classes = (IsLabMember, CanUploadToCase)
    throttle_classes = (ApiAnonThrottle, ApiUserThrottle, ApiUploadThrottle)

    @extend_schema(
        operation_id="cases_images_list",
        responses={
            200: s.ImageResultSerializer(many=True),
            **error_responses(*READ_ERRORS),
        },
        description="Every image of the case with its status, newest analysis, newest review and file links.",
        tags=["images"],
    )
    def get(self, request, pk: int):
        case = self.get_case()
        items = self.paginate_queryset(review_service.review_items(case))
        rows = {row.image_id: row for row in build_case_record(case).images}
        return self.get_paginated_response([s.image_result(item, request, rows.get(item.image.pk)) for item in items])

    @extend_schema(
        operation_id="cases_images_upload",
        request={"multipart/form-data": s.ImagesUploadSerializer},
        responses={201: s.BatchResultSerializer, **error_responses(*WRITE_ERRORS)},
        description=(
            "Add images (or zip archives) to a case; the same checks as the web page. Refused files are listed "
            "with their reason. When no file can be used the batch is still recorded, and the answer is 400 "
            "`no_usable_images` with `details.batch` and `details.rejected`."
        ),
        tags=["images"],
    )
    def post(self, request, pk: int):
        case = self.get_case()
        self.check_object_permissions(request, case)
        serializer = s.ImagesUploadSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        try:
            result = upload_service.add_images(case=case, user=request.user, files=serializer.validated_data["files"])
        except upload_service.UploadError as exc:
            raise _upload_error(exc) from None
        body = s.batch_result(result)
        if not result.accepted:
            raise ApiError(
                "None of the files could be used.",
                code="no_usable_images",
                details={"batch": result.batch.pk, "rejected": body["rejected"]},
            )
        return Response(body, status=status.HTTP_201_CREATED)


def _image_item(request, pk: int, image_pk: int) -> review_service.ImageReviewItem:
    image = access.images_for(request.user).select_related("case").filter(case_id=pk, pk=image_pk).first()
    if image is None:
        raise Http404("No such image")
    reviews = list(image.reviews.select_related("reviewer").order_by("-created_at", "-id"))
    return review_service.ImageReviewItem(image=image, analysis=review_service.latest_analysis(image), reviews=reviews)


class ImageDetailView(ApiView):
    """One image: status, the newest analysis (label, probabilities, low-confidence flag, cell counts, blasts),
    the newest review, and links to the original and the CAM and segmentation overlays."""

    serializer_class = s.ImageResultSerializer

    @extend_schema(
        operation_id="cases_images_retrieve",
        responses={200: s.ImageResultSerializer, **error_responses(*READ_ERRORS)},
        tags=["images"],
    )
    def get(self, request, pk: int, image_pk: int):
        item = _image_item(request, pk, image_pk)
        row = next((r for r in build_case_record(item.image.case).images if r.image_id == item.image.pk), None)
        return Response(s.image_result(item, request, row))


class BinaryRenderer(BaseRenderer):
    """Lets any ``Accept`` through for file downloads; the view answers with the file itself."""

    media_type = "*/*"
    format = "file"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ImageFileView(ApiView):
    """The original image or an overlay (PNG), served by the site's protected
    media view after the same lab check: with ``MEDIA_SERVE_MODE=nginx`` the
    bytes come from nginx (X-Accel-Redirect)."""

    renderer_classes = (JSONRenderer, BinaryRenderer)
    # No HEAD: the protected media view answers GET only, and its 405 would not be JSON.
    http_method_names = ("get", "options")
    KINDS = ("original", "cam", "segmentation")

    @extend_schema(
        operation_id="cases_images_file",
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(KINDS))],
        responses={
            (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The file."),
            **error_responses(*READ_ERRORS),
        },
        tags=["images"],
    )
    def get(self, request, pk: int, image_pk: int, kind: str):
        if kind not in self.KINDS:
            raise Http404("No such file")
        item = _image_item(request, pk, image_pk)
        if kind == "original":
            fieldfile = item.image.file
        else:
            fieldfile = getattr(item.analysis, f"{kind}_overlay", None) if item.analysis is not None else None
        if not fieldfile:
            raise Http404("No such file")
        # DRF has set the authenticated (token or session) user on the Django
        # request, so the protected media view sees the same user and applies
        # its own lab check on top of ours.
        return protected_media(request._request, name=fieldfile.name)


class CaseProgressView(ApiView):
    """Done/total and images per pipeline stage; poll it while `active` is true."""

    serializer_class = s.ProgressSerializer

    @extend_schema(
        operation_id="cases_progress",
        responses={200: s.ProgressSerializer, **error_responses(*READ_ERRORS)},
        tags=["cases"],
    )
    def get(self, request, pk: int):
        return Response(case_service.case_progress(self.get_case()))


class CaseSummaryView(ApiView):
    """Case-level results: the signed result once signed out (`signed`: diagnosis, signed labels and blast %),
    and beside it the AI's: images per class, cell counts, blasts where determined, and the WHO flag."""

    serializer_class = s.SummarySerializer

    @extend_schema(
        operation_id="cases_summary",
        responses={200: s.SummarySerializer, **error_responses(*READ_ERRORS)},
        tags=["cases"],
    )
    def get(self, request, pk: int):
        return Response(s.summary_payload(case_figures(self.get_case())))


def _pdf_response(report, *, status_code: int = 200) -> HttpResponse:
    response = HttpResponse(bytes(report.pdf), content_type="application/pdf", status=status_code)
    response["Content-Disposition"] = f'attachment; filename="{report_service.download_filename(report)}"'
    response["X-Report-Id"] = str(report.pk)
    response["X-Report-Version"] = str(report.version)
    response["X-Report-Status"] = str(report.status)
    response["X-Report-SHA256"] = report.sha256
    response["Cache-Control"] = "private, no-store"
    return response


def report_headers(status_code: int) -> list[OpenApiParameter]:
    """The response headers of a PDF answer, for the schema."""
    return [
        OpenApiParameter(name, str, OpenApiParameter.HEADER, response=[status_code], description=text)
        for name, text in (
            ("X-Report-Id", "The report's id (its QR code verifies it)."),
            ("X-Report-Version", "The sign-out version the report belongs to."),
            ("X-Report-Status", "final, or draft."),
            ("X-Report-SHA256", "SHA-256 of the PDF bytes, as recorded by the site."),
        )
    ]


class CaseReportView(ApiView):
    """The case's current report: the final report of its newest sign-out, as
    a PDF. 404 `no_report` until the case is signed out and the report is
    rendered (a few seconds after sign-out); a draft is available from
    `POST .../report/draft/` at any time."""

    renderer_classes = (JSONRenderer, PdfRenderer)

    @extend_schema(
        operation_id="cases_report",
        parameters=report_headers(200),
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The final report (PDF)."),
            **error_responses(*READ_ERRORS),
        },
        tags=["reports"],
    )
    def get(self, request, pk: int):
        case = self.get_case()
        report = report_service.reports_of(case).filter(status=ReportStatus.FINAL).first()
        if report is None:
            raise ApiError(
                "This case has no final report yet: it is made when the case is signed out.",
                code="no_report",
                status_code=status.HTTP_404_NOT_FOUND,
                details={"case_status": case.status},
            )
        report_service.record_download(report, request.user)
        return _pdf_response(report)


def _draft_status_response(request, draft, *, status_code: int) -> Response:
    """The draft's state as JSON (also to a client that asked for the PDF: there is none yet)."""
    url = request.build_absolute_uri(reverse("api-case-report-draft-status", args=[draft.case_id, draft.pk]))
    request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
    data = {"report_id": draft.pk, "version": draft.version, "state": draft.render_state,
            "error": draft.render_error, "status_url": url}
    return Response(s.DraftReportStatusSerializer(data).data, status=status_code, headers={"Location": url})


def _ready_draft_response(request, draft, *, status_code: int) -> HttpResponse:
    report = Report.objects.select_related("case").get(pk=draft.pk)
    report_service.record_download(report, request.user)
    return _pdf_response(report, status_code=status_code)


class CaseDraftReportView(ApiView):
    """Ask for a draft report of the case (watermarked "draft, not signed out"),
    for reading before sign-out. It is rendered by a worker (cpu queue): when it
    is ready within a moment, the answer is the PDF (201); otherwise 202 with the
    draft's `status_url` to poll. A request while a draft of the case is
    rendering joins that draft."""

    renderer_classes = (JSONRenderer, PdfRenderer)
    throttle_classes = (ApiAnonThrottle, ApiUserThrottle, ApiUploadThrottle)

    @extend_schema(
        operation_id="cases_report_draft",
        request=None,
        parameters=report_headers(201),
        responses={
            (201, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The draft report (PDF)."),
            202: OpenApiResponse(s.DraftReportStatusSerializer, description="Still rendering: poll `status_url`."),
            **error_responses(*READ_ERRORS),
        },
        tags=["reports"],
    )
    def post(self, request, pk: int):
        case = self.get_case()
        draft = report_service.wait_for_draft(report_service.request_draft_report(case, request.user))
        if draft.is_ready:
            return _ready_draft_response(request, draft, status_code=status.HTTP_201_CREATED)
        return _draft_status_response(request, draft, status_code=status.HTTP_202_ACCEPTED)


class CaseDraftReportStatusView(ApiView):
    """A draft report asked for with `POST .../report/draft/`: the PDF once it is
    rendered (200), 202 with its state while it renders, 409 `draft_failed` with
    the reason when the render failed."""

    renderer_classes = (JSONRenderer, PdfRenderer)

    @extend_schema(
        operation_id="cases_report_draft_status",
        parameters=report_headers(200),
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The draft report (PDF)."),
            202: OpenApiResponse(s.DraftReportStatusSerializer, description="Still rendering: ask again."),
            **error_responses(409, *READ_ERRORS),
        },
        tags=["reports"],
    )
    def get(self, request, pk: int, report_id):
        case = self.get_case()
        try:
            draft = report_service.draft_of(case, report_id)
        except Report.DoesNotExist:
            raise Http404("No such draft report") from None
        if draft.is_ready:
            return _ready_draft_response(request, draft, status_code=status.HTTP_200_OK)
        if draft.render_state == "failed":
            raise ApiError(
                f"The draft report could not be made: {draft.render_error} Ask for a new one.",
                code="draft_failed",
                status_code=status.HTTP_409_CONFLICT,
                details={"report_id": str(draft.pk), "error": draft.render_error},
            )
        return _draft_status_response(request, draft, status_code=status.HTTP_202_ACCEPTED)