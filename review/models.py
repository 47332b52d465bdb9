"""Reviews of images and sign-outs of cases (tables keep their ``diagnostics_*`` names)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from diagnostics.models import Analysis, Case, ExclusionReason, SlideImage


class Review(models.Model):
    """A reviewer's decision on one image: a label, or an exclusion ("not assessable", with
    its reason; the label is then empty). The newest review of an image is its current decision."""

    image = models.ForeignKey(SlideImage, on_delete=models.CASCADE, related_name="reviews")
    analysis = models.ForeignKey(Analysis, on_delete=models.SET_NULL, null=True, blank=True, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    label = models.CharField(max_length=40, blank=True)
    exclusion = models.CharField(max_length=20, choices=ExclusionReason.choices, blank=True)
    agrees_with_ai = models.BooleanField(default=True)
    comment = models.TextField(blank=True)
    # One per form render / API request: a double submit hits the unique constraint and is recorded once.
    submission_token = models.UUIDField(default=uuid.uuid4, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "diagnostics_review"
        ordering = ["-created_at"]
        constraints = [
            # exactly one of the two: a label, or an exclusion reason
            models.CheckConstraint(
                condition=(~models.Q(label="") & models.Q(exclusion="")) | (models.Q(label="") & ~models.Q(exclusion="")),
                name="review_is_a_label_or_an_exclusion",
            ),
        ]

    @property
    def excluded(self) -> bool:
        return bool(self.exclusion)


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
    mfa_authenticated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "diagnostics_signout"
        ordering = ["case", "-version"]
        constraints = [models.UniqueConstraint(fields=["case", "version"], name="one_sign_out_per_case_version")]

    def __str__(self) -> str:
        return f"{self.case} v{self.version}"
