"""PDF reports: content, rendering, versions, and verification by QR code.

Lifecycle
---------
* A **draft** can be made at any time by a lab member (``create_draft_report``).
* The **final** report is made at sign-out: the review area calls
  ``queue_final_report(case, signed_by)``, which sends the Celery task
  ``reports.tasks.render_final_report`` to the ``cpu`` queue once the
  transaction commits. An amendment signs version n+1; its report marks the
  earlier final report ``superseded`` (``Report.superseded_by``).
* A report is immutable: the PDF bytes and their SHA-256 are written in the
  same row, in one transaction, so a report and its hash commit together.
  Nothing is kept on disk except the thumbnails cache.

Verification
------------
The QR code holds ``{SITE_URL}/verify/<report id>/<code>``. A PDF cannot
contain its own hash, so ``<code>`` is the first 16 hex digits of the report's
*content digest*: the SHA-256 of the canonical JSON of everything the report
states (case, labels, counts, model, signer, time, report id), computed before
rendering and stored as ``Report.content_sha256``. Uploading a PDF to the
verify page compares the SHA-256 of its bytes with ``Report.sha256``, which
catches any change to the file, down to one byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from diagnostics import access, audit
from diagnostics.models import AuditEvent, Case, ImageStatus, ModelVersion, Specimen
from marrowfind import dispatch
from ml.labels import display_name
from reports import thumbnails
from reports.models import Report, ReportStatus
from review import services as review_service
from review.models import SignOut

log = logging.getLogger(__name__)

REPORT_TEMPLATE = "reports/report.html"
CODE_LENGTH = 16  # hex digits of the content digest in the QR code
THUMB_DISPLAY_PT = 46.0  # longest side of a thumbnail on the page (about 1.6 cm)
DEMO_WATERMARK = "DEMO MODEL, NOT FOR DIAGNOSIS"
DRAFT_WATERMARK = "DRAFT, NOT SIGNED OUT"

# Headline validation metrics, in the order the report lists them.
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
    overridden: bool
    wbc: int
    rbc: int
    platelet: int
    blasts: int | None
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
    signed_at: datetime | None
    created_by: str | None
    amendment_reason: str
    generated_at: datetime
    summary: dict[str, Any]
    distribution: list[dict[str, Any]]
    rows: list[ReportRow]
    models: list[ModelInfo]
    demo: bool
    digest: str = field(default="", init=False)

    @property
    def status_label(self) -> str:
        return ReportStatus(self.status).label.lower()

    @property
    def blast_percent(self) -> float | None:
        fraction = self.summary.get("blast_fraction")
        return 100 * fraction if isinstance(fraction, (int, float)) else None

    @property
    def who_percent(self) -> int:
        return round(100 * float(self.summary.get("who_threshold", settings.WHO_BLAST_THRESHOLD)))

    def canonical(self) -> dict[str, Any]:
        summary_keys = ("images", "analysed", "failed", "per_class", "cells", "wbc", "rbc", "platelet", "blasts",
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
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
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


def _person(user) -> str | None:
    if user is None:
        return None
    name = user.get_full_name()
    return f"{name} <{user.email}>" if name and user.email else (name or user.email or user.username)


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
        demo=version.is_demo,
        metrics=headline,
        per_class=per_class,
    )


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
) -> tuple[ReportContent, list[review_service.ImageReviewItem]]:
    """Read what the report states from the database.

    For a final report, the labels and summary come from the ``SignOut``
    row of that version (what the pathologist signed), when there is one;
    otherwise, and for drafts, from the current reviews. Returns the content
    (with its digest) and the review items, for :func:`attach_thumbnails`."""
    items = review_service.review_items(case)
    snapshot = _signed_snapshot(case, version) if status != ReportStatus.DRAFT else None
    signed_labels: dict[str, dict] = snapshot.labels if snapshot else {}
    summary = dict(snapshot.summary) if snapshot and snapshot.summary else review_service.case_figures(case)
    if snapshot is not None:
        signed_by = signed_by or snapshot.signed_by
        signed_at = signed_at or snapshot.signed_at

    rows: list[ReportRow] = []
    ai_counts: dict[str, int] = {}
    final_counts: dict[str, int] = {}
    class_order: list[str] = []
    models: dict[int, ModelVersion] = {}
    for item in items:
        image, analysis = item.image, item.analysis
        image.case = case  # thumbnails read the lab id from it; saves a query per image
        if analysis is not None:
            models.setdefault(analysis.model_version_id, analysis.model_version)
            if analysis.cell_model_version_id:
                models.setdefault(analysis.cell_model_version_id, analysis.cell_model_version)
            for name in analysis.model_version.class_names:
                if name not in class_order:
                    class_order.append(name)
        signed = signed_labels.get(str(image.pk))
        if signed is not None:
            review_label, reviewer = signed.get("label"), signed.get("reviewer")
        elif item.latest_review is not None:
            reviewer_user = item.latest_review.reviewer
            review_label = item.latest_review.label
            reviewer = reviewer_user.get_full_name() or reviewer_user.email or reviewer_user.username
        else:
            review_label, reviewer = None, None
        counts = (analysis.cell_counts or {}) if analysis else {}
        row = ReportRow(
            position=image.position,
            image_sha256=image.sha256,
            filename=image.original_filename,
            status=image.status,
            error=image.error,
            ai_label=display_name(analysis.label) if analysis else None,
            ai_probability=float(analysis.confidence) if analysis else None,
            low_confidence=bool(analysis and analysis.low_confidence),
            review_label=display_name(review_label) if review_label else None,
            reviewer=reviewer,
            overridden=bool(analysis and review_label and review_label != analysis.label),
            wbc=int(counts.get("wbc", 0)),
            rbc=int(counts.get("rbc", 0)),
            platelet=int(counts.get("platelet", 0)),
            blasts=analysis.blasts if analysis else None,
        )
        if analysis is not None and image.status == ImageStatus.DONE:
            ai_counts[analysis.label] = ai_counts.get(analysis.label, 0) + 1
            final = review_label or analysis.label
            final_counts[final] = final_counts.get(final, 0) + 1
        rows.append(row)

    names = class_order + sorted((set(ai_counts) | set(final_counts)) - set(class_order))
    distribution = [
        {"label": display_name(name), "ai": ai_counts.get(name, 0), "final": final_counts.get(name, 0)}
        for name in names
    ]
    demo = bool(summary.get("demo")) or any(m.is_demo for m in models.values())
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
        signed_by=_person(signed_by),
        signed_at=signed_at,
        created_by=_person(created_by),
        amendment_reason=snapshot.amendment_reason if snapshot else "",
        generated_at=timezone.now().replace(microsecond=0),
        summary=summary,
        distribution=distribution,
        rows=rows,
        models=[model_info(m) for m in sorted(models.values(), key=lambda m: (m.task != "image", m.name))],
        demo=demo,
    )
    content.compute_digest()
    return content, items


# --------------------------------------------------------------------------- rendering


def _display_size(path: Path) -> tuple[float, float]:
    """Page size (points) of a thumbnail, keeping its aspect ratio."""
    from PIL import Image

    with Image.open(path) as picture:
        width, height = picture.size
    scale = THUMB_DISPLAY_PT / max(width, height, 1)
    return round(width * scale, 1), round(height * scale, 1)


def attach_thumbnails(content: ReportContent, items: list) -> None:
    """Point each row at its cached thumbnails (made once per image, on first use)."""
    by_position = {row.position: row for row in content.rows}
    for item in items:
        row = by_position[item.image.position]
        made = thumbnails.make_thumbnails(item.image, item.analysis)
        if made.original is not None:
            row.thumb_original = str(made.original)
            row.thumb_original_w, row.thumb_original_h = _display_size(made.original)
        if made.cam is not None:
            row.thumb_cam = str(made.cam)
            row.thumb_cam_w, row.thumb_cam_h = _display_size(made.cam)


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def qr_png(text: str) -> bytes:
    """A QR code (error correction M) as PNG bytes, large enough to scan from a 150-dpi print."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(fill_color="black", back_color="white").save(buffer, format="PNG")
    return buffer.getvalue()


@lru_cache(maxsize=4)
def watermark_png(lines: tuple[str, ...]) -> bytes:
    """A page-sized, transparent PNG with ``lines`` written diagonally in pale red.

    xhtml2pdf cannot rotate text, but draws an ``@page`` background image on
    every page, so the watermark is an image."""
    from PIL import Image, ImageDraw, ImageFont

    page_w, page_h = 1240, 1754  # A4 at 150 dpi
    font = ImageFont.load_default(size=82)
    line_h = 110
    band = Image.new("RGBA", (2000, line_h * len(lines) + 40), (255, 255, 255, 0))
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((1000, 20 + line_h * i + line_h // 2), line, font=font, fill=(190, 30, 30, 52), anchor="mm")
    band = band.rotate(55, expand=True, resample=Image.Resampling.BICUBIC)
    page = Image.new("RGBA", (page_w, page_h), (255, 255, 255, 0))
    page.alpha_composite(band, ((page_w - band.width) // 2, (page_h - band.height) // 2))
    buffer = io.BytesIO()
    page.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _fonts() -> dict[str, str] | None:
    """DejaVu Sans from matplotlib's own data (a requirement already), so that
    µ, ≥ and names in any Latin, Greek or Cyrillic script print; None falls
    back to the built-in Helvetica."""
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:
        return None
    regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        return {"regular": str(regular), "bold": str(bold), "dir": str(folder)}
    return None


def verify_path(report_id: str, content_digest: str) -> str:
    return f"/verify/{report_id}/{content_digest[:CODE_LENGTH]}"


def verify_url_for(report_id: str, content_digest: str) -> str:
    return settings.SITE_URL + verify_path(report_id, content_digest)


def verify_url(report: Report) -> str:
    return verify_url_for(str(report.pk), report.content_sha256)


def render_report_pdf(content: ReportContent) -> bytes:
    """Lay out ``content`` as a PDF (xhtml2pdf). The content must carry its
    thumbnails (``attach_thumbnails``) and digest. Pure: no database writes.
    This is the function the pipeline benchmark times."""
    from xhtml2pdf import pisa
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    url = verify_url_for(content.report_id, content.digest)
    watermark_lines = tuple(
        line
        for line, wanted in ((DEMO_WATERMARK, content.demo), (DRAFT_WATERMARK, content.status == ReportStatus.DRAFT))
        if wanted
    )
    fonts = _fonts()
    html = render_to_string(
        REPORT_TEMPLATE,
        {
            "c": content,
            "report_id": content.report_id,
            "code": content.digest[:CODE_LENGTH],
            "verify_url": url,
            "qr": _png_data_uri(qr_png(url)),
            "watermark": _png_data_uri(watermark_png(watermark_lines)) if watermark_lines else None,
            "fonts": fonts,
        },
    )
    # Local reads only from the media folder (thumbnails) and the font folder; nothing remote.
    policy = ResourceAccessPolicy.server(
        base_dir=settings.MEDIA_ROOT,
        extra_roots=tuple(Path(p) for p in ([fonts["dir"]] if fonts else [])),
        allow_remote=False,
        max_resources=2 * len(content.rows) + 10,
        max_render_seconds=max(60, len(content.rows)),
        max_document_bytes=20 * 1024 * 1024,
    )
    out = io.BytesIO()
    result = pisa.CreatePDF(html, dest=out, encoding="utf-8", resource_policy=policy)
    if result.err:
        raise ReportRenderError(f"xhtml2pdf reported {result.err} error(s) rendering report {content.report_id}")
    return out.getvalue()


class ReportRenderError(RuntimeError):
    pass


# --------------------------------------------------------------------------- lifecycle


def _build(case: Case, *, status: str, version: int, signed_by=None, signed_at=None, created_by=None) -> Report:
    """Collect, render and hash a report (not saved)."""
    report_id = uuid.uuid4()
    content, items = collect_report_content(
        case,
        report_id=str(report_id),
        status=status,
        version=version,
        signed_by=signed_by,
        signed_at=signed_at,
        created_by=created_by,
    )
    attach_thumbnails(content, items)
    pdf = render_report_pdf(content)
    return Report(
        id=report_id,
        case=case,
        version=version,
        status=status,
        pdf=pdf,
        sha256=hashlib.sha256(pdf).hexdigest(),
        content_sha256=content.digest,
        created_by=created_by,
        signed_by=signed_by if status != ReportStatus.DRAFT else None,
        signed_at=content.signed_at if status != ReportStatus.DRAFT else None,
        demo=content.demo,
    )


def create_draft_report(case: Case, user) -> Report:
    """A draft of the next version, for a lab member to read before sign-out."""
    report = _build(case, status=ReportStatus.DRAFT, version=case.sign_out_version + 1, created_by=user)
    with transaction.atomic():
        report.save(force_insert=True)
        audit.record(AuditEvent.Verb.REPORT_CREATED, actor=user, case=case, obj=report,
                     version=report.version, status=report.status, sha256=report.sha256)
    return report


def create_final_report(case_id: int, signed_by_id: int | None, version: int) -> Report:
    """The final report of sign-out ``version`` (idempotent: a repeated task
    returns the report already made). Rendering happens outside the
    transaction, so the case row is locked only for the insert."""
    existing = final_report(case_id, version)
    if existing is not None:
        return existing
    case = Case.objects.select_related("lab").get(pk=case_id)
    signer = get_user_model().objects.filter(pk=signed_by_id).first() if signed_by_id else None
    signed_at = case.signed_out_at if case.sign_out_version == version else None
    report = _build(case, status=ReportStatus.FINAL, version=version, signed_by=signer,
                    signed_at=signed_at, created_by=signer)
    try:
        with transaction.atomic():
            Case.objects.select_for_update().filter(pk=case_id).first()
            newer = (
                Report.objects.filter(case_id=case_id, version__gt=version)
                .exclude(status=ReportStatus.DRAFT)
                .order_by("version")
                .first()
            )
            if newer is not None:  # a late task: a later version is already out
                report.status = ReportStatus.SUPERSEDED
                report.superseded_by = newer
            report.save(force_insert=True)
            (
                Report.objects.filter(case_id=case_id, version__lt=version, status=ReportStatus.FINAL).update(
                    status=ReportStatus.SUPERSEDED, superseded_by=report
                )
            )
            audit.record(AuditEvent.Verb.REPORT_CREATED, actor=signer, actor_label="" if signer else "worker",
                         case=case, obj=report, version=version, status=report.status, sha256=report.sha256,
                         demo=report.demo)
    except IntegrityError:
        # Another worker committed this version first (one_final_report_per_case_version).
        existing = final_report(case_id, version)
        if existing is None:
            raise
        return existing
    return report


def final_report(case_id: int, version: int) -> Report | None:
    return (
        Report.objects.filter(case_id=case_id, version=version)
        .exclude(status=ReportStatus.DRAFT)
        .first()
    )


def queue_final_report(case: Case, signed_by) -> None:
    """Send the final report of the case's current sign-out version to the
    ``cpu`` queue once the current transaction commits (at once outside one)."""
    case_id, signer_id, version = case.pk, getattr(signed_by, "pk", None), case.sign_out_version
    if version < 1:
        raise ValueError(f"case {case_id} has not been signed out: no final report to make")
    dispatch.render_final_report(case_id, signer_id, version)


def reports_for(user) -> QuerySet[Report]:
    """Reports of the cases ``user`` can see (``diagnostics.access``): another lab's report is a 404."""
    return Report.objects.filter(case__in=access.cases_for(user))


def reports_of(case: Case) -> QuerySet[Report]:
    """The case's reports, newest version first, without the PDF bytes."""
    return (
        Report.objects.filter(case=case)
        .defer("pdf")
        .select_related("signed_by", "created_by", "superseded_by")
        .order_by("-version", "-created_at")
    )


def record_download(report: Report, user) -> None:
    audit.record(AuditEvent.Verb.REPORT_DOWNLOADED, actor=user, case=report.case, obj=report,
                 version=report.version, status=report.status)


def download_filename(report: Report) -> str:
    from django.utils.text import slugify

    kind = "draft" if report.status == ReportStatus.DRAFT else "v"
    return f"marrowfind-{slugify(report.case.accession_number) or 'case'}-{kind}{report.version}.pdf"


# --------------------------------------------------------------------------- verification


class VerifyState(str, Enum):
    CURRENT = "current"  # authentic, the final report in force
    SUPERSEDED = "superseded"  # authentic, but a later version replaced it
    DRAFT = "draft"  # made by this site, but a draft: never a valid report
    UNKNOWN = "unknown"  # not a report this site issued (or altered)


@dataclass(frozen=True)
class Verification:
    state: VerifyState
    report: Report | None = None
    newer: Report | None = None  # the report in force when this one is superseded

    @property
    def authentic(self) -> bool:
        return self.state in (VerifyState.CURRENT, VerifyState.SUPERSEDED)


def _verdict(report: Report | None) -> Verification:
    if report is None:
        return Verification(VerifyState.UNKNOWN)
    if report.status == ReportStatus.DRAFT:
        return Verification(VerifyState.DRAFT, report)
    if report.status == ReportStatus.SUPERSEDED or report.superseded_by_id:
        newer = report.superseded_by
        while newer is not None and newer.superseded_by_id:  # follow to the one in force
            newer = newer.superseded_by
        return Verification(VerifyState.SUPERSEDED, report, newer)
    return Verification(VerifyState.CURRENT, report)


def _lookup() -> QuerySet[Report]:
    return Report.objects.defer("pdf").select_related("case", "case__lab", "signed_by", "superseded_by")


def check_code(report_id: str, code: str) -> Verification:
    """The QR code's claim: does report ``report_id`` exist with this content code?"""
    try:
        report = _lookup().get(pk=uuid.UUID(str(report_id)))
    except (Report.DoesNotExist, ValueError):
        return Verification(VerifyState.UNKNOWN)
    if not report.content_sha256 or not hmac.compare_digest(
        report.content_sha256[:CODE_LENGTH], str(code).lower()[:64]
    ):
        return Verification(VerifyState.UNKNOWN)
    return _verdict(report)


def check_pdf_bytes(data: bytes) -> Verification:
    """An uploaded file is authentic only if its SHA-256 is that of a report we issued."""
    digest = hashlib.sha256(data).hexdigest()
    return _verdict(_lookup().filter(sha256=digest).first())


def check_pdf_file(chunks) -> Verification:
    """Like :func:`check_pdf_bytes`, hashing an uploaded file chunk by chunk."""
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return _verdict(_lookup().filter(sha256=hasher.hexdigest()).first())


# --------------------------------------------------------------------------- benchmark


def time_report_render(case: Case, *, version: int | None = None) -> dict[str, float]:
    """Seconds per stage of making one report of ``case`` without saving it:
    ``collect`` (queries), ``thumbnails`` (cached after the first call),
    ``render`` (xhtml2pdf) and ``total`` (wall clock), ``cpu`` (CPU seconds of
    this process over the whole call); plus the PDF's size in ``bytes``
    and the number of ``images``. For the pipeline benchmark's per-stage figures."""
    timings: dict[str, float] = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    content, items = collect_report_content(
        case, report_id=str(uuid.uuid4()), status=ReportStatus.DRAFT, version=version or case.sign_out_version + 1
    )
    timings["collect"] = time.perf_counter() - start
    mark = time.perf_counter()
    attach_thumbnails(content, items)
    timings["thumbnails"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pdf = render_report_pdf(content)
    timings["render"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start
    timings["cpu"] = time.process_time() - cpu_start  # this process's CPU seconds: robust to a busy machine
    timings["bytes"] = float(len(pdf))
    timings["images"] = float(len(content.rows))
    return timings
