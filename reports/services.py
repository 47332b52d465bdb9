"""PDF reports: their lifecycle (drafts, finals, versions), over ``reports.content``
(what a report states), ``reports.rendering`` (the PDF) and ``reports.verification``
(checking a paper copy).

Lifecycle
---------
* A **draft** can be asked for at any time by a lab member
  (``request_draft_report``): a ``Report`` row is saved at once in the
  ``rendering`` state and the Celery task ``reports.tasks.render_draft_report``
  is sent to the ``cpu`` queue, so no PDF is ever rendered in a web process.
  The request waits a moment (``wait_for_draft``) and otherwise answers a page
  that polls. A second request while one renders (a double-click) joins that
  draft (``one_rendering_draft_per_case``); a worker takes the render by a
  conditional UPDATE (``claim_draft_render``), so a repeated or redelivered
  message renders it once. A render that fails, or that no worker finishes in
  time, becomes ``failed`` with its reason (``refresh_draft``).
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
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from diagnostics import access, audit, liveness
from diagnostics.models import AuditEvent, Case
from marrowfind import dispatch
from reports.content import collect_report_content
from reports.models import RenderState, Report, ReportStatus
from reports.rendering import attach_thumbnails, render_report_pdf

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- lifecycle


def _build(case: Case, *, status: str, version: int, signed_by=None, signed_at=None, created_by=None,
           report_id: uuid.UUID | None = None) -> Report:
    """Collect, render and hash a report (not saved)."""
    report_id = report_id or uuid.uuid4()
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
    """A draft of the next version rendered here and now, for scripts and benchmarks
    (``bench/pipeline.py``). The site and the API use :func:`request_draft_report`."""
    report = _build(case, status=ReportStatus.DRAFT, version=case.sign_out_version + 1, created_by=user)
    report.rendered_at = timezone.now()
    with transaction.atomic():
        report.save(force_insert=True)
        audit.record(AuditEvent.Verb.REPORT_CREATED, actor=user, case=case, obj=report,
                     version=report.version, status=report.status, sha256=report.sha256)
    return report


# --------------------------------------------------------------------------- drafts on the cpu queue


def _rendering_draft(case_id: int) -> Report | None:
    return (Report.objects.defer("pdf")
            .filter(case_id=case_id, status=ReportStatus.DRAFT, render_state=RenderState.RENDERING).first())


def request_draft_report(case: Case, user) -> Report:
    """Ask for a draft of the next version: saved now as ``rendering`` and sent to
    the ``cpu`` queue when the transaction commits. While one is rendering, that one
    is returned instead (a double-click makes one render)."""
    current = _rendering_draft(case.pk)
    if current is not None:
        current = refresh_draft(current)  # a stuck one fails here and makes way for a new one
        if current.render_state == RenderState.RENDERING:
            return current
    report = Report(case=case, version=case.sign_out_version + 1, status=ReportStatus.DRAFT,
                    render_state=RenderState.RENDERING, pdf=b"", sha256="", created_by=user)
    try:
        with transaction.atomic():
            report.save(force_insert=True)
            dispatch.render_draft_report(str(report.pk))
    except IntegrityError:
        # Another request of the same case inserted its draft first (one_rendering_draft_per_case).
        current = _rendering_draft(case.pk)
        if current is None:
            raise
        return current
    return report


def _task_prefix(token: str) -> str:
    return token.split("@", 1)[0] + "@"


def claim_draft_render(report_id, token: str) -> bool:
    """Take the render of a draft by conditional UPDATE (``token``: ``diagnostics.pipeline.claim_token``).

    Taken when it is ``rendering`` and unclaimed, claimed by this same task (a retry), or
    claimed so long ago (``STUCK_IMAGE_AFTER_S``) that the claimant cannot still be at it.
    False otherwise: another worker has it, or it is finished."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S)
    return bool(
        Report.objects.filter(pk=report_id, status=ReportStatus.DRAFT, render_state=RenderState.RENDERING)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale) | Q(claimed_by__startswith=_task_prefix(token)))
        .update(claimed_at=now, claimed_by=token)
    )


def render_draft(report_id, token: str) -> Report | None:
    """Render a claimed draft and store its PDF (conditional on still holding the claim).
    None when the draft was not claimed or the claim was lost meanwhile."""
    if not claim_draft_render(report_id, token):
        return None
    draft = Report.objects.defer("pdf").select_related("case", "case__lab", "created_by").get(pk=report_id)
    built = _build(draft.case, status=ReportStatus.DRAFT, version=draft.version, created_by=draft.created_by,
                   report_id=draft.pk)
    with transaction.atomic():
        stored = Report.objects.filter(pk=draft.pk, render_state=RenderState.RENDERING, claimed_by=token).update(
            pdf=built.pdf, sha256=built.sha256, content_sha256=built.content_sha256, demo=built.demo,
            render_state=RenderState.READY, render_error="", rendered_at=timezone.now(),
        )
        if not stored:
            log.warning("draft report %s: the claim was lost while rendering; the PDF is dropped", draft.pk)
            return None
        audit.record(AuditEvent.Verb.REPORT_CREATED, actor=draft.created_by, case=draft.case, obj=draft,
                     version=draft.version, status=draft.status, sha256=built.sha256)
    draft.refresh_from_db()
    return draft


def fail_draft(report_id, reason: str, *, token: str | None = None) -> bool:
    """Mark a rendering draft ``failed`` with ``reason`` (only while ``token`` holds it, when given)."""
    rows = Report.objects.filter(pk=report_id, status=ReportStatus.DRAFT, render_state=RenderState.RENDERING)
    if token is not None:
        rows = rows.filter(claimed_by=token)
    return bool(rows.update(render_state=RenderState.FAILED, render_error=reason[:500]))


def _stuck_reason(draft: Report, now) -> str | None:
    """Why a ``rendering`` draft will never be finished, or None while it still may be."""
    stale = now - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S)
    minutes = max(1, round(settings.STUCK_IMAGE_AFTER_S / 60))
    if draft.claimed_at is None:
        if draft.created_at < stale:
            return (f"No worker started rendering it within {minutes} min (the cpu-queue workers are busy "
                    "or down); make a new draft, and tell your lab admin if this happens again.")
        return None
    if draft.claimed_at < stale:
        return f"The render did not finish within {minutes} min; make a new draft."
    grace = now - timedelta(seconds=settings.WORKER_DEAD_AFTER_S)
    if draft.claimed_at < grace and liveness.is_gone(draft.claimed_by.split("@", 1)[-1]):
        return "The worker rendering it stopped; make a new draft."
    return None


def refresh_draft(draft: Report) -> Report:
    """The draft as it is now; one that is stuck (no worker took it, its worker is gone,
    or it ran past every limit) is marked ``failed`` with the reason first. The change is
    conditional on the claim read, so a worker that takes it meanwhile keeps it."""
    draft = Report.objects.defer("pdf").get(pk=draft.pk)
    if draft.render_state != RenderState.RENDERING:
        return draft
    reason = _stuck_reason(draft, timezone.now())
    if reason is not None:
        Report.objects.filter(
            pk=draft.pk, render_state=RenderState.RENDERING, claimed_by=draft.claimed_by, claimed_at=draft.claimed_at
        ).update(render_state=RenderState.FAILED, render_error=reason)
        draft = Report.objects.defer("pdf").get(pk=draft.pk)
    return draft


def wait_for_draft(draft: Report, timeout_s: float | None = None, *, poll_s: float = 0.1) -> Report:
    """Wait up to ``timeout_s`` (``REPORT_DRAFT_WAIT_S``) for a worker to finish the draft;
    returns it as it is then. Inside a transaction the task has not been sent yet (it goes
    at commit), so there is nothing to wait for."""
    timeout_s = settings.REPORT_DRAFT_WAIT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while True:
        state = Report.objects.filter(pk=draft.pk).values_list("render_state", flat=True).first()
        if state != RenderState.RENDERING or connection.in_atomic_block or time.monotonic() >= deadline:
            return refresh_draft(draft)
        time.sleep(poll_s)


def draft_of(case: Case, report_id) -> Report:
    """The case's draft ``report_id``, refreshed (``Report.DoesNotExist`` when the case has none such)."""
    return refresh_draft(Report.objects.defer("pdf").get(case=case, pk=report_id, status=ReportStatus.DRAFT))


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
    """Reports (with their PDF) of the cases ``user`` can see (``diagnostics.access``): another
    lab's report is a 404, and so is a draft whose PDF is not rendered."""
    return Report.objects.filter(case__in=access.cases_for(user), render_state=RenderState.READY)


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


@dataclass(frozen=True)
class MissingFinalReport:
    version: int
    error: str  # the last failed render's error, "" when none was recorded yet
    failed_at: datetime | None


def missing_final_report(case: Case) -> MissingFinalReport | None:
    """For a signed-out case without the final report of its current sign-out: what the
    lab is told (the last render's error, if one failed). None when nothing is missing."""
    from diagnostics.models import CaseStatus, TaskRun

    if case.status != CaseStatus.SIGNED_OUT or not case.sign_out_version:
        return None
    if case.reports.filter(version=case.sign_out_version).exclude(status="draft").exists():
        return None
    failed = (TaskRun.objects.filter(case=case, task_name="render_final_report", ok=False)
              .order_by("-started_at").first())
    return MissingFinalReport(case.sign_out_version, failed.error if failed else "", failed.started_at if failed else None)
