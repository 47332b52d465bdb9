"""Reviews of images and sign-outs of cases (tables keep their ``diagnostics_*`` names)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from diagnostics.models import Analysis, Case, SlideImage


class Review(models.Model):
    """A reviewer's label for one image. The newest review of an image is its current label."""

    image = models.ForeignKey(SlideImage, on_delete=models.CASCADE, related_name="reviews")
    analysis = models.ForeignKey(Analysis, on_delete=models.SET_NULL, null=True, blank=True, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    label = models.CharField(max_length=40)
    agrees_with_ai = models.BooleanField(default=True)
    comment = models.TextField(blank=True)
    # One per form render / API request: a double submit hits the unique constraint and is recorded once.
    submission_token = models.UUIDField(default=uuid.uuid4, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "diagnostics_review"
        ordering = ["-created_at"]


class Diagnosis(models.TextChoices):
    """The structured interpretation a pathologist signs (one per sign-out version)."""

    NO_EVIDENCE = "no_evidence_of_all", "No evidence of ALL"
    B_ALL = "consistent_with_b_all", "Consistent with B-ALL"
    SUSPICIOUS = "suspicious", "Suspicious for ALL, further studies advised"
    INSUFFICIENT = "insufficient", "Insufficient for diagnosis"


class BAllSubtype(models.TextChoices):
    """The B-ALL subtype of a "consistent with B-ALL" diagnosis (the image model's ALL classes)."""

    PRO_B = "pro_b", "Pro-B"
    EARLY_PRE_B = "early_pre_b", "Early pre-B"
    PRE_B = "pre_b", "Pre-B"
    NOT_SPECIFIED = "not_specified", "subtype not specified"


class SignOut(models.Model):
    """One signed version of a case. A sign-out is never edited: an amendment
    adds version n+1 and the earlier rows stay, so what was signed, by whom
    and on which labels can always be shown again."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="sign_outs")
    version = models.PositiveIntegerField()
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sign_outs")
    signed_at = models.DateTimeField(default=timezone.now)
    # {"<image id>": {"position": n, "label": .., "ai_label": .., "review_id": n, "model_version": "sha"}}
    labels = models.JSONField(default=dict)
    summary = models.JSONField(default=dict, blank=True, help_text="Case summary at the moment of signing")
    amendment_reason = models.TextField(blank=True, help_text="Why the previous version was amended (version > 1)")
    mfa_authenticated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the signer entered the fresh TOTP code of this signature (step-up)"
    )
    # The interpretation (blank on versions signed before it was asked for).
    diagnosis = models.CharField(max_length=32, choices=Diagnosis.choices, blank=True)
    diagnosis_subtype = models.CharField(max_length=16, choices=BAllSubtype.choices, blank=True)
    further_studies = models.CharField(max_length=200, blank=True, help_text="e.g. flow cytometric immunophenotyping")
    diagnosis_comment = models.TextField(blank=True)
    # Who signed, as printed: the name and credentials at the moment of signing.
    signer_name = models.CharField(max_length=300, blank=True)
    signer_credentials = models.CharField(max_length=120, blank=True)

    class Meta:
        db_table = "diagnostics_signout"
        ordering = ["case", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["case", "version"], name="one_sign_out_per_case_version"),
            models.CheckConstraint(
                condition=models.Q(diagnosis=Diagnosis.B_ALL) | models.Q(diagnosis_subtype=""),
                name="subtype_only_with_b_all",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case} v{self.version}"
