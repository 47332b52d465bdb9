"""What a report states, read once from the database: rows per image, the models, the
summary (the case record's figures, or the signed snapshot), and its canonical JSON, whose
SHA-256 is the content digest printed (16 hex digits) in the QR code."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from diagnostics.models import Case, ModelVersion, Specimen
from diagnostics.services.case_record import (
    Differential,
    ImageRow,
    build_case_record,
    case_figures,
    person_name,
    signed_result,
)
from diagnostics.services.models import is_demo_version
from ml.labels import display_name
from reports.models import ReportStatus
from review.models import SignOut
from review.signout import amendment_changes

log = logging.getLogger(__name__)


_METRIC_NAMES = (
    ("n", "n"),
    ("accuracy", "accuracy"),
    ("f1_weighted", "F1 (weighted)"),
    ("f1_macro", "F1 (macro)"),
    ("kappa", "Cohen's kappa"),
    ("roc_auc", "ROC AUC"),
    ("ece", "ECE"),
    ("split", "split"),
)


# --------------------------------------------------------------------------- content


@dataclass
class ReportRow:
    position: int
    image_sha256: str
    filename: str
    status: str
    error: str
    ai_label: str | None  # display name
    ai_probability: float | None
    low_confidence: bool
    review_label: str | None  # display name
    reviewer: str | None
    comment: str  # the reviewer's comment on this image (as signed, for a final report)
    overridden: bool
    wbc: int
    rbc: int
    platelet: int
    blasts: int | None
    # The reviewer took the image out of the figures as not assessable: the reason's display name.
    exclusion: str | None = None
    # Thumbnails: absolute paths and their size on the page (points); not part of the digest.
    thumb_original: str | None = None
    thumb_original_w: float = 0.0
    thumb_original_h: float = 0.0
    thumb_cam: str | None = None
    thumb_cam_w: float = 0.0
    thumb_cam_h: float = 0.0

    def canonical(self) -> dict[str, Any]:
        data = asdict(self)
        for key in list(data):
            if key.startswith("thumb_"):
                del data[key]
        if data["ai_probability"] is not None:
            data["ai_probability"] = round(data["ai_probability"], 4)
        return data


@dataclass
class ModelInfo:
    name: str
    arch: str
    task: str
    sha256: str
    demo: bool
    metrics: list[tuple[str, str]]
    per_class: list[dict[str, str]]

    @property
    def sha(self) -> str:
        return self.sha256[:16]


@dataclass
class ReportContent:
    """Everything a report states. Its canonical JSON is the content digest."""

    report_id: str
    case_id: int
    lab_name: str
    accession: str
    patient: str
    specimen: str
    is_marrow: bool
    stain: str
    clinical_note: str
    received: datetime
    version: int
    status: str  # ReportStatus value
    signed_by: str | None
    signer_credentials: str
    signed_at: datetime | None
    created_by: str | None
    amendment_reason: str
    generated_at: datetime
    summary: dict[str, Any]
    distribution: list[dict[str, Any]]
    rows: list[ReportRow]
    models: list[ModelInfo]
    demo: bool
    # The signed interpretation ({"text", "label", "subtype", "further_studies", "comment"}); None on a draft
    # and on a version signed before interpretations were asked for.
    diagnosis: dict[str, str] | None = None
    # What this version changed against the one it amends: [{"what", "before", "after"}].
    changes: list[dict[str, str]] = field(default_factory=list)
    # The cell differential, per cell type with cells: [{"name", "count", "percent", "ai"}] (reviewed counts
    # once any cell was decided on, summary["blast_source"] == "reviewed"; else the AI's).
    differential: list[dict[str, Any]] = field(default_factory=list)
    digest: str = field(default="", init=False)

    @property
    def signer_line(self) -> str:
        """The signer as printed: "Jane Doe, MD, FRCPath"."""
        return ", ".join(part for part in (self.signed_by, self.signer_credentials) if part)

    @property
    def excluded_rows(self) -> list[ReportRow]:
        return [row for row in self.rows if row.exclusion]

    @property
    def status_label(self) -> str:
        return ReportStatus(self.status).label.lower()

    @property
    def blast_percent(self) -> float | None:
        """The summary's own blast % (the case record's, from the counts); snapshots signed before
        it was stored: from the fraction."""
        percent = self.summary.get("blast_percent")
        if isinstance(percent, (int, float)):
            return float(percent)
        fraction = self.summary.get("blast_fraction")
        return 100 * fraction if isinstance(fraction, (int, float)) else None

    @property
    def who_percent(self) -> int:
        return round(100 * float(self.summary.get("who_threshold", settings.WHO_BLAST_THRESHOLD)))

    def canonical(self) -> dict[str, Any]:
        summary_keys = ("images", "analysed", "failed", "excluded", "per_class", "cells", "wbc", "rbc", "platelet", "blasts",
                        "blast_fraction", "who_flag", "low_confidence", "demo")
        return {
            "report_id": self.report_id,
            "lab": self.lab_name,
            "accession": self.accession,
            "patient": self.patient,
            "specimen": self.specimen,
            "stain": self.stain,
            "clinical_note": self.clinical_note,
            "version": self.version,
            "status": self.status,
            "signed_by": self.signed_by,
            "signer_credentials": self.signer_credentials,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "diagnosis": self.diagnosis,
            "changes": self.changes,
            "differential": self.differential,
            "amendment_reason": self.amendment_reason,
            "generated_at": self.generated_at.isoformat(),
            "summary": {key: self.summary.get(key) for key in summary_keys},
            "distribution": self.distribution,
            "images": [row.canonical() for row in self.rows],
            "models": [{"sha256": m.sha256, "metrics": m.metrics} for m in self.models],
            "demo": self.demo,
        }

    def compute_digest(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        self.digest = hashlib.sha256(text.encode("ascii")).hexdigest()
        return self.digest


def _format_metric(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str) and len(value) <= 40:
        return value
    return None


def model_info(version: ModelVersion) -> ModelInfo:
    """The model's identity and the validation metrics recorded with it
    (``ModelVersion.metrics``, written by the training run)."""
    metrics = version.metrics or {}
    headline = []
    for key, label in _METRIC_NAMES:
        shown = _format_metric(metrics.get(key))
        if shown is not None:
            headline.append((label, shown))
    binary = metrics.get("binary")
    if isinstance(binary, dict):
        for key, label in (("accuracy", "ALL-vs-normal accuracy"), ("roc_auc", "ALL-vs-normal ROC AUC")):
            shown = _format_metric(binary.get(key))
            if shown is not None:
                headline.append((label, shown))
    per_class = []
    if isinstance(metrics.get("per_class"), dict):
        for name, row in metrics["per_class"].items():
            if isinstance(row, dict):
                per_class.append(
                    {
                        "label": display_name(name),
                        **{k: _format_metric(row.get(k)) or "—" for k in ("precision", "recall", "f1", "support")},
                    }
                )
    return ModelInfo(
        name=version.name,
        arch=version.arch,
        task=version.task,
        sha256=version.sha256,
        demo=is_demo_version(version),
        metrics=headline,
        per_class=per_class,
    )


def _differential_of(value: Any) -> Differential | None:
    if not isinstance(value, dict) or not isinstance(value.get("counts"), dict):
        return None
    return Differential(counts={str(k): int(v) for k, v in value["counts"].items()},
                        unidentified=int(value.get("unidentified") or 0))


def differential_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The cell types with cells in the (reviewed) differential or the AI's, in ``CELL_TYPES`` order."""
    reviewed, ai = _differential_of(summary.get("differential")), _differential_of(summary.get("ai_differential"))
    if reviewed is None:
        return []
    ai_counts = ai.counts if ai is not None else {}
    return [
        {"name": row["name"], "count": row["count"], "percent": row["percent"], "ai": ai_counts.get(row["label"], 0)}
        for row in reviewed.rows()
        if row["count"] or ai_counts.get(row["label"], 0)
    ]


def _signed_snapshot(case: Case, version: int) -> SignOut | None:
    return SignOut.objects.filter(case=case, version=version).select_related("signed_by").first()


def collect_report_content(
    case: Case,
    *,
    report_id: str,
    status: str,
    version: int,
    signed_by=None,
    signed_at: datetime | None = None,
    created_by=None,
) -> tuple[ReportContent, tuple[ImageRow, ...]]:
    """Read what the report states from the database.

    For a final report, the labels and summary come from the ``SignOut``
    row of that version (what the pathologist signed), when there is one;
    otherwise, and for drafts, from the current reviews. Returns the content
    (with its digest) and the case record's image rows, for :func:`attach_thumbnails`."""
    snapshot = _signed_snapshot(case, version) if status != ReportStatus.DRAFT else None
    summary = dict(snapshot.summary) if snapshot and snapshot.summary else case_figures(case)
    signed = signed_result(snapshot)
    signer_name, signer_credentials = person_name(signed_by), ""
    diagnosis, changes = None, []
    if snapshot is not None:
        signed_by = signed_by or snapshot.signed_by
        signed_at = signed_at or snapshot.signed_at
        signer_name, signer_credentials = signed.signer, signed.signer_credentials  # as at the signature
        if signed.diagnosis:
            diagnosis = {"text": signed.diagnosis_text, "label": signed.diagnosis_label,
                         "subtype": signed.subtype_label, "further_studies": signed.further_studies,
                         "comment": signed.comment}
        changes = [{"what": c.what, "before": c.before, "after": c.after}
                   for c in amendment_changes(case, version, label_name=display_name)]

    # The images as this version states them: the case record read with this version's
    # snapshot (a final report) or with none (a draft: the current reviews).
    record = build_case_record(case, sign_out=snapshot)
    rows: list[ReportRow] = []
    ai_counts: dict[str, int] = {}
    final_counts: dict[str, int] = {}
    class_order: list[str] = []
    models: dict[int, ModelVersion] = {}
    for image_row in record.images:
        analysis = image_row.analysis
        image_row.image.case = case  # thumbnails read the lab id from it; saves a query per image
        if analysis is not None:
            models.setdefault(analysis.model_version_id, analysis.model_version)
            if analysis.cell_model_version_id:
                models.setdefault(analysis.cell_model_version_id, analysis.cell_model_version)
            for name in analysis.model_version.class_names:
                if name not in class_order:
                    class_order.append(name)
        review_label = None if image_row.excluded else (image_row.signed_label or image_row.reviewed_label)
        counts = image_row.cell_counts
        rows.append(ReportRow(
            position=image_row.position,
            image_sha256=image_row.sha256,
            filename=image_row.filename,
            status=image_row.status,
            error=image_row.error,
            ai_label=display_name(image_row.ai_label) if analysis else None,
            ai_probability=image_row.confidence,
            low_confidence=image_row.low_confidence,
            review_label=display_name(review_label) if review_label else None,
            reviewer=image_row.reviewer,
            comment=image_row.comment or "",
            overridden=bool(analysis and review_label and review_label != analysis.label),
            wbc=int(counts.get("wbc", 0)),
            rbc=int(counts.get("rbc", 0)),
            platelet=int(counts.get("platelet", 0)),
            blasts=image_row.blasts,
            exclusion=image_row.exclusion_label or None,
        ))
        if image_row.analysed and not image_row.excluded:
            ai_counts[analysis.label] = ai_counts.get(analysis.label, 0) + 1
            final = review_label or analysis.label
            final_counts[final] = final_counts.get(final, 0) + 1

    names = class_order + sorted((set(ai_counts) | set(final_counts)) - set(class_order))
    distribution = [
        {"label": display_name(name), "ai": ai_counts.get(name, 0), "final": final_counts.get(name, 0)}
        for name in names
    ]
    demo = bool(summary.get("demo")) or any(is_demo_version(m) for m in models.values())
    content = ReportContent(
        report_id=report_id,
        case_id=case.pk,
        lab_name=case.lab.name,
        accession=case.accession_number,
        patient=case.patient_pseudonym,
        specimen=case.get_specimen_display(),
        is_marrow=case.specimen == Specimen.BONE_MARROW,
        stain=case.stain,
        clinical_note=case.clinical_note,
        received=case.created_at,
        version=version,
        status=status,
        signed_by=signer_name,
        signer_credentials=signer_credentials,
        signed_at=signed_at,
        created_by=person_name(created_by),
        amendment_reason=snapshot.amendment_reason if snapshot else "",
        generated_at=timezone.now().replace(microsecond=0),
        summary=summary,
        distribution=distribution,
        rows=rows,
        models=[model_info(m) for m in sorted(models.values(), key=lambda m: (m.task != "image", m.name))],
        demo=demo,
        diagnosis=diagnosis,
        changes=changes,
        differential=differential_rows(summary),
    )
    content.compute_digest()
    return content, record.images
