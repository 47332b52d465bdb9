"""The data model: labs and their members, cases, images, analyses, reviews,
reports and the audit trail.

Every row a lab user can reach hangs off a ``Lab``; queries go through
``diagnostics.access`` which scopes them to the user's memberships.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Lab(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    TECHNICIAN = "technician", "Technician"
    PATHOLOGIST = "pathologist", "Pathologist"
    LAB_ADMIN = "lab_admin", "Lab admin"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TECHNICIAN)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "lab"], name="one_membership_per_user_and_lab")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.lab} ({self.get_role_display()})"

    @property
    def can_review(self) -> bool:
        return self.role in (Role.PATHOLOGIST, Role.LAB_ADMIN)


class Specimen(models.TextChoices):
    BONE_MARROW = "bone_marrow_aspirate", "Bone marrow aspirate"
    PERIPHERAL_BLOOD = "peripheral_blood", "Peripheral blood"


class CaseStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    AWAITING_REVIEW = "awaiting_review", "Awaiting review"
    SIGNED_OUT = "signed_out", "Signed out"
    FAILED = "failed", "Failed"


class ExclusionReason(models.TextChoices):
    """Why a reviewer took an image out of a case's figures ("not assessable")."""

    WRONG_STAIN = "wrong_stain", "Wrong stain"
    OUT_OF_FOCUS = "out_of_focus", "Out of focus"
    TISSUE_SECTION = "tissue_section", "Tissue section"
    NOT_A_SMEAR = "not_a_smear", "Not a smear"


# The scope check's finding (ml.scope.SCOPE_CODES) -> the exclusion it suggests to the reviewer.
# "far_from_training" suggests none: the image may be assessable, the reviewer decides.
SCOPE_EXCLUSIONS: dict[str, str] = {
    "not_smear_stain": ExclusionReason.WRONG_STAIN,
    "out_of_focus": ExclusionReason.OUT_OF_FOCUS,
    "tissue_section": ExclusionReason.TISSUE_SECTION,
    "blank": ExclusionReason.NOT_A_SMEAR,
    "screenshot": ExclusionReason.NOT_A_SMEAR,
    "single_cell": ExclusionReason.NOT_A_SMEAR,
}


class Case(models.Model):
    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="cases")
    accession_number = models.CharField(max_length=64)
    patient_pseudonym = models.CharField(
        max_length=64, help_text="A pseudonymous patient id: never a name or a hospital number."
    )
    specimen = models.CharField(max_length=32, choices=Specimen.choices)
    stain = models.CharField(max_length=64, default="Wright-Giemsa")
    clinical_note = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=CaseStatus.choices, default=CaseStatus.UPLOADED, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="cases_created"
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="cases_assigned"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processing_finished_at = models.DateTimeField(null=True, blank=True)
    # Case-level results, recomputed by diagnostics.pipeline.summarise_case:
    # {"images": n, "analysed": n, "failed": n, "per_class": {...}, "cells": n,
    #  "wbc": n, "blasts": n|None, "blast_fraction": f|None, "who_flag": bool, "demo": bool}
    summary = models.JSONField(default=dict, blank=True)
    who_flag = models.BooleanField(default=False, db_index=True)
    signed_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="cases_signed"
    )
    signed_out_at = models.DateTimeField(null=True, blank=True)
    sign_out_version = models.PositiveIntegerField(default=0, help_text="1 at first sign-out, +1 per amendment")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "accession_number"], name="accession_unique_per_lab"),
        ]

    def __str__(self) -> str:
        return f"{self.accession_number} ({self.lab.slug})"


class Batch(models.Model):
    """One submission of images to a case (an upload form post, an API call, a zip)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="batches")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(default=timezone.now)
    accepted_count = models.PositiveIntegerField(default=0)
    # Files refused at upload: [{"filename": ..., "code": ..., "reason": ...}]
    rejected = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "batches"


class ImageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def slide_image_path(instance: SlideImage, filename: str) -> str:
    # The stored name never reuses the uploaded name (it may be hostile).
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return f"labs/{instance.case.lab_id}/cases/{instance.case_id}/originals/{uuid.uuid4().hex}{suffix}"


class SlideImage(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="images")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveIntegerField(help_text="1-based number of the image within its case")
    file = models.FileField(upload_to=slide_image_path, max_length=300)
    original_filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=ImageStatus.choices, default=ImageStatus.QUEUED, db_index=True)
    stage = models.CharField(max_length=32, blank=True, help_text="Current pipeline stage while processing")
    error_code = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True, help_text="Readable reason when the image failed")
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["case", "position"]
        constraints = [
            models.UniqueConstraint(fields=["case", "sha256"], name="no_duplicate_image_in_case"),
            models.UniqueConstraint(fields=["case", "position"], name="image_position_unique_in_case"),
        ]

    def __str__(self) -> str:
        return f"{self.case} #{self.position} {self.original_filename}"


class ModelTask(models.TextChoices):
    IMAGE = "image", "Image classifier"
    CELL = "cell", "Cell (blast) classifier"


class ModelVersion(models.Model):
    name = models.CharField(max_length=120)
    task = models.CharField(max_length=10, choices=ModelTask.choices, default=ModelTask.IMAGE)
    arch = models.CharField(max_length=40)
    class_names = models.JSONField()
    binary_map = models.JSONField(null=True, blank=True)
    checkpoint_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, unique=True)
    metrics = models.JSONField(default=dict, blank=True)
    card = models.JSONField(default=dict, blank=True, help_text="The checkpoint's full model card")
    is_active = models.BooleanField(default=False)
    is_demo = models.BooleanField(default=False, help_text="Trained on synthetic data: not for diagnosis")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["task"], condition=Q(is_active=True), name="one_active_model_per_task"),
        ]

    def __str__(self) -> str:
        demo = " [demo]" if self.is_demo else ""
        return f"{self.name} ({self.arch}, {self.sha256[:10]}){demo}"

    @property
    def short_sha(self) -> str:
        return self.sha256[:12]


def analysis_overlay_path(instance: Analysis, filename: str) -> str:
    case = instance.image.case
    return f"labs/{case.lab_id}/cases/{case.id}/overlays/{instance.image_id}-{instance.model_version_id}-{filename}"


class Analysis(models.Model):
    image = models.ForeignKey(SlideImage, on_delete=models.CASCADE, related_name="analyses")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="analyses")
    cell_model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="cell_analyses"
    )
    label = models.CharField(max_length=40)
    probabilities = models.JSONField()
    confidence = models.FloatField()
    low_confidence = models.BooleanField(default=False)
    all_probability = models.FloatField(null=True, blank=True, help_text="Binary head: P(ALL)")
    cam_overlay = models.FileField(upload_to=analysis_overlay_path, max_length=300, blank=True)
    segmentation_overlay = models.FileField(upload_to=analysis_overlay_path, max_length=300, blank=True)
    cell_counts = models.JSONField(default=dict, help_text='{"wbc": n, "rbc": n, "platelet": n}')
    blasts = models.PositiveIntegerField(null=True, blank=True, help_text="None = not determined")
    cells = models.JSONField(default=list, blank=True, help_text="Per-cell summary from the segmentation")
    # The cell-type model's calls, summed (ml.cells.CellAnalysis): {"blast": n, "lymphocyte": n, ...};
    # empty without a cell-type model. One Cell row per white cell holds each call.
    differential = models.JSONField(default=dict, blank=True)
    nucleated = models.PositiveIntegerField(
        null=True, blank=True, help_text="Nucleated white cells the cell-type model counted (the blast % denominator)"
    )
    # ml.scope.check_scope of the image against the image model's training data.
    in_scope = models.BooleanField(default=True)
    scope_code = models.CharField(max_length=40, blank=True)
    scope_reason = models.TextField(blank=True)
    timings = models.JSONField(default=dict, help_text="Seconds per pipeline stage")
    # Deep Zoom pyramids for the full-resolution viewer (diagnostics.tiles, made after the
    # analysis on the cpu queue): {"folder": "labs/../tiles/<id>", "layers": {"original":
    # ml.deepzoom.DeepZoomLayout.as_dict(), "cam": .., "segmentation": ..}}; {"error": ".."}
    # when they could not be made; empty until then.
    tiles = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["image__position"]
        verbose_name_plural = "analyses"
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="one_analysis_per_image_and_model"),
        ]

    def __str__(self) -> str:
        return f"{self.image} -> {self.label}"


class Cell(models.Model):
    """One white cell of an analysed image: where it is and what the cell model called it.

    Written once per analysis by the pipeline (``bulk_create``); a reviewer's
    reclassification is a separate row that points here, so the AI call stays."""

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="cell_calls")
    index = models.PositiveIntegerField(help_text="The segmentation's 1-based cell number (drawn on the overlay)")
    kind = models.CharField(max_length=16, default="wbc")
    bbox = models.JSONField(help_text="[x0, y0, x1, y1] in image pixels, x1/y1 exclusive")
    contour = models.JSONField(null=True, blank=True, help_text="Outline [[x, y], ...] in image pixels")
    ai_label = models.CharField(max_length=40, blank=True, help_text="The cell model's class; empty = not classified")
    probabilities = models.JSONField(default=dict, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    low_confidence = models.BooleanField(default=False)

    class Meta:
        ordering = ["analysis", "index"]
        constraints = [models.UniqueConstraint(fields=["analysis", "index"], name="one_cell_per_analysis_and_index")]

    def __str__(self) -> str:
        return f"cell {self.index} of analysis {self.analysis_id}: {self.ai_label or 'unclassified'}"


class AuditEvent(models.Model):
    class Verb(models.TextChoices):
        CASE_CREATED = "case_created", "Case created"
        UPLOADED = "uploaded", "Images uploaded"
        UPLOAD_REJECTED = "upload_rejected", "File rejected at upload"
        ANALYSED = "analysed", "Image analysed"
        ANALYSIS_FAILED = "analysis_failed", "Image analysis failed"
        CASE_READY = "case_ready", "Case ready for review"
        REVIEWED = "reviewed", "Label confirmed"
        RELABELLED = "relabelled", "Label overridden"
        EXCLUDED = "excluded", "Image excluded (not assessable)"
        CELL_RECLASSIFIED = "cell_reclassified", "Cell reclassified"
        CELL_ADDED = "cell_added", "Missed cell added"
        SIGNED_OUT = "signed_out", "Case signed out"
        AMENDED = "amended", "Case amended"
        REPORT_CREATED = "report_created", "Report created"
        REPORT_DOWNLOADED = "report_downloaded", "Report downloaded"
        MODEL_REGISTERED = "model_registered", "Model registered"
        MODEL_ACTIVATED = "model_activated", "Model activated"
        MEMBER_INVITED = "member_invited", "Member invited"
        OTHER = "other", "Other"

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    actor_label = models.CharField(max_length=200, blank=True, help_text='e.g. "worker celery@host" for system events')
    verb = models.CharField(max_length=30, choices=Verb.choices)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class TaskRun(models.Model):
    """One execution of a pipeline task, kept in the database for the
    monitoring dashboard (Flower forgets its history on restart)."""

    task_name = models.CharField(max_length=120, db_index=True)
    task_id = models.CharField(max_length=64, blank=True)
    queue = models.CharField(max_length=40, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    case = models.ForeignKey(Case, on_delete=models.SET_NULL, null=True, blank=True)
    image_count = models.PositiveIntegerField(default=0)
    ok = models.BooleanField(default=True)
    error = models.TextField(blank=True)
    retries = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, help_text="Seconds per stage")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
