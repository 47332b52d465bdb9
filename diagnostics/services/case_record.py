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
* signed versus AI results: :class:`SignedResult` is the newest sign-out
  (labels, figures and the diagnosis as signed, the signer's name and
  credentials); the AI's figures stay beside it, marked as the AI's.
* the cell differential: the AI's (each white cell's ``Cell.ai_label``) and the
  reviewed one (a reviewer's newest decision on a cell, ``review.CellReview``,
  else the AI's confident call; low-confidence cells nobody decided on are
  "Unidentified" and not counted), with their agreement. Once any cell of the
  case has a decision, the blast %, the WHO flag and what is signed come from
  the reviewed differential (``blast_source = "reviewed"``), never from the AI's.
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
    Cell,
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
        """The signed (reviewed) cell differential, cell type -> cells; {} when the version
        was signed without one."""
        value = self.figures.get("differential")
        counts = value.get("counts") if isinstance(value, dict) else None
        return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}

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
    reviewed_label: str | None  # the newest review's label (None: no review, or an exclusion)
    reviewer: str | None  # who reviewed it: as signed, else the newest review's
    signed_label: str | None  # the label in the newest sign-out snapshot
    comment: str  # the signed comment, else the newest review's
    cell_counts: dict[str, int]
    blasts: int | None
    demo: bool  # this image's results come from a demo image or cell model
    # ExclusionReason value when the image is excluded (not assessable), else "": from the
    # newest sign-out snapshot when it has this image, else from the newest review
    exclusion: str = ""
    excluded_by: str | None = None
    reviewed: bool = False  # a person has reviewed this image (a label or an exclusion)
    image: SlideImage | None = field(default=None, compare=False, repr=False)
    sha256: str = ""

    @property
    def unidentified(self) -> bool:
        """Low confidence and nobody has reviewed it yet: sign-out waits for it."""
        return self.analysis is not None and self.low_confidence and not self.reviewed

    @property
    def overridden(self) -> bool:
        """The newest review differs from the AI label (an exclusion counts as a change)."""
        return self.reviewed and self.analysis is not None and self.reviewed_label != self.ai_label

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
class CellRow:
    """One white cell of the case: the AI's call and the reviewer's newest decision."""

    cell_id: int
    image_id: int
    position: int  # the image's position in the case
    index: int  # the cell's number on its image
    bbox: tuple[int, int, int, int] = field(compare=False)
    ai_label: str  # "" = not classified by a cell-type model (or added by a reviewer)
    confidence: float | None
    low_confidence: bool
    reviewed_label: str | None  # the newest decision's label; None = no decision
    version: int  # decisions so far (0 = none); a page sends the version it saw
    added: bool  # a missed cell a reviewer added
    reviewer: str | None = None

    @property
    def label(self) -> str | None:
        """The class the reviewed differential counts it in; None = Unidentified."""
        if self.reviewed_label is not None:
            return self.reviewed_label
        if self.ai_label and not self.low_confidence:
            return self.ai_label
        return None

    @property
    def changed(self) -> bool:
        return self.reviewed_label is not None and self.reviewed_label != self.ai_label


@dataclass(frozen=True)
class Differential:
    """Cells per class (every ``ml.labels.CELL_TYPES`` name) and the blast share of the nucleated white cells."""

    counts: dict[str, int]
    unidentified: int = 0

    @property
    def nucleated(self) -> int:
        from ml.labels import NUCLEATED_WHITE

        return sum(self.counts.get(name, 0) for name in NUCLEATED_WHITE)

    @property
    def blasts(self) -> int:
        return self.counts.get("blast", 0)

    @property
    def blast_fraction(self) -> float | None:
        return round(self.blasts / self.nucleated, 4) if self.nucleated else None

    @property
    def blast_percent(self) -> float | None:
        """From the counts, as :meth:`percent` (not from the 4-decimal fraction: rounding twice
        can move the last digit, 27 of 41 would read 65.8 % beside a 65.9 % blast row)."""
        return self.percent("blast")

    def percent(self, name: str) -> float | None:
        """% of the nucleated white cells (erythroblasts: per 100 white cells); None for
        platelets and artefacts, which are counted but are not white cells."""
        from ml.labels import NUCLEATED_WHITE

        if name not in NUCLEATED_WHITE and name != "erythroblast":
            return None
        return round(100 * self.counts.get(name, 0) / self.nucleated, 1) if self.nucleated else None

    def rows(self) -> list[dict[str, Any]]:
        from ml.labels import CELL_TYPE_DISPLAY, CELL_TYPES

        return [
            {"label": name, "name": CELL_TYPE_DISPLAY.get(name, name), "count": self.counts.get(name, 0),
             "percent": self.percent(name)}
            for name in CELL_TYPES
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "nucleated": self.nucleated,
            "blasts": self.blasts,
            "blast_fraction": self.blast_fraction,
            "unidentified": self.unidentified,
        }


@dataclass(frozen=True)
class Agreement:
    """The AI's cell calls against the reviewed differential, over the cells the AI
    classified and that have a class in the reviewed one."""

    compared: int
    unchanged: int
    kappa: float | None  # Cohen's kappa (ml.metrics); None when undefined (fewer than two classes)

    @property
    def percent_unchanged(self) -> float | None:
        return round(100 * self.unchanged / self.compared, 1) if self.compared else None

    def to_dict(self) -> dict[str, Any]:
        return {"compared": self.compared, "unchanged": self.unchanged,
                "percent_unchanged": self.percent_unchanged, "kappa": self.kappa}


def differential_target(specimen: str) -> int:
    """The lab's count target for a reviewed differential (settings: marrow, blood)."""
    if specimen == Specimen.BONE_MARROW:
        return settings.DIFFERENTIAL_TARGET_MARROW
    return settings.DIFFERENTIAL_TARGET_BLOOD


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
    cells: tuple[CellRow, ...] = field(default=(), repr=False)  # the white cells of the analysed images
    signed_result: SignedResult | None = None  # the newest signed version; the AI's figures stay beside it

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
    def result_source(self) -> str:
        """Whose result a surface shows first: "signed" once a version is signed, else "ai"."""
        return "signed" if self.signed_result is not None else "ai"

    @property
    def per_class(self) -> dict[str, int]:
        """Images per current label (signed > reviewed > AI)."""
        return dict(sorted(Counter(row.label for row in self.included).items()))

    def _cell_sum(self, kind: str) -> int:
        return sum(int(row.cell_counts.get(kind, 0)) for row in self.included)

    # --- the cell differential ------------------------------------------------

    @property
    def counted_cells(self) -> tuple[CellRow, ...]:
        """The cells the differentials count: those of images nobody excluded."""
        excluded = {row.image_id for row in self.images if row.excluded}
        return tuple(cell for cell in self.cells if cell.image_id not in excluded)

    @property
    def ai_differential(self) -> Differential:
        from ml.labels import CELL_TYPES

        counts = dict.fromkeys(CELL_TYPES, 0)
        unclassified = 0
        for cell in self.counted_cells:
            if cell.added:
                continue
            if cell.ai_label in counts:
                counts[cell.ai_label] += 1
            else:
                unclassified += 1
        return Differential(counts=counts, unidentified=unclassified)

    @property
    def reviewed_differential(self) -> Differential:
        from ml.labels import CELL_TYPES

        counts = dict.fromkeys(CELL_TYPES, 0)
        unidentified = 0
        for cell in self.counted_cells:
            label = cell.label
            if label in counts:
                counts[label] += 1
            else:
                unidentified += 1
        return Differential(counts=counts, unidentified=unidentified)

    @property
    def cell_decisions(self) -> int:
        """Cells with a reviewer's decision (reclassified, confirmed, marked artefact or added)."""
        return sum(1 for cell in self.counted_cells if cell.reviewed_label is not None)

    @property
    def cells_reviewed(self) -> bool:
        return self.cell_decisions > 0

    @property
    def blast_source(self) -> str:
        """Where the blast %, the WHO flag and the signed figures come from: "reviewed" cells, else the "ai"."""
        return "reviewed" if self.cells_reviewed else "ai"

    @property
    def cell_target(self) -> int:
        return differential_target(self.specimen)

    @property
    def agreement(self) -> Agreement:
        from ml.labels import CELL_TYPES

        pairs = [(cell.ai_label, cell.label) for cell in self.counted_cells
                 if not cell.added and cell.ai_label in CELL_TYPES and cell.label in CELL_TYPES]
        unchanged = sum(1 for ai, reviewed in pairs if ai == reviewed)
        kappa = None
        if len({label for pair in pairs for label in pair}) >= 2:
            from ml.metrics import kappa_score

            index = {name: i for i, name in enumerate(CELL_TYPES)}
            kappa = round(kappa_score([index[r] for _, r in pairs], [index[a] for a, _ in pairs],
                                      labels=list(range(len(CELL_TYPES)))), 4)
        return Agreement(compared=len(pairs), unchanged=unchanged, kappa=kappa)

    # --- blasts ---------------------------------------------------------------

    @property
    def blasts(self) -> int | None:
        """Blasts over the images where a cell model ran; None (not determined) when none did.
        Once cells are reviewed: the reviewed differential's blasts."""
        if self.cells_reviewed:
            return self.reviewed_differential.blasts
        determined = [row for row in self.included if row.blasts is not None]
        return sum(row.blasts for row in determined) if determined else None

    @property
    def blast_wbc(self) -> int | None:
        """The blast % denominator: white cells of the images a cell model ran on; once cells
        are reviewed, the nucleated white cells of the reviewed differential."""
        if self.cells_reviewed:
            return self.reviewed_differential.nucleated
        determined = [row for row in self.included if row.blasts is not None]
        return sum(int(row.cell_counts.get("wbc", 0)) for row in determined) if determined else None

    @property
    def blast_fraction(self) -> float | None:
        wbc = self.blast_wbc
        return round(self.blasts / wbc, 4) if self.blasts is not None and wbc else None

    @property
    def blast_percent(self) -> float | None:
        """One decimal, from the counts themselves (rounding the 4-decimal fraction again could move
        the last digit: 27 of 41 is 65.9 %, not 65.8 %); every surface shows this figure."""
        blasts, wbc = self.blasts, self.blast_wbc
        return round(100 * blasts / wbc, 1) if blasts is not None and wbc else None

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
            "blast_percent": self.blast_percent,
            "blast_validated": self.blast_validated,
            "who_threshold": settings.WHO_BLAST_THRESHOLD,
            "who_flag": self.who_flag,
            "demo": self.demo,
            "image_model_demo": self.image_model_demo,
            "cell_model_demo": self.cell_model_demo,
            **self.cell_summary(),
        }

    def cell_summary(self) -> dict[str, Any]:
        """The differentials, their agreement and the count against the lab's target."""
        reviewed = self.reviewed_differential
        return {
            "blast_source": self.blast_source,
            "differential": reviewed.to_dict(),
            "ai_differential": self.ai_differential.to_dict(),
            "agreement": self.agreement.to_dict(),
            "cell_decisions": self.cell_decisions,
            "cells_counted": reviewed.nucleated,
            "cell_target": self.cell_target,
            "below_cell_target": reviewed.nucleated < self.cell_target,
        }


#: ``build_case_record``'s default: read the case's newest sign-out.
NEWEST_SIGN_OUT = object()


def build_case_record(case: Case, *, sign_out: Any = NEWEST_SIGN_OUT) -> CaseRecord:
    """The record of ``case`` from the database (six queries whatever the number of images or cells).

    ``sign_out``: whose snapshot gives the signed labels: the newest (default), a given
    ``SignOut`` (a report of that version) or None (as if never signed: a draft)."""
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
    # The white cells of each image's newest analysis, with the reviewers' decisions on them
    # (review.CellReview, read through the reverse relation ``Cell.reviews``).
    cells_by_analysis: dict[int, list[Cell]] = {}
    cell_rows = (
        Cell.objects.filter(analysis__image__case=case, kind="wbc")
        .order_by("analysis_id", "index")
        .prefetch_related("reviews__reviewer")
    )
    for cell in cell_rows:
        cells_by_analysis.setdefault(cell.analysis_id, []).append(cell)
    # Reviews and sign-outs are the review app's models; the core reads them through the
    # reverse relations Django puts on SlideImage and Case, and never imports that app.
    if sign_out is NEWEST_SIGN_OUT:
        sign_out = case.sign_outs.select_related("signed_by").order_by("-version").first()
    signed_labels = (sign_out.labels or {}) if sign_out else {}
    rows = []
    cells: list[CellRow] = []
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
            reviewed_label=(review.label or None) if review else None,
            # signed > reviewed, as for the label and the comment
            reviewer=signed_row["reviewer"] if "reviewer" in signed_row else (person_name(review.reviewer) if review else None),
            reviewed=review is not None,
            image=image,
            sha256=image.sha256,
            signed_label=signed_row.get("label"),
            comment=signed_row["comment"] if "comment" in signed_row else (review.comment if review else ""),
            cell_counts={k: int(v) for k, v in (analysis.cell_counts or {}).items()} if analysis else {},
            blasts=analysis.blasts if analysis else None,
            demo=demo,
            exclusion=exclusion,
            excluded_by=excluded_by if exclusion else None,
        ))
        if analysis is not None and image.status == ImageStatus.DONE:
            cells.extend(_cell_row(image, cell) for cell in cells_by_analysis.get(analysis.pk, ()))
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
        signer=(sign_out.signer_name or person_name(sign_out.signed_by)) if sign_out else None,
        signed_at=sign_out.signed_at if sign_out else None,
        models=tuple(sorted(models.values(), key=lambda m: (m.task != "image", m.name))),
        signed_result=signed_result(sign_out),
        cells=tuple(cells),
    )


def _cell_row(image: SlideImage, cell: Cell) -> CellRow:
    decisions = sorted(cell.reviews.all(), key=lambda r: r.version, reverse=True)
    newest = decisions[0] if decisions else None
    return CellRow(
        cell_id=cell.pk,
        image_id=image.pk,
        position=image.position,
        index=cell.index,
        bbox=tuple(int(v) for v in cell.bbox),
        ai_label=cell.ai_label,
        confidence=None if cell.confidence is None else float(cell.confidence),
        low_confidence=cell.low_confidence,
        reviewed_label=newest.label if newest else None,
        version=newest.version if newest else 0,
        added=any(d.action == "added" for d in decisions),
        reviewer=person_name(newest.reviewer) if newest else None,
    )



def case_figures(case: Case, record: CaseRecord | None = None) -> dict[str, Any]:
    """The record's summary with the display figures every surface shows
    (the case and review pages, the API summary, the sign-out snapshot, the
    report and the assistant): always built from the database, never a stale copy."""
    from ml.gates import NOT_VALIDATED_LABEL

    record = record or build_case_record(case)
    figures = record.summary()
    figures["blast_percent"] = record.blast_percent
    # A blast % from reviewed cells is the reviewer's count, not the model's estimate.
    figures["blast_qualifier"] = "" if record.blast_validated or record.cells_reviewed else NOT_VALIDATED_LABEL
    figures["blast_gate_reasons"] = list(record.blast_gate_reasons)
    figures["who_threshold_percent"] = round(100 * settings.WHO_BLAST_THRESHOLD)
    figures["signed"] = record.signed
    figures["signer"] = record.signer
    # Signed versus AI: the figures above are the AI's (and the reviews'); the signed version, when
    # there is one, is the result, and every surface shows it first.
    figures["result_source"] = record.result_source
    figures["signed_result"] = record.signed_result.as_dict() if record.signed_result else None
    return figures
