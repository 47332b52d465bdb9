"""Reviews of images and sign-outs of cases (tables keep their ``diagnostics_*`` names)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from diagnostics.models import Analysis, Case, Cell, ExclusionReason, SlideImage


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


class CellReview(models.Model):
    """A reviewer's decision on one white cell: its class (one of ``ml.labels.CELL_TYPES``,
    "artefact" for "not a cell"), or a missed cell added. Append-only: the decision with
    the highest ``version`` is the cell's current class, and the AI's call stays on the Cell.

    ``version`` is n for the cell's n-th decision. A page sends the version it saw and the
    new row takes version + 1, so two pages that saw the same version cannot both write
    (the unique constraint on cell + version): the later one is refused as stale (409).
    The submission token makes a double-submitted change one row."""

    class Action(models.TextChoices):
        RECLASSIFIED = "reclassified", "Reclassified"
        ADDED = "added", "Missed cell added"

    cell = models.ForeignKey(Cell, on_delete=models.CASCADE, related_name="reviews")
    version = models.PositiveIntegerField(help_text="1 for the cell's first decision, +1 per decision")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cell_reviews")
    from_label = models.CharField(max_length=40, blank=True, help_text="The class before: the previous decision's, else the AI's")
    label = models.CharField(max_length=40)
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.RECLASSIFIED)
    submission_token = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cell", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["cell", "version"], name="one_cell_decision_per_version"),
            models.UniqueConstraint(fields=["cell", "submission_token"], name="one_cell_decision_per_submission"),
            models.UniqueConstraint(
                fields=["submission_token"], condition=Q(action="added"), name="one_added_cell_per_submission"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cell}: {self.from_label or '-'} -> {self.label} (v{self.version})"
