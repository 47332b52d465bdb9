"""One projection of a case, built once: what every surface states about it.

:func:`build_case_record` reads a case's images, their newest analyses (with
the image and the cell model of each), their newest reviews and the newest
sign-out, and returns a frozen :class:`CaseRecord`. The case page, the API,
the sign-out snapshot, the PDF and the assistant take their case-level
figures from it (``Case.summary`` is its :meth:`CaseRecord.summary`, written
when the case finishes), so they cannot disagree on:

* demo-ness, from both models (:func:`diagnostics.services.models.is_demo_version`,
  over ``ml.gates.is_demo_card``): a real image model with a demo cell model is a demo;
* the blast % and the WHO ≥ 20 % flag, with whether the blast estimate passed
  the gate (``ml.gates.blast_estimate_validated`` of the cell model's card);
* the per-class counts (AI labels, and the current labels: signed > reviewed > AI);
* which images a reviewer excluded as not assessable (and why): they leave every
  figure above and are listed instead;
* the signer's display name;
* signed versus AI results.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Prefetch

from diagnostics.models import (
    Analysis,
    Case,
    ExclusionReason,
    ImageStatus,
    ModelVersion,
    SlideImage,
    Specimen,
)
from diagnostics.services.models import is_demo_version


def person_name(user) -> str | None:
    """How a person is named on every surface: full name, else e-mail, else user name."""
    if user is None:
        return None
    return user.get_full_name() or user.email or user.username


@dataclass(frozen=True)
class ImageRow:
    image_id: int
    position: int
    filename: str
    status: str
    error: str
    analysis: Analysis | None = field(compare=False, repr=False)
    ai_label: str | None
    confidence: float | None
    low_confidence: bool
    reviewed_label: str | None  # the newest review's label
    reviewer: str | None
    signed_label: str | None  # the label in the newest sign-out snapshot
    cell_counts: dict[str, int]
    blasts: int | None
    demo: bool  # this image's results come from a demo image or cell model
    # ExclusionReason value when the image is excluded (not assessable), else "": from the
    # newest sign-out snapshot when it has this image, else from the newest review
    exclusion: str = ""
    excluded_by: str | None = None

    @property
    def label(self) -> str | None:
        """The result: signed, else reviewed, else the AI's; None for an excluded image."""
        if self.exclusion:
            return None
        return self.signed_label or self.reviewed_label or self.ai_label

    @property
    def analysed(self) -> bool:
        return self.analysis is not None and self.status == ImageStatus.DONE

    @property
    def excluded(self) -> bool:
        return bool(self.exclusion)

    @property
    def exclusion_label(self) -> str:
        return ExclusionReason(self.exclusion).label if self.exclusion in ExclusionReason.values else self.exclusion


@dataclass(frozen=True)
class CaseRecord:
    case_id: int
    accession: str
    specimen: str
    images: tuple[ImageRow, ...]
    image_model_demo: bool
    cell_model_demo: bool
    blast_validated: bool  # the active-at-analysis cell model passed the blast gate (ml.gates)
    blast_gate_reasons: tuple[str, ...]
    signed: bool
    sign_out_version: int
    signer: str | None
    signed_at: datetime | None
    models: tuple[ModelVersion, ...] = field(compare=False, repr=False)

    # --- figures ------------------------------------------------------------

    @property
    def demo(self) -> bool:
        return self.image_model_demo or self.cell_model_demo

    @property
    def analysed(self) -> tuple[ImageRow, ...]:
        return tuple(row for row in self.images if row.analysed)

    @property
    def included(self) -> tuple[ImageRow, ...]:
        """The analysed images the figures are made of: every one a reviewer did not exclude."""
        return tuple(row for row in self.analysed if not row.excluded)

    @property
    def excluded(self) -> tuple[ImageRow, ...]:
        return tuple(row for row in self.analysed if row.excluded)

    @property
    def ai_per_class(self) -> dict[str, int]:
        return dict(sorted(Counter(row.ai_label for row in self.included).items()))

    @property
    def per_class(self) -> dict[str, int]:
        """Images per current label (signed > reviewed > AI)."""
        return dict(sorted(Counter(row.label for row in self.included).items()))

    def _cell_sum(self, kind: str) -> int:
        return sum(int(row.cell_counts.get(kind, 0)) for row in self.included)

    @property
    def blasts(self) -> int | None:
        """Blasts over the images where a cell model ran; None (not determined) when none did."""
        determined = [row for row in self.included if row.blasts is not None]
        return sum(row.blasts for row in determined) if determined else None

    @property
    def blast_wbc(self) -> int | None:
        determined = [row for row in self.included if row.blasts is not None]
        return sum(int(row.cell_counts.get("wbc", 0)) for row in determined) if determined else None

    @property
    def blast_fraction(self) -> float | None:
        wbc = self.blast_wbc
        return round(self.blasts / wbc, 4) if self.blasts is not None and wbc else None

    @property
    def blast_percent(self) -> float | None:
        return round(100 * self.blast_fraction, 1) if self.blast_fraction is not None else None

    @property
    def who_flag(self) -> bool:
        """A bone-marrow case at or above the WHO blast threshold (20 %)."""
        return bool(
            self.specimen == Specimen.BONE_MARROW
            and self.blast_fraction is not None
            and self.blast_fraction >= settings.WHO_BLAST_THRESHOLD
        )

    def summary(self) -> dict[str, Any]:
        """The case-level figures as one JSON-able dict (``Case.summary``, the API's summary, the report)."""
        binary: Counter[str] = Counter()
        for row in self.included:
            binary_map = row.analysis.model_version.binary_map or {}
            if row.ai_label in binary_map:
                binary["ALL" if binary_map[row.ai_label] else "normal"] += 1
        statuses = Counter(row.status for row in self.images)
        cells = {kind: self._cell_sum(kind) for kind in ("wbc", "rbc", "platelet")}
        return {
            "images": len(self.images),
            "analysed": statuses.get(ImageStatus.DONE, 0),
            "failed": statuses.get(ImageStatus.FAILED, 0),
            "excluded": len(self.excluded),
            "exclusions": [
                {"position": row.position, "filename": row.filename, "reason": row.exclusion,
                 "reason_label": row.exclusion_label, "by": row.excluded_by}
                for row in self.excluded
            ],
            "per_class": self.ai_per_class,
            "binary": dict(sorted(binary.items())),
            "low_confidence": sum(int(row.low_confidence) for row in self.included),
            "cells": sum(sum(int(v) for v in row.cell_counts.values()) for row in self.included),
            **cells,
            "blasts": self.blasts,
            "blast_wbc": self.blast_wbc,
            "blast_fraction": self.blast_fraction,
            "blast_validated": self.blast_validated,
            "who_threshold": settings.WHO_BLAST_THRESHOLD,
            "who_flag": self.who_flag,
            "demo": self.demo,
            "image_model_demo": self.image_model_demo,
            "cell_model_demo": self.cell_model_demo,
        }


def build_case_record(case: Case) -> CaseRecord:
    """The record of ``case`` from the database (four queries whatever the number of images)."""
    from ml.gates import blast_estimate_validated, gate_reasons

    images = (
        SlideImage.objects.filter(case=case)
        .order_by("position")
        .prefetch_related(
            Prefetch(
                "analyses",
                queryset=Analysis.objects.select_related("model_version", "cell_model_version").order_by(
                    "-created_at", "-id"
                ),
            ),
            "reviews__reviewer",
        )
    )
    # Reviews and sign-outs are the review app's models; the core reads them through the
    # reverse relations Django puts on SlideImage and Case, and never imports that app.
    sign_out = case.sign_outs.select_related("signed_by").order_by("-version").first()
    signed_labels = (sign_out.labels or {}) if sign_out else {}
    rows = []
    models: dict[int, ModelVersion] = {}
    cell_versions: dict[int, ModelVersion] = {}
    for image in images:
        analyses = list(image.analyses.all())
        analysis = analyses[0] if analyses else None
        reviews = sorted(image.reviews.all(), key=lambda r: (r.created_at, r.pk), reverse=True)
        review = reviews[0] if reviews else None
        signed = signed_labels.get(str(image.pk))
        if signed is not None:  # signed > reviewed, as for the label
            exclusion, excluded_by = signed.get("exclusion") or "", signed.get("reviewer")
        else:
            exclusion = review.exclusion if review else ""
            excluded_by = person_name(review.reviewer) if review and exclusion else None
        demo = False
        if analysis is not None:
            models.setdefault(analysis.model_version_id, analysis.model_version)
            demo = is_demo_version(analysis.model_version)
            if analysis.cell_model_version is not None:
                models.setdefault(analysis.cell_model_version_id, analysis.cell_model_version)
                cell_versions.setdefault(analysis.cell_model_version_id, analysis.cell_model_version)
                demo = demo or is_demo_version(analysis.cell_model_version)
        rows.append(ImageRow(
            image_id=image.pk,
            position=image.position,
            filename=image.original_filename,
            status=image.status,
            error=image.error,
            analysis=analysis,
            ai_label=analysis.label if analysis else None,
            confidence=float(analysis.confidence) if analysis else None,
            low_confidence=bool(analysis and analysis.low_confidence),
            reviewed_label=(review.label or None) if review else None,
            reviewer=person_name(review.reviewer) if review else None,
            signed_label=(signed or {}).get("label"),
            cell_counts={k: int(v) for k, v in (analysis.cell_counts or {}).items()} if analysis else {},
            blasts=analysis.blasts if analysis else None,
            demo=demo,
            exclusion=exclusion,
            excluded_by=excluded_by if exclusion else None,
        ))
    analysed = [row for row in rows if row.analysed]  # demo-ness over every result made, excluded or not
    image_demo = any(is_demo_version(row.analysis.model_version) for row in analysed)
    cell_demo = any(is_demo_version(version) for version in cell_versions.values())
    cards = [version.card for version in cell_versions.values()]
    reasons = sorted({reason for card in cards for reason in gate_reasons(card)}) if cards else list(gate_reasons(None))
    return CaseRecord(
        case_id=case.pk,
        accession=case.accession_number,
        specimen=case.specimen,
        images=tuple(rows),
        image_model_demo=image_demo,
        cell_model_demo=cell_demo,
        blast_validated=bool(cards) and all(blast_estimate_validated(card) for card in cards),
        blast_gate_reasons=tuple(reasons),
        signed=sign_out is not None,
        sign_out_version=sign_out.version if sign_out else 0,
        signer=person_name(sign_out.signed_by) if sign_out else None,
        signed_at=sign_out.signed_at if sign_out else None,
        models=tuple(sorted(models.values(), key=lambda m: (m.task != "image", m.name))),
    )



def case_figures(case: Case, record: CaseRecord | None = None) -> dict[str, Any]:
    """The record's summary with the display figures every surface shows
    (the case and review pages, the API summary, the sign-out snapshot, the
    report and the assistant): always built from the database, never a stale copy."""
    from ml.gates import NOT_VALIDATED_LABEL

    record = record or build_case_record(case)
    figures = record.summary()
    figures["blast_percent"] = record.blast_percent
    figures["blast_qualifier"] = "" if record.blast_validated else NOT_VALIDATED_LABEL
    figures["blast_gate_reasons"] = list(record.blast_gate_reasons)
    figures["who_threshold_percent"] = round(100 * settings.WHO_BLAST_THRESHOLD)
    figures["signed"] = record.signed
    figures["signer"] = record.signer
    return figures
