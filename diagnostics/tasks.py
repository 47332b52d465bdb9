"""Celery tasks of the analysis pipeline (thin over diagnostics.pipeline and ml/).

Queues (routes in settings.CELERY_TASK_ROUTES): ``classify_chunk`` runs on
``gpu``; ``process_case``, ``segment_image`` and ``requeue_stuck_images`` on
``cpu``; ``make_tiles`` (the viewer's Deep Zoom tiles, sent once an image is
segmented) on ``cpu`` too.

Reliability settings, and why:

* ``acks_late`` + ``reject_on_worker_lost`` (settings): a message is only
  acknowledged after its task ran, so a killed worker's chunk is delivered
  again; the database claims in diagnostics.pipeline make the second run a no-op
  for images that were finished.
* Transient faults (the database or the broker blinks) are retried with
  exponential backoff and jitter, up to ``max_retries``; a bad image is never
  retried (``ImageLoadError`` fails that image alone, inside the pipeline).
* Soft/hard time limits come from settings (``CELERY_TASK_SOFT_TIME_LIMIT``,
  ``CELERY_TASK_TIME_LIMIT``); on the soft limit the pipeline marks the
  unfinished images failed with the reason.
* Every run writes a :class:`~diagnostics.models.TaskRun` row (timings,
  worker, queue, retries, ok/error) for the monitoring dashboard.

GPU workers: start them with ``--pool solo`` (or ``--pool threads``) so the
process that initialises CUDA never forks; the model is loaded per worker
process in ``worker_process_init`` (workers.signals).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from diagnostics import pipeline, sweeper, tiles
from diagnostics.models import Analysis, Case, TaskRun
from marrowfind import dispatch
from marrowfind.celery import app

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, BrokerOperationalError)
RETRY_OPTIONS: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 6,
}


class _Run:
    """What a task reports into its TaskRun row."""

    def __init__(self) -> None:
        self.case_id: int | None = None
        self.image_count = 0
        self.timings: dict[str, float] = {}
        self.error = ""


@contextlib.contextmanager
def task_run(task, name: str) -> Iterator[_Run]:
    """Record one execution of ``task`` as a TaskRun row, whether it succeeded,
    failed or is about to be retried (the error says which)."""
    run = _Run()
    started_at = timezone.now()
    started = time.perf_counter()
    error = ""
    try:
        yield run
    except BaseException as exc:
        will_retry = isinstance(exc, TRANSIENT_ERRORS) and task.request.retries < task.max_retries
        error = f"{exc.__class__.__name__}: {exc}"[:2000] + (" (will retry)" if will_retry else "")
        raise
    finally:
        _save_task_run(task, name, run, started_at, time.perf_counter() - started, error or run.error)


def _save_task_run(task, name: str, run: _Run, started_at, seconds: float, error: str) -> None:
    request = task.request
    delivery = getattr(request, "delivery_info", None) or {}
    timings = dict(run.timings)
    timings["task"] = round(seconds, 4)
    try:
        # A connection broken by the error being recorded must not break the recording.
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
        TaskRun.objects.create(
            task_name=name,
            task_id=request.id or "",
            queue=delivery.get("routing_key") or delivery.get("exchange") or "",
            worker=request.hostname or "",
            case_id=run.case_id if run.case_id and Case.objects.filter(pk=run.case_id).exists() else None,
            image_count=run.image_count,
            ok=not error,
            error=error,
            retries=request.retries or 0,
            timings=timings,
            started_at=started_at,
            finished_at=timezone.now(),
        )
    except Exception:
        logger.warning("could not record the TaskRun of %s %s", name, request.id, exc_info=True)


def _actor(task) -> str:
    return f"worker {task.request.hostname or 'local'}"


@app.task(bind=True, name="diagnostics.tasks.process_case", **RETRY_OPTIONS)
def process_case(self, case_id: int) -> int:
    """Move the case to processing and send its queued images in chunks to ``classify_chunk``."""
    with task_run(self, "process_case") as run:
        run.case_id = case_id
        from diagnostics.services.models import active_model_version

        version = active_model_version("image")
        if version is None:
            run.image_count = pipeline.fail_case_without_model(case_id, actor_label=_actor(self))
            run.error = "no active image model"
            return 0
        pipeline.start_case(case_id)
        chunks = pipeline.dispatch_queued_images(case_id)
        for chunk in chunks:
            classify_chunk.delay(chunk, version.pk)
        run.image_count = sum(len(chunk) for chunk in chunks)
        if not chunks:
            pipeline.finalize_case_if_complete(case_id, actor_label=_actor(self))
        return run.image_count


@app.task(bind=True, name="diagnostics.tasks.classify_chunk", **RETRY_OPTIONS)
def classify_chunk(self, image_ids: list[int], model_version_id: int | None = None) -> int:
    """Classify + CAM a chunk of images on the warm model; each result goes on to ``segment_image``."""
    with task_run(self, "classify_chunk") as run:
        outcome = pipeline.classify_chunk(
            image_ids,
            model_version_id,
            token=pipeline.claim_token(self.request.id, self.request.hostname or ""),
            actor_label=_actor(self),
            on_analysed=lambda analysis_id: segment_image.delay(analysis_id),
        )
        run.image_count = len(outcome.claimed)
        run.case_id = min(outcome.case_ids) if outcome.case_ids else None
        run.timings = outcome.timings
        run.error = outcome.error
        return len(outcome.analysed)


@app.task(bind=True, name="diagnostics.tasks.segment_image", **RETRY_OPTIONS)
def segment_image(self, analysis_id: int) -> str:
    """Segmentation, cell counts and overlay of one image; finalizes the case after its last image."""
    with task_run(self, "segment_image") as run:
        outcome = pipeline.segment_image(
            analysis_id,
            token=pipeline.claim_token(self.request.id, self.request.hostname or ""),
            actor_label=_actor(self),
        )
        run.case_id = outcome.case_id
        run.image_count = 0 if outcome.state == "skipped" else 1
        run.timings = outcome.timings
        run.error = outcome.error
        if outcome.state == "done":
            dispatch.make_tiles(analysis_id)
        return outcome.state


@app.task(bind=True, name="diagnostics.tasks.make_tiles", **RETRY_OPTIONS)
def make_tiles(self, analysis_id: int) -> int:
    """Deep Zoom pyramids (original, Grad-CAM, segmentation) of one analysed image for the viewer."""
    with task_run(self, "make_tiles") as run:
        run.case_id = Analysis.objects.filter(pk=analysis_id).values_list("image__case_id", flat=True).first()
        started = time.perf_counter()
        made = tiles.make_tiles(analysis_id)
        run.timings = {"tiles": round(time.perf_counter() - started, 4)}
        run.image_count = 1 if made.get("layers") else 0
        run.error = made.get("error", "")
        return sum(layer.get("tiles", 0) for layer in (made.get("layers") or {}).values())


@app.task(bind=True, name="diagnostics.tasks.finalize_case", **RETRY_OPTIONS)
def finalize_case(self, case_id: int) -> bool:
    """Re-check a case (idempotent); useful after manual repairs."""
    with task_run(self, "finalize_case") as run:
        run.case_id = case_id
        return pipeline.finalize_case_if_complete(case_id, actor_label=_actor(self))


@app.task(bind=True, name="diagnostics.tasks.requeue_stuck_images", **RETRY_OPTIONS)
def requeue_stuck_images(self) -> dict[str, int]:
    """Periodic (beat, settings.CELERY_BEAT_SCHEDULE): give back stale claims and re-send lost work."""
    with task_run(self, "requeue_stuck_images") as run:
        plan = sweeper.requeue_stuck_images()
        for case_id in plan.cases:
            process_case.delay(case_id)
        for analysis_id in plan.segment:
            segment_image.delay(analysis_id)
        for case_id, signer_id, version in plan.reports:
            dispatch.send(dispatch.RENDER_FINAL_REPORT, case_id, signer_id, version)
        for analysis_id in plan.tiles:
            dispatch.send(dispatch.MAKE_TILES, analysis_id)
        run.image_count = len(plan.segment) + len(plan.failed)
        if plan.cases or plan.segment or plan.failed or plan.reports or plan.tiles:
            logger.warning(
                "sweeper: re-sent %d case(s), %d segmentation(s), %d final report(s), %d viewer tile set(s); "
                "gave up on %d image(s) (stale after %d s)",
                len(plan.cases), len(plan.segment), len(plan.reports), len(plan.tiles), len(plan.failed),
                settings.STUCK_IMAGE_AFTER_S,
            )
        return {"cases": len(plan.cases), "segment": len(plan.segment), "failed": len(plan.failed),
                "reports": len(plan.reports), "tiles": len(plan.tiles)}
