"""The database's view of the pipeline now: recent failures with their reasons
(``AuditEvent`` "analysis_failed", failed ``TaskRun`` rows), counts per status,
the active cases, and which worker holds which image claims."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from diagnostics.models import (
    AuditEvent,
    Case,
    CaseStatus,
    ImageStatus,
    SlideImage,
    TaskRun,
)
from monitoring.timings import DEFAULT_WINDOW, window_bounds

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- failures


@dataclass
class ImageFailure:
    at: datetime
    case_id: int | None
    accession_number: str
    lab: str
    image_id: int | None
    position: int | None
    filename: str
    code: str
    reason: str
    attempts: int | None  # times a worker took the image (SlideImage.attempts)
    status_now: str  # the image's status today (a later run may have finished it)


@dataclass
class TaskFailure:
    at: datetime
    task_name: str
    worker: str
    queue: str
    case_id: int | None
    retries: int  # Celery's retry number of this run (0 = first run)
    will_retry: bool
    error: str


def recent_image_failures(limit: int = 20) -> list[ImageFailure]:
    """The newest images that failed, with the reason the worker recorded and how
    many times the image was taken (a bad image is never retried: 1)."""
    events = list(
        AuditEvent.objects.filter(verb=AuditEvent.Verb.ANALYSIS_FAILED)
        .select_related("case__lab")
        .order_by("-created_at", "-id")[:limit]
    )
    image_ids = [int(e.object_id) for e in events if e.object_type == "SlideImage" and e.object_id.isdigit()]
    images = {row["pk"]: row for row in SlideImage.objects.filter(pk__in=image_ids).values("pk", "attempts", "status")}
    failures = []
    for event in events:
        detail = event.detail or {}
        image_id = int(event.object_id) if event.object_id.isdigit() else None
        image = images.get(image_id, {})
        failures.append(
            ImageFailure(
                at=event.created_at,
                case_id=event.case_id,
                accession_number=event.case.accession_number if event.case else "",
                lab=event.case.lab.name if event.case else "",
                image_id=image_id,
                position=detail.get("position"),
                filename=str(detail.get("filename", "")),
                code=str(detail.get("code", "")),
                reason=str(detail.get("reason", "")),
                attempts=image.get("attempts"),
                status_now=image.get("status", "deleted"),
            )
        )
    return failures


def recent_task_failures(limit: int = 20) -> list[TaskFailure]:
    """The newest task runs that ended in an error (including those that were
    retried afterwards: ``will_retry``), with Celery's retry number."""
    failures = []
    for run in TaskRun.objects.filter(ok=False).order_by("-started_at", "-id")[:limit]:
        failures.append(
            TaskFailure(
                at=run.finished_at or run.started_at,
                task_name=run.task_name,
                worker=run.worker,
                queue=run.queue,
                case_id=run.case_id,
                retries=run.retries,
                will_retry="(will retry)" in run.error,
                error=run.error,
            )
        )
    return failures


def failure_counts(window: str = DEFAULT_WINDOW, *, now: datetime | None = None) -> dict[str, int]:
    start, end, _ = window_bounds(window, now)
    runs = TaskRun.objects.filter(started_at__gte=start, started_at__lt=end)
    return {
        "failed_images": AuditEvent.objects.filter(
            verb=AuditEvent.Verb.ANALYSIS_FAILED, created_at__gte=start, created_at__lt=end
        ).count(),
        "task_errors": runs.filter(ok=False).count(),
        "retried_runs": runs.filter(retries__gt=0).count(),
    }


# --------------------------------------------------------------------------- the database's view of now


def pipeline_counts() -> dict[str, Any]:
    """Images and cases by status, right now."""
    images = dict(SlideImage.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    cases = dict(Case.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "images": {status: images.get(status, 0) for status in ImageStatus.values},
        "cases": {status: cases.get(status, 0) for status in CaseStatus.values},
    }


def active_cases(limit: int = 20) -> list[dict[str, Any]]:
    """Cases that are queued or processing, with done/total, oldest first."""
    rows = (
        Case.objects.filter(status__in=[CaseStatus.QUEUED, CaseStatus.PROCESSING])
        .select_related("lab")
        .annotate(
            total=Count("images"),
            done=Count("images", filter=Q(images__status=ImageStatus.DONE)),
            failed=Count("images", filter=Q(images__status=ImageStatus.FAILED)),
            processing=Count("images", filter=Q(images__status=ImageStatus.PROCESSING)),
        )
        .order_by("created_at")[:limit]
    )
    return [
        {
            "id": case.pk,
            "accession_number": case.accession_number,
            "lab": case.lab.name,
            "status": case.status,
            "status_display": case.get_status_display(),
            "total": case.total,
            "done": case.done,
            "failed": case.failed,
            "processing": case.processing,
            "percent": round(100.0 * (case.done + case.failed) / case.total, 1) if case.total else 0.0,
            "started_at": case.processing_started_at,
        }
        for case in rows
    ]


def recent_workers(minutes: int = 15, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Workers that recorded a task run in the last ``minutes``, from the database:
    the fallback for "live workers" where the broker has no remote control."""
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    rows = (
        TaskRun.objects.filter(started_at__gte=since)
        .exclude(worker="")
        .values("worker")
        .annotate(runs=Count("id"), errors=Count("id", filter=Q(ok=False)), last_seen=Max("finished_at"))
        .order_by("-last_seen")
    )
    queues: dict[str, set[str]] = defaultdict(set)
    for worker, queue in TaskRun.objects.filter(started_at__gte=since).exclude(worker="").values_list("worker", "queue").distinct():
        if queue:
            queues[worker].add(queue)
    return [{**row, "queues": sorted(queues[row["worker"]])} for row in rows]


def claims_by_worker(*, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Images held right now by each worker, from the database claims
    (``SlideImage.claimed_by`` is "<task id>@<worker name>").

    This is what a worker runs even when it cannot answer remote control (a
    solo-pool worker only answers between tasks), and claims held by a worker
    that no longer answers are the ones the sweeper will give back.
    """
    from diagnostics.services.cases import STAGE_CLASSIFY, STAGE_SEGMENT

    now = now or timezone.now()
    held: dict[str, dict[str, Any]] = {}
    rows = (
        SlideImage.objects.filter(status=ImageStatus.PROCESSING, stage__in=[STAGE_CLASSIFY, STAGE_SEGMENT])
        .exclude(claimed_by="")
        .values_list("claimed_by", "stage", "claimed_at")
    )
    for claimed_by, stage, claimed_at in rows:
        task_id, _, worker = claimed_by.partition("@")
        entry = held.setdefault(worker or "?", {"images": 0, "stages": defaultdict(int), "tasks": set(), "oldest_s": 0.0})
        entry["images"] += 1
        entry["stages"][stage] += 1
        entry["tasks"].add(task_id)
        if claimed_at is not None:
            entry["oldest_s"] = max(entry["oldest_s"], (now - claimed_at).total_seconds())
    return {
        worker: {
            "images": entry["images"],
            "stages": dict(entry["stages"]),
            "tasks": len(entry["tasks"]),
            "oldest_s": round(entry["oldest_s"], 1),
            "stale": entry["oldest_s"] > settings.STUCK_IMAGE_AFTER_S,
        }
        for worker, entry in sorted(held.items())
    }
