"""The facts of one case, read from the database: the only place the assistant
takes numbers from.

Built on the review area's ``review_items`` (newest analysis and reviews per
image) and the case record (``build_case_record`` / ``case_figures``: the AI's
figures, and once signed out the signed result, which leads), so the assistant
says exactly what the case page shows. A language model, when one is
configured, receives :meth:`CaseFacts.for_llm`: the counts and labels, never
the patient pseudonym, the clinical note or the accession number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diagnostics.models import Case, ImageStatus
from diagnostics.services.case_record import SignedResult, build_case_record, case_figures, person_name
from diagnostics.services.models import is_demo_version
from ml.labels import display_name
from review import services as review_service


@dataclass(frozen=True)
class ImageFacts:
    position: int
    image_id: int
    filename: str
    status: str  # ImageStatus value
    error: str
    label: str | None  # the AI label (a class name), None when not analysed
    confidence: float | None
    probabilities: list[tuple[str, float]]  # highest first
    low_confidence: bool
    all_probability: float | None
    counts: dict[str, int]
    blasts: int | None  # None = not determined (no cell-level model)
    reviewed: bool
    review_label: str | None
    reviewer: str | None
    overridden: bool
    signed_label: str | None  # the label in the newest signed version; None before sign-out
    cam_overlay_url: str | None
    segmentation_overlay_url: str | None
    model_name: str | None
    model_demo: bool

    @property
    def analysed(self) -> bool:
        return self.label is not None

    @property
    def label_display(self) -> str:
        return display_name(self.label) if self.label else "not analysed"

    def for_llm(self) -> dict[str, Any]:
        return {
            "image": self.position,
            "status": self.status,
            "ai_label": self.label,
            "ai_probabilities": {name: round(p, 3) for name, p in self.probabilities},
            "low_confidence": self.low_confidence,
            "reviewer_label": self.review_label,
            "signed_label": self.signed_label,
            "cell_counts": self.counts,
            "blasts": self.blasts,
            "has_gradcam_overlay": self.cam_overlay_url is not None,
        }


@dataclass(frozen=True)
class CaseFacts:
    case_id: int
    accession: str
    specimen: str
    stain: str
    status: str
    images: list[ImageFacts]
    summary: dict[str, Any]  # review_service.case_figures: per_class, cells, wbc, blasts, blast_fraction, who_flag, demo
    reviewed: int
    unidentified: int
    distribution: dict[str, int] = field(default_factory=dict)  # current (reviewed or AI) label -> images
    signed: SignedResult | None = None  # the newest signed version: once signed out, the result

    def image(self, position: int) -> ImageFacts | None:
        return next((image for image in self.images if image.position == position), None)

    @property
    def analysed(self) -> list[ImageFacts]:
        return [image for image in self.images if image.analysed]

    @property
    def unreviewed(self) -> list[ImageFacts]:
        return [image for image in self.images if image.analysed and not image.reviewed]

    @property
    def failed(self) -> list[ImageFacts]:
        return [image for image in self.images if image.status == ImageStatus.FAILED]

    @property
    def pending(self) -> list[ImageFacts]:
        return [image for image in self.images if not image.analysed and image.status != ImageStatus.FAILED]

    @property
    def demo(self) -> bool:
        return bool(self.summary.get("demo")) or any(image.model_demo for image in self.images)

    def for_llm(self) -> dict[str, Any]:
        """What an external language model may see: results, not identities."""
        keys = ("images", "analysed", "failed", "per_class", "cells", "wbc", "rbc", "platelet", "blasts",
                "blast_fraction", "who_threshold", "who_flag", "demo")
        return {
            "specimen": self.specimen,
            "stain": self.stain,
            "status": self.status,
            "summary": {key: self.summary.get(key) for key in keys if key in self.summary},
            "reviewed_images": self.reviewed,
            "unreviewed_images": [image.position for image in self.unreviewed],
            "images": [image.for_llm() for image in self.images],
            # The signed result (the category and figures, never the free-text comment).
            "signed_result": None if self.signed is None else {
                "version": self.signed.version,
                "diagnosis": self.signed.diagnosis_text or None,
                "signed_labels_per_class": self.signed.per_class,
                "blasts": self.signed.blasts,
                "blast_fraction": self.signed.blast_fraction,
                "who_flag": self.signed.who_flag,
            },
        }


def case_facts(case: Case) -> CaseFacts:
    """Every number the assistant may state about ``case`` (a few queries, whatever its size)."""
    items = review_service.review_items(case)
    progress = review_service.review_progress(items)
    record = build_case_record(case)
    signed_labels = {row.image_id: row.signed_label for row in record.images}
    images = []
    for item in items:
        analysis = item.analysis
        latest = item.latest_review
        probabilities = sorted(
            ((name, float(p)) for name, p in ((analysis.probabilities or {}) if analysis else {}).items()),
            key=lambda pair: pair[1],
            reverse=True,
        )
        images.append(
            ImageFacts(
                position=item.image.position,
                image_id=item.image.pk,
                filename=item.image.original_filename,
                status=item.image.status,
                error=item.image.error,
                label=analysis.label if analysis else None,
                confidence=float(analysis.confidence) if analysis else None,
                probabilities=probabilities,
                low_confidence=bool(analysis and analysis.low_confidence),
                all_probability=analysis.all_probability if analysis else None,
                counts={k: int(v) for k, v in ((analysis.cell_counts or {}) if analysis else {}).items()},
                blasts=analysis.blasts if analysis else None,
                reviewed=latest is not None,
                review_label=latest.label if latest else None,
                reviewer=person_name(latest.reviewer) if latest else None,
                overridden=item.overridden,
                signed_label=signed_labels.get(item.image.pk),
                cam_overlay_url=analysis.cam_overlay.url if analysis and analysis.cam_overlay else None,
                segmentation_overlay_url=(
                    analysis.segmentation_overlay.url if analysis and analysis.segmentation_overlay else None
                ),
                model_name=analysis.model_version.name if analysis else None,
                model_demo=bool(analysis) and (is_demo_version(analysis.model_version) or is_demo_version(analysis.cell_model_version)),
            )
        )
    return CaseFacts(
        case_id=case.pk,
        accession=case.accession_number,
        specimen=case.get_specimen_display(),
        stain=case.stain,
        status=case.get_status_display(),
        images=images,
        summary=case_figures(case, record),
        reviewed=progress.reviewed,
        unidentified=progress.unidentified,
        distribution=dict(progress.distribution),
        signed=record.signed_result,
    )
