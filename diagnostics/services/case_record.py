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
* the signer's display name;
* signed versus AI results: :class:`SignedResult` is the newest sign-out
  (labels, figures and the diagnosis as signed, the signer's name and
  credentials); the AI's figures stay beside it, marked as the AI's.
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
class SignedResult:
    """One signed version as every surface states it: the snapshot the pathologist
    signed (``review.SignOut``), read through the model instance only (the core
    never imports the review app)."""

    version: int
    signed_at: datetime
    signer: str | None  # the name as printed: stored at signing, else the account's name today
    signer_credentials: str
    diagnosis: str  # a review.models.Diagnosis value; "" on versions signed before it was asked for
    diagnosis_label: str
    subtype: str
    subtype_label: str
    further_studies: str
    comment: str
    amendment_reason: str
    figures: dict[str, Any] = field(compare=False, repr=False)  # case_figures at the moment of signing
    labels: dict[str, dict[str, Any]] = field(compare=False, repr=False)  # image id -> signed label row

    @property
    def diagnosis_text(self) -> str:
        """The interpretation in one line: "Consistent with B-ALL (Pro-B)"; "" when none was signed."""
        if not self.diagnosis:
            return ""
        text = self.diagnosis_label
        if self.subtype:
            text += f" ({self.subtype_label})"
        if self.further_studies:
            text += f": {self.further_studies}"
        return text

    @property
    def signer_line(self) -> str:
        """The signer as printed: "Jane Doe, MD, FRCPath"."""
        return ", ".join(part for part in (self.signer, self.signer_credentials) if part)

    @property
    def per_class(self) -> dict[str, int]:
        """Images per signed label, in label order (as ``CaseRecord.per_class``)."""
        return dict(sorted(Counter(row.get("label") for row in self.labels.values() if row.get("label")).items()))

    @property
    def blast_fraction(self) -> float | None:
        value = self.figures.get("blast_fraction")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def blast_percent(self) -> float | None:
        value = self.figures.get("blast_percent")
        if isinstance(value, (int, float)):
            return float(value)
        return round(100 * self.blast_fraction, 1) if self.blast_fraction is not None else None

    @property
    def blasts(self) -> int | None:
        return self.figures.get("blasts")

    @property
    def blast_wbc(self) -> int | None:
        return self.figures.get("blast_wbc")

    @property
    def who_flag(self) -> bool:
        return bool(self.figures.get("who_flag"))

    @property
    def differential(self) -> dict[str, int]:
        """A cell differential, when the signed figures carry one (class -> cells)."""
        value = self.figures.get("differential")
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: the API's ``signed`` block and the assistant's facts."""
        return {
            "version": self.version,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "signed_by": self.signer,
            "signer_credentials": self.signer_credentials,
            "diagnosis": self.diagnosis or None,
            "diagnosis_label": self.diagnosis_label or None,
            "diagnosis_subtype": self.subtype or None,
            "diagnosis_subtype_label": self.subtype_label or None,
            "further_studies": self.further_studies,
            "comment": self.comment,
            "diagnosis_text": self.diagnosis_text,
            "per_class": self.per_class,
            "labels": {
                key: {"position": row.get("position"), "label": row.get("label"), "ai_label": row.get("ai_label"),
                      "comment": row.get("comment", "")}
                for key, row in sorted(self.labels.items(), key=lambda kv: kv[1].get("position", 0))
            },
            "cells": self.figures.get("cells"),
            "wbc": self.figures.get("wbc"),
            "rbc": self.figures.get("rbc"),
            "platelet": self.figures.get("platelet"),
            "blasts": self.blasts,
            "blast_wbc": self.blast_wbc,
            "blast_fraction": self.blast_fraction,
            "blast_percent": self.blast_percent,
            "who_flag": self.who_flag,
            "differential": self.differential,
        }


def signed_result(sign_out) -> SignedResult | None:
    """The :class:`SignedResult` of a ``review.SignOut`` row (None for None)."""
    if sign_out is None:
        return None
    return SignedResult(
        version=sign_out.version,
        signed_at=sign_out.signed_at,
        signer=sign_out.signer_name or person_name(sign_out.signed_by),
        signer_credentials=sign_out.signer_credentials,
        diagnosis=sign_out.diagnosis,
        diagnosis_label=sign_out.get_diagnosis_display() if sign_out.diagnosis else "",
        subtype=sign_out.diagnosis_subtype,
        subtype_label=sign_out.get_diagnosis_subtype_display() if sign_out.diagnosis_subtype else "",
        further_studies=sign_out.further_studies,
        comment=sign_out.diagnosis_comment,
        amendment_reason=sign_out.amendment_reason,
        figures=dict(sign_out.summary or {}),
        labels=dict(sign_out.labels or {}),
    )


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
    comment: str  # the signed comment, else the newest review's
    cell_counts: dict[str, int]
    blasts: int | None
    demo: bool  # this image's results come from a demo image or cell model

    @property
    def label(self) -> str | None:
        """The result: signed, else reviewed, else the AI's."""
        return self.signed_label or self.reviewed_label or self.ai_label

    @property
    def analysed(self) -> bool:
        return self.analysis is not None and self.status == ImageStatus.DONE


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
    signed_result: SignedResult | None = None  # the newest signed version; the AI's figures stay beside it

    # --- figures ------------------------------------------------------------

    @property
    def demo(self) -> bool:
        return self.image_model_demo or self.cell_model_demo

    @property
    def analysed(self) -> tuple[ImageRow, ...]:
        return tuple(row for row in self.images if row.analysed)

    @property
    def ai_per_class(self) -> dict[str, int]:
        return dict(sorted(Counter(row.ai_label for row in self.analysed).items()))

    @property
    def result_source(self) -> str:
        """Whose result a surface shows first: "signed" once a version is signed, else "ai"."""
        return "signed" if self.signed_result is not None else "ai"

    @property
    def per_class(self) -> dict[str, int]:
        """Images per current label (signed > reviewed > AI)."""
        return dict(sorted(Counter(row.label for row in self.analysed).items()))

    def _cell_sum(self, kind: str) -> int:
        return sum(int(row.cell_counts.get(kind, 0)) for row in self.analysed)

    @property
    def blasts(self) -> int | None:
        """Blasts over the images where a cell model ran; None (not determined) when none did."""
        determined = [row for row in self.analysed if row.blasts is not None]
        return sum(row.blasts for row in determined) if determined else None

    @property
    def blast_wbc(self) -> int | None:
        determined = [row for row in self.analysed if row.blasts is not None]
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
        for row in self.analysed:
            binary_map = row.analysis.model_version.binary_map or {}
            if row.ai_label in binary_map:
                binary["ALL" if binary_map[row.ai_label] else "normal"] += 1
        statuses = Counter(row.status for row in self.images)
        cells = {kind: self._cell_sum(kind) for kind in ("wbc", "rbc", "platelet")}
        return {
            "images": len(self.images),
            "analysed": statuses.get(ImageStatus.DONE, 0),
            "failed": statuses.get(ImageStatus.FAILED, 0),
            "per_class": self.ai_per_class,
            "binary": dict(sorted(binary.items())),
            "low_confidence": sum(int(row.low_confidence) for row in self.analysed),
            "cells": sum(sum(int(v) for v in row.cell_counts.values()) for row in self.analysed),
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
        demo = False
        if analysis is not None:
            models.setdefault(analysis.model_version_id, analysis.model_version)
            demo = is_demo_version(analysis.model_version)
            if analysis.cell_model_version is not None:
                models.setdefault(analysis.cell_model_version_id, analysis.cell_model_version)
                cell_versions.setdefault(analysis.cell_model_version_id, analysis.cell_model_version)
                demo = demo or is_demo_version(analysis.cell_model_version)
        signed_row = signed_labels.get(str(image.pk)) or {}
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
            reviewed_label=review.label if review else None,
            reviewer=person_name(review.reviewer) if review else None,
            signed_label=signed_row.get("label"),
            comment=signed_row["comment"] if "comment" in signed_row else (review.comment if review else ""),
            cell_counts={k: int(v) for k, v in (analysis.cell_counts or {}).items()} if analysis else {},
            blasts=analysis.blasts if analysis else None,
            demo=demo,
        ))
    analysed = [row for row in rows if row.analysed]
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
        signer=(sign_out.signer_name or person_name(sign_out.signed_by)) if sign_out else None,
        signed_at=sign_out.signed_at if sign_out else None,
        models=tuple(sorted(models.values(), key=lambda m: (m.task != "image", m.name))),
        signed_result=signed_result(sign_out),
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
    # Signed versus AI: the figures above are the AI's (and the reviews'); the signed version, when
    # there is one, is the result, and every surface shows it first.
    figures["result_source"] = record.result_source
    figures["signed_result"] = record.signed_result.as_dict() if record.signed_result else None
    return figures
