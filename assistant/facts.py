"""The facts of one case, read from the database: the only place the assistant
takes numbers from.

Built on the one case record (``build_case_record`` / ``case_figures``: each
image's newest analysis, review and signed label, the AI's figures, and once
signed out the signed result, which leads), so the assistant says exactly what
the case page shows. A language model, when one is
configured, receives :meth:`CaseFacts.for_llm`: the counts and labels, never
the patient pseudonym, the clinical note or the accession number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diagnostics.models import Case, ImageStatus
from diagnostics.services.case_record import (
    CaseRecord,
    ImageRow,
    SignedResult,
    build_case_record,
    case_figures,
)
from ml.labels import display_name


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
    summary: dict[str, Any]  # case_figures: per_class, cells, wbc, blasts, blast_fraction, who_flag, demo
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


UNIDENTIFIED = "Unidentified"


def _current_distribution(record: CaseRecord) -> dict[str, int]:
    """Images per current label (the newest review's, else the AI's) over the analysed images that
    count (excluded ones do not): Unidentified first, then the model's class order, as on the review page."""
    counts: dict[str, int] = {}
    order: list[str] = [UNIDENTIFIED]
    for row in record.images:
        if row.analysis is None:
            continue
        for name in row.analysis.model_version.class_names:
            if name not in order:
                order.append(name)
        if row.excluded:
            continue
        key = UNIDENTIFIED if row.unidentified else (row.reviewed_label or row.ai_label or UNIDENTIFIED)
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts, key=lambda name: order.index(name) if name in order else len(order))
    return {name: counts[name] for name in ranked}


def _image_facts(row: ImageRow) -> ImageFacts:
    analysis = row.analysis
    probabilities = sorted(
        ((name, float(p)) for name, p in ((analysis.probabilities or {}) if analysis else {}).items()),
        key=lambda pair: pair[1],
        reverse=True,
    )
    return ImageFacts(
        position=row.position,
        image_id=row.image_id,
        filename=row.filename,
        status=row.status,
        error=row.error,
        label=row.ai_label,
        confidence=row.confidence,
        probabilities=probabilities,
        low_confidence=row.low_confidence,
        all_probability=analysis.all_probability if analysis else None,
        counts=dict(row.cell_counts),
        blasts=row.blasts,
        reviewed=row.reviewed,
        review_label=row.reviewed_label,
        reviewer=row.reviewer,
        overridden=row.overridden,
        signed_label=row.signed_label,
        cam_overlay_url=analysis.cam_overlay.url if analysis and analysis.cam_overlay else None,
        segmentation_overlay_url=analysis.segmentation_overlay.url if analysis and analysis.segmentation_overlay else None,
        model_name=analysis.model_version.name if analysis else None,
        model_demo=row.demo,
    )


def case_facts(case: Case) -> CaseFacts:
    """Every number the assistant may state about ``case``: one case record (a few queries, whatever its size)."""
    record = build_case_record(case)
    images = [_image_facts(row) for row in record.images]
    return CaseFacts(
        case_id=case.pk,
        accession=case.accession_number,
        specimen=case.get_specimen_display(),
        stain=case.stain,
        status=case.get_status_display(),
        images=images,
        summary=case_figures(case, record),
        reviewed=sum(1 for row in record.images if row.analysis is not None and row.reviewed),
        unidentified=sum(1 for row in record.images if row.unidentified),
        distribution=_current_distribution(record),
        signed=record.signed_result,
    )
