"""Serializers of the REST API: the request fields, and the exact shape of
every response (drf-spectacular builds the OpenAPI schema from them, and the
schemathesis run checks the responses against that schema)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from diagnostics.access import labs_for
from diagnostics.models import (
    Analysis,
    Case,
    CaseStatus,
    ImageStatus,
    Lab,
    ModelVersion,
    SlideImage,
    Specimen,
)
from diagnostics.services.case_record import ImageRow
from marrowfind import textlimits
from marrowfind.middleware import unstorable_reason
from review.models import BAllSubtype, Diagnosis
from review.services import ImageReviewItem

# --------------------------------------------------------------------------- errors


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. not_found, invalid, throttled.")
    message = serializers.CharField(help_text="A sentence for a person.")
    details = serializers.JSONField(
        allow_null=True,
        help_text="null, or structured data: field errors for `invalid`, retry_after_s for `throttled`, "
        "the refused files for `no_usable_images`.",
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every API error (400-500)."""

    error = ErrorDetailSerializer()


# --------------------------------------------------------------------------- cases


def _absolute(request, name: str, **kwargs: Any) -> str:
    path = reverse(name, kwargs=kwargs)
    return request.build_absolute_uri(path) if request is not None else path


class CaseLinksSerializer(serializers.Serializer):
    self = serializers.URLField()
    images = serializers.URLField()
    progress = serializers.URLField()
    summary = serializers.URLField()
    report = serializers.URLField()


class CaseSerializer(serializers.ModelSerializer):
    lab = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    image_count = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = (
            "id",
            "lab",
            "accession_number",
            "patient_pseudonym",
            "specimen",
            "stain",
            "clinical_note",
            "status",
            "who_flag",
            "image_count",
            "created_at",
            "updated_at",
            "processing_started_at",
            "processing_finished_at",
            "signed_out_at",
            "sign_out_version",
            "links",
        )
        read_only_fields = fields

    def get_image_count(self, case: Case) -> int:
        annotated = getattr(case, "image_total", None)
        return annotated if annotated is not None else case.images.count()

    @extend_schema_field(CaseLinksSerializer)
    def get_links(self, case: Case) -> dict[str, str]:
        request = self.context.get("request")
        return {
            "self": _absolute(request, "api-case-detail", pk=case.pk),
            "images": _absolute(request, "api-case-images", pk=case.pk),
            "progress": _absolute(request, "api-case-progress", pk=case.pk),
            "summary": _absolute(request, "api-case-summary", pk=case.pk),
            "report": _absolute(request, "api-case-report", pk=case.pk),
        }


@extend_schema_field(OpenApiTypes.STR)
class LabChoiceField(serializers.SlugRelatedField):
    """A lab by its slug, among the caller's own labs only (another lab's slug
    is "not found", like any other object of another lab)."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "does_not_exist": "You are not a member of a lab {slug_name}={value}.",
        "invalid": "Invalid value.",
        "unstorable": "The lab {reason}.",
    }

    def to_internal_value(self, data):
        # Refused before the look-up: PostgreSQL cannot even compare text with a NUL in it (a 500).
        reason = unstorable_reason(str(data))
        if reason:
            self.fail("unstorable", reason=reason)
        return super().to_internal_value(data)

    def get_queryset(self):
        request = self.context.get("request")
        return labs_for(request.user) if request is not None else Lab.objects.none()


class UploadFilesField(serializers.ListField):
    """One or many files under the same multipart field name ``files``:
    JPEG/PNG/TIFF images or zip archives of them."""

    child = serializers.FileField(allow_empty_file=True, use_url=False)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_empty", False)
        kwargs.setdefault(
            "help_text",
            "Image files (JPEG, PNG, TIFF) or zip archives of them; repeat the field for several files. "
            "Each file is checked on its own: refused files are listed with their reason and the rest go on.",
        )
        super().__init__(**kwargs)


class CaseCreateSerializer(serializers.Serializer):
    """A new case with its first images (multipart/form-data), like the web upload page."""

    lab = LabChoiceField(
        slug_field="slug",
        required=False,
        help_text="Slug of the lab the case belongs to; may be left out by members of a single lab.",
    )
    accession_number = serializers.CharField(max_length=64, help_text="Unique within the lab.")
    patient_pseudonym = serializers.CharField(
        max_length=64,
        help_text="A pseudonymous patient id: never a name or a hospital number.",
    )
    specimen = serializers.ChoiceField(choices=Specimen.choices)
    stain = serializers.CharField(max_length=64, required=False, default="Wright-Giemsa")
    clinical_note = serializers.CharField(
        required=False, allow_blank=True, default="", validators=[textlimits.clinical_note],
        help_text=f"At most {textlimits.CLINICAL_NOTE_CHARS:,} characters.",
    )
    files = UploadFilesField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("lab") is None:
            request = self.context["request"]
            labs = list(labs_for(request.user)[:2])
            if len(labs) != 1:
                raise serializers.ValidationError({"lab": ["You are a member of several labs: name one (its slug)."]})
            attrs["lab"] = labs[0]
        return attrs

    def case_fields(self) -> dict[str, Any]:
        data = self.validated_data
        return {
            name: data[name]
            for name in (
                "accession_number",
                "patient_pseudonym",
                "specimen",
                "stain",
                "clinical_note",
            )
        }


class ImagesUploadSerializer(serializers.Serializer):
    """More images for an existing case (multipart/form-data)."""

    files = UploadFilesField()


# --------------------------------------------------------------------------- upload results


class AcceptedImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = SlideImage
        fields = (
            "id",
            "position",
            "original_filename",
            "sha256",
            "width",
            "height",
            "status",
        )
        read_only_fields = fields


class RejectedFileSerializer(serializers.Serializer):
    filename = serializers.CharField()
    code = serializers.CharField(help_text="Stable code of the failed check, e.g. duplicate, zip_bomb, truncated.")
    reason = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    accepted = AcceptedImageSerializer(many=True)
    rejected = RejectedFileSerializer(many=True)


class CaseCreatedSerializer(serializers.Serializer):
    case = CaseSerializer()
    batch = BatchResultSerializer()


def batch_result(result) -> dict[str, Any]:
    """The service's UploadResult as the API's BatchResult."""
    return {
        "id": result.batch.pk,
        "accepted": AcceptedImageSerializer(result.accepted, many=True).data,
        "rejected": [rejection.as_dict() for rejection in result.rejected],
    }


# --------------------------------------------------------------------------- progress and summary


class DraftReportStatusSerializer(serializers.Serializer):
    """A draft report rendering on the workers' cpu queue: poll ``status_url`` until it
    answers the PDF (200) or, when the render failed, the error ``draft_failed`` (409)."""

    report_id = serializers.UUIDField()
    version = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["rendering", "ready", "failed"])
    error = serializers.CharField(allow_blank=True, help_text="Why the render failed; empty otherwise.")
    status_url = serializers.URLField()


class ProgressStagesSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    classify = serializers.IntegerField()
    classified = serializers.IntegerField()
    segmentation = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()


class ProgressSerializer(serializers.Serializer):
    """``diagnostics.services.cases.case_progress``: done/total and images per stage."""

    case = serializers.IntegerField()
    accession_number = serializers.CharField()
    status = serializers.ChoiceField(choices=CaseStatus.choices)
    status_display = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    finished = serializers.IntegerField()
    remaining = serializers.IntegerField()
    percent = serializers.FloatField()
    stages = ProgressStagesSerializer()
    active = serializers.BooleanField(help_text="Images are still waiting or being analysed.")
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class SignedLabelSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    label = serializers.CharField(help_text="The signed label.")
    ai_label = serializers.CharField(help_text="The model's label of the same image.")
    comment = serializers.CharField(allow_blank=True, help_text="The reviewer's comment, as signed.")


class SignedResultSerializer(serializers.Serializer):
    """The newest signed version: once a case is signed out, this is the result."""

    version = serializers.IntegerField()
    signed_at = serializers.DateTimeField()
    signed_by = serializers.CharField(help_text="The signer's name as printed on the report.")
    signer_credentials = serializers.CharField(allow_blank=True, help_text='e.g. "MD, FRCPath".')
    diagnosis = serializers.ChoiceField(choices=Diagnosis.choices, allow_null=True,
                                        help_text="The interpretation; null on versions signed before it was asked for.")
    diagnosis_label = serializers.CharField(allow_null=True)
    diagnosis_subtype = serializers.ChoiceField(choices=BAllSubtype.choices, allow_null=True,
                                                help_text="With consistent_with_b_all only.")
    diagnosis_subtype_label = serializers.CharField(allow_null=True)
    further_studies = serializers.CharField(allow_blank=True, help_text="With suspicious only.")
    comment = serializers.CharField(allow_blank=True, help_text="The pathologist's free-text comment.")
    diagnosis_text = serializers.CharField(allow_blank=True, help_text='One line, e.g. "Consistent with B-ALL (Pro-B)".')
    per_class = serializers.DictField(child=serializers.IntegerField(), help_text="Images per signed label.")
    labels = serializers.DictField(child=SignedLabelSerializer(), help_text="Image id -> its signed label.")
    cells = serializers.IntegerField(allow_null=True)
    wbc = serializers.IntegerField(allow_null=True)
    rbc = serializers.IntegerField(allow_null=True)
    platelet = serializers.IntegerField(allow_null=True)
    blasts = serializers.IntegerField(allow_null=True, help_text="null: not determined.")
    blast_wbc = serializers.IntegerField(allow_null=True)
    blast_fraction = serializers.FloatField(allow_null=True)
    blast_percent = serializers.FloatField(allow_null=True, help_text="The signed blast %.")
    who_flag = serializers.BooleanField()
    differential = serializers.DictField(child=serializers.IntegerField(), help_text="Cells per type, when signed with one.")


class SummarySerializer(serializers.Serializer):
    """Case-level results (``diagnostics.services.case_record.case_figures``). Once the case is
    signed out, ``signed`` is the result and ``result`` is "signed"; the other figures are the
    AI's (the models' labels and counts), beside it."""

    result = serializers.ChoiceField(choices=[("signed", "signed"), ("ai", "ai")],
                                     help_text='"signed" once a version is signed (then `signed` is the result), else "ai".')
    signed = SignedResultSerializer(allow_null=True, help_text="The newest signed version; null before sign-out.")
    images = serializers.IntegerField()
    analysed = serializers.IntegerField()
    failed = serializers.IntegerField()
    per_class = serializers.DictField(child=serializers.IntegerField(), help_text="Images per AI (model) label.")
    binary = serializers.DictField(child=serializers.IntegerField(), help_text='Images per "ALL"/"normal".')
    low_confidence = serializers.IntegerField()
    cells = serializers.IntegerField()
    wbc = serializers.IntegerField()
    rbc = serializers.IntegerField()
    platelet = serializers.IntegerField()
    blasts = serializers.IntegerField(allow_null=True, help_text="null: not determined (no cell-level model).")
    blast_wbc = serializers.IntegerField(allow_null=True)
    blast_fraction = serializers.FloatField(allow_null=True)
    blast_percent = serializers.FloatField(allow_null=True)
    who_threshold = serializers.FloatField()
    who_threshold_percent = serializers.IntegerField()
    who_flag = serializers.BooleanField(help_text="Bone-marrow case at or above the WHO blast threshold (20%).")
    demo = serializers.BooleanField(help_text="Results come from a demo model: not for diagnosis.")


def summary_payload(figures: dict[str, Any]) -> dict[str, Any]:
    """Exactly the documented keys. A summary stored by an older pipeline may
    lack a key: a count then reads 0 and a mapping {}, never a wrong type."""
    payload: dict[str, Any] = {}
    figures = {**figures, "result": figures.get("result_source") or "ai", "signed": figures.get("signed_result")}
    for name, field in SummarySerializer().fields.items():
        value = figures.get(name)
        if value is None and not field.allow_null:
            if isinstance(field, serializers.DictField):
                value = {}
            elif isinstance(field, serializers.BooleanField):
                value = False
            else:
                value = 0
        payload[name] = value
    return payload


# --------------------------------------------------------------------------- models


class ModelVersionBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = (
            "id",
            "name",
            "task",
            "arch",
            "sha256",
            "is_demo",
        )
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    class_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    metrics = serializers.DictField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = (
            "id",
            "name",
            "task",
            "arch",
            "class_names",
            "sha256",
            "metrics",
            "is_active",
            "is_demo",
            "created_at",
        )
        read_only_fields = fields


# --------------------------------------------------------------------------- per-image results


class ImageFilesSerializer(serializers.Serializer):
    original = serializers.URLField()
    cam = serializers.URLField(allow_null=True)
    segmentation = serializers.URLField(allow_null=True)


class AnalysisSerializer(serializers.ModelSerializer):
    model_version = ModelVersionBriefSerializer(read_only=True)
    probabilities = serializers.DictField(child=serializers.FloatField(), read_only=True)
    cell_counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    timings = serializers.DictField(child=serializers.FloatField(), read_only=True)

    class Meta:
        model = Analysis
        fields = (
            "model_version",
            "label",
            "probabilities",
            "confidence",
            "low_confidence",
            "all_probability",
            "cell_counts",
            "blasts",
            "timings",
            "created_at",
        )
        read_only_fields = fields


class ReviewBriefSerializer(serializers.Serializer):
    label = serializers.CharField(allow_blank=True, help_text="Empty when the image was excluded.")
    exclusion = serializers.CharField(
        allow_blank=True,
        help_text="Why the reviewer excluded the image as not assessable (wrong_stain, out_of_focus, "
        "tissue_section, not_a_smear); empty for a label. An excluded image is left out of the case summary.",
    )
    agrees_with_ai = serializers.BooleanField()
    comment = serializers.CharField(allow_blank=True)
    reviewer = serializers.CharField(help_text="The reviewer's e-mail address.")
    created_at = serializers.DateTimeField()


class ImageResultSerializer(serializers.Serializer):
    """One image: its state, the newest analysis, the newest review, and file links."""

    id = serializers.IntegerField()
    position = serializers.IntegerField()
    original_filename = serializers.CharField()
    sha256 = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ImageStatus.choices)
    stage = serializers.CharField(allow_blank=True)
    error_code = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    analysis = AnalysisSerializer(allow_null=True)
    review = ReviewBriefSerializer(allow_null=True)
    current_label = serializers.CharField(
        allow_null=True,
        help_text="The newest review's label, else the model's label; null before analysis and for an excluded image.",
    )
    ai_label = serializers.CharField(allow_null=True, help_text="The model's label; null before analysis.")
    signed_label = serializers.CharField(
        allow_null=True,
        help_text="The label in the newest signed version (the result once signed out); null before sign-out.",
    )
    files = ImageFilesSerializer()


def image_result(item: ImageReviewItem, request, record_row: ImageRow | None = None) -> dict[str, Any]:
    """One image; ``record_row`` (its row of the case record) gives the signed label."""
    image, analysis, review = item.image, item.analysis, item.latest_review

    def file_url(kind: str, present: bool) -> str | None:
        if not present:
            return None
        return _absolute(request, "api-image-file", pk=image.case_id, image_pk=image.pk, kind=kind)

    return {
        "id": image.pk,
        "position": image.position,
        "original_filename": image.original_filename,
        "sha256": image.sha256,
        "width": image.width,
        "height": image.height,
        "status": image.status,
        "stage": image.stage,
        "error_code": image.error_code,
        "error": image.error,
        "analysis": AnalysisSerializer(analysis).data if analysis is not None else None,
        "review": (
            {
                "label": review.label,
                "exclusion": review.exclusion,
                "agrees_with_ai": review.agrees_with_ai,
                "comment": review.comment,
                "reviewer": review.reviewer.email,
                "created_at": serializers.DateTimeField().to_representation(review.created_at),
            }
            if review is not None
            else None
        ),
        "current_label": item.current_label,
        "ai_label": item.ai_label,
        "signed_label": record_row.signed_label if record_row is not None else None,
        "files": {
            "original": file_url("original", bool(image.file)),
            "cam": file_url("cam", analysis is not None and bool(analysis.cam_overlay)),
            "segmentation": file_url(
                "segmentation",
                analysis is not None and bool(analysis.segmentation_overlay),
            ),
        },
    }


# --------------------------------------------------------------------------- tokens and health


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(source="key", help_text='Send as "Authorization: Token <token>". Shown once.')
    created = serializers.DateTimeField()


class HealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    database = serializers.CharField()
