"""PDF reports: their lifecycle (drafts, finals, versions), over ``reports.content``
(what a report states), ``reports.rendering`` (the PDF) and ``reports.verification``
(checking a paper copy).

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

import hashlib
import logging
import time
import uuid

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from diagnostics import access, audit
from diagnostics.models import AuditEvent, Case
from marrowfind import dispatch
from reports.content import collect_report_content
from reports.models import Report, ReportStatus
from reports.rendering import attach_thumbnails, render_report_pdf

log = logging.getLogger(__name__)



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
