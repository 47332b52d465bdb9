"""Immutable PDF reports (the table keeps its ``diagnostics_report`` name)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from diagnostics.models import Case


class ReportStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINAL = "final", "Final"
    SUPERSEDED = "superseded", "Superseded"


class RenderState(models.TextChoices):
    """Where a report's PDF is. Final reports are saved once rendered (always ``ready``);
    a draft is saved first, ``rendering``, and a worker on the ``cpu`` queue fills it in."""

    RENDERING = "rendering", "Rendering"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Report(models.Model):
    """An immutable PDF report. The bytes live in the database with their hash,
    so a report and its SHA-256 commit together."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="reports")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=ReportStatus.choices)
    pdf = models.BinaryField()
    sha256 = models.CharField(max_length=64, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="reports_signed"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True)
    demo = models.BooleanField(default=False)
    # The QR code on a report cannot carry the hash of the PDF it is printed in
    # (the hash would change the PDF), so it carries the first 16 hex digits of
    # this digest instead: the SHA-256 of the report's canonical content (case,
    # version, labels, counts, signer, model), computed before rendering.
    # ``sha256`` stays the hash of the PDF bytes, checked on upload.
    content_sha256 = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="SHA-256 of the report's canonical content; its first 16 hex digits are in the QR code",
    )
    created_at = models.DateTimeField(default=timezone.now)
    render_state = models.CharField(max_length=12, choices=RenderState.choices, default=RenderState.READY)
    render_error = models.CharField(max_length=500, blank=True)
    # The worker rendering a draft (``diagnostics.pipeline.claim_token``) and since when: taken
    # by a conditional UPDATE, so a redelivered or repeated message renders it once.
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    rendered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "diagnostics_report"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "version"], condition=~Q(status="draft"), name="one_final_report_per_case_version"
            ),
            # A double-click on "Make a draft" joins the render already under way.
            models.UniqueConstraint(
                fields=["case"], condition=Q(status="draft", render_state="rendering"), name="one_rendering_draft_per_case"
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(render_state="ready"), name="only_drafts_render_in_the_background"
            ),
        ]

    @property
    def is_ready(self) -> bool:
        return self.render_state == RenderState.READY
