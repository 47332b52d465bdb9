"""The analysis pipeline as plain functions over the models and ``ml/``.

Celery tasks (``diagnostics.tasks``) are thin wrappers over these, so the same
code runs in a worker, in a test, or in a benchmark's serial baseline.

Flow of one case::

    upload commits ──► process_case(case)            case -> processing; queued images sent in chunks
                         └► classify_chunk(ids, mv)  gpu: claim, decode, classify + CAM, CAM overlay,
                              │                           Analysis (one per image and model version)
                              └► segment_image(a)    cpu: segment, blasts (cell model), overlay, counts,
                                   │                      image -> done
                                   └► finalize_case_if_complete(case)
                                                     case -> awaiting_review when no image is pending,
                                                     by one conditional UPDATE (idempotent; no chord)

Why it never loses or duplicates work:

* **Claims.** An image is taken by a conditional UPDATE (``queued`` ->
  ``processing`` with a claim token; or a ``processing`` claim older than
  ``STUCK_IMAGE_AFTER_S``). A redelivered or duplicated message finds the row
  already taken and does nothing. The claim token starts with the Celery task
  id, so a retry of the same task may re-take its own images.
* **One Analysis per image and model version**, by a unique constraint and
  ``get_or_create``: a second run of a chunk reuses the first result.
* **Each image commits alone**, so a failure (or a killed worker) loses at
  most the image in hand, and a bad image fails alone with its reason.
* **The sweeper** (:func:`diagnostics.sweeper.requeue_stuck_images`) gives back images whose claim
  is stale (a worker died) and re-sends images whose message never ran.

``SlideImage.claimed_at`` is the time the image was last handed on: when its
message was sent (still ``queued``), claimed, or passed from classification to
segmentation. The sweeper measures staleness from it.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction
from django.db.models import DateTimeField, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from diagnostics import audit, model_cache
from diagnostics.models import (
    Analysis,
    AuditEvent,
    Case,
    CaseStatus,
    Cell,
    ImageStatus,
    ModelVersion,
    SlideImage,
)
from diagnostics.services.cases import (
    STAGE_CLASSIFIED,
    STAGE_CLASSIFY,
    STAGE_SEGMENT,
    summarise_case,
)
from ml.analysis import StageTimer, analyse_cells_of, classify_images

logger = logging.getLogger(__name__)

# Exceptions that are a fault of the infrastructure, not of the image: the
# task is retried (with backoff) instead of failing the image.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (DatabaseError,)
MAX_IMAGE_ATTEMPTS = 3
STAGES = ("decode", "classify_cam", "segmentation", "overlays", "db")
__all__ = [
    "ChunkOutcome",
    "StageTimer",
    "claim_token",
    "classify_chunk",
    "dispatch_queued_images",
    "fail_image",
    "finalize_case_if_complete",
    "segment_image",
    "start_case",
    "summarise_case",
]


# --------------------------------------------------------------------------- small helpers


def claim_token(task_id: str | None, worker: str = "") -> str:
    """``"<task id>@<worker>#<pid>"``: the task id part lets a retry of the same task re-take its
    claims; the worker part (``diagnostics.liveness``) lets the sweeper see that its worker is gone."""
    from diagnostics import liveness

    return f"{task_id or 'inline-' + uuid.uuid4().hex}@{liveness.worker_id(worker) if worker else 'local'}"[:200]


def _claims_of_gone_workers(now) -> list[str]:
    """Claims (older than a short grace) held by workers whose heartbeat has expired."""
    from diagnostics import liveness

    grace = now - timedelta(seconds=settings.WORKER_DEAD_AFTER_S)
    tokens = set(
        SlideImage.objects.filter(status=ImageStatus.PROCESSING, claimed_at__lt=grace)
        .exclude(claimed_by="")
        .values_list("claimed_by", flat=True)
    )
    return sorted(token for token in tokens if liveness.is_gone(token.split("@", 1)[-1]))


def _task_prefix(token: str) -> str:
    return token.split("@", 1)[0] + "@"


def _stale_before(now=None):
    return (now or timezone.now()) - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S)


def _stored_basename(image: SlideImage) -> str:
    """The stored name carries the extension the upload check accepted (the
    original name may be "archive.zip › a.png" and is for people, not decoders)."""
    return posixpath.basename(image.file.name)


def _slow_step_for_tests(image: SlideImage) -> None:
    """A controllable slow step (tests only): the image named by ``PIPELINE_SLOW_IMAGE``
    waits until the soft time limit interrupts it, whatever the machine's speed."""
    if settings.PIPELINE_SLOW_IMAGE and image.original_filename == settings.PIPELINE_SLOW_IMAGE:
        while True:
            time.sleep(0.05)


def _read_image(image: SlideImage):
    from ml.imageio import load_image

    _slow_step_for_tests(image)
    with image.file.open("rb") as handle:
        data = handle.read()
    return load_image(data, filename=_stored_basename(image), max_pixels=settings.MAX_IMAGE_PIXELS)


@contextlib.contextmanager
def _delete_on_error(names: list[str]) -> Iterator[None]:
    """Files written inside a transaction that then fails are deleted (no orphan overlays)."""
    try:
        yield
    except BaseException:
        from django.core.files.storage import default_storage

        for name in names:
            with contextlib.suppress(Exception):
                default_storage.delete(name)
        raise


def fail_image(
    image_id: int,
    code: str,
    reason: str,
    *,
    token: str | None = None,
    actor_label: str = "",
    model_version: ModelVersion | None = None,
) -> bool:
    """Mark one image failed with a readable reason (conditional: never a done image, and
    only while ``token`` still holds the claim when given). Returns whether it changed."""
    rows = SlideImage.objects.filter(pk=image_id).exclude(status=ImageStatus.DONE)
    if token is not None:
        rows = rows.filter(claimed_by=token)
    with transaction.atomic():
        changed = rows.update(status=ImageStatus.FAILED, stage="", error_code=code[:40], error=reason)
        if changed:
            image = SlideImage.objects.select_related("case__lab").get(pk=image_id)
            audit.record(
                AuditEvent.Verb.ANALYSIS_FAILED,
                actor_label=actor_label,
                case=image.case,
                obj=image,
                model_version=model_version,
                code=code,
                reason=reason,
                position=image.position,
                filename=image.original_filename,
            )
    if changed:
        logger.info("image %s failed: %s (%s)", image_id, reason, code)
    return bool(changed)


# --------------------------------------------------------------------------- process_case


def start_case(case_id: int) -> bool:
    """Move a case with work to do to ``processing`` (conditional; idempotent). Returns whether it moved now."""
    queued = SlideImage.objects.filter(case_id=OuterRef("pk"), status=ImageStatus.QUEUED)
    return bool(
        Case.objects.filter(
            pk=case_id,
            status__in=[CaseStatus.UPLOADED, CaseStatus.QUEUED, CaseStatus.AWAITING_REVIEW, CaseStatus.FAILED],
        )
        .filter(Exists(queued))
        .update(
            status=CaseStatus.PROCESSING,
            processing_started_at=Coalesce(F("processing_started_at"), Value(timezone.now()), output_field=DateTimeField()),
            processing_finished_at=None,
        )
    )


def dispatch_queued_images(case_id: int, chunk_size: int | None = None) -> list[list[int]]:
    """The case's queued images that are not already waiting in the broker, in
    chunks of ``WORKER_BATCH_SIZE``, stamped as sent now. The caller sends one
    ``classify_chunk`` per chunk. Images sent less than ``STUCK_IMAGE_AFTER_S``
    ago are left alone, so a duplicated ``process_case`` sends nothing twice."""
    chunk_size = chunk_size or settings.WORKER_BATCH_SIZE
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            SlideImage.objects.select_for_update(skip_locked=True)
            .filter(case_id=case_id, status=ImageStatus.QUEUED)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=_stale_before(now)))
            .order_by("position")
            .values_list("pk", flat=True)
        )
        SlideImage.objects.filter(pk__in=ids, status=ImageStatus.QUEUED).update(claimed_at=now)
    return [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]


def fail_case_without_model(case_id: int, *, actor_label: str = "") -> int:
    """No image model is registered: every queued image fails with a reason that says what to do."""
    reason = (
        "No active image model is registered: run `manage.py bootstrap_demo` (demo model) or "
        "`manage.py register_model CHECKPOINT --activate`, then upload the images again."
    )
    failed = 0
    for image_id in SlideImage.objects.filter(case_id=case_id, status=ImageStatus.QUEUED).values_list("pk", flat=True):
        failed += fail_image(image_id, "no_model", reason, actor_label=actor_label)
    finalize_case_if_complete(case_id, actor_label=actor_label)
    return failed


# --------------------------------------------------------------------------- classify_chunk


@dataclass
class ChunkOutcome:
    claimed: list[int] = field(default_factory=list)
    analysed: list[int] = field(default_factory=list)  # Analysis ids handed on to segmentation
    failed: list[int] = field(default_factory=list)  # image ids
    case_ids: set[int] = field(default_factory=set)
    model_version_id: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""


def claim_for_classification(image_ids: Sequence[int], token: str) -> list[int]:
    """Take the images of a chunk by conditional UPDATE; returns the ids this token now holds.

    Taken: ``queued`` images; ``processing`` images in the classification stage
    whose claim is stale (their worker died); and images this same task
    already held (a retry). An image that has been taken ``MAX_IMAGE_ATTEMPTS``
    times without finishing (it keeps killing workers) fails instead.
    """
    now = timezone.now()
    stale = _stale_before(now)
    in_classification = Q(status=ImageStatus.PROCESSING, stage__in=["", STAGE_CLASSIFY])
    for image_id in SlideImage.objects.filter(
        in_classification, pk__in=image_ids, claimed_at__lt=stale, attempts__gte=MAX_IMAGE_ATTEMPTS
    ).values_list("pk", flat=True):
        fail_image(
            image_id,
            "too_many_attempts",
            f"Gave up after {MAX_IMAGE_ATTEMPTS} attempts: the worker stopped each time while analysing this image.",
        )
    SlideImage.objects.filter(pk__in=image_ids).filter(
        Q(status=ImageStatus.QUEUED)
        | (in_classification & Q(claimed_at__lt=stale))
        | (in_classification & Q(claimed_by__startswith=_task_prefix(token)))
    ).update(
        status=ImageStatus.PROCESSING,
        stage=STAGE_CLASSIFY,
        claimed_at=now,
        claimed_by=token,
        attempts=F("attempts") + 1,
    )
    return list(
        SlideImage.objects.filter(
            pk__in=image_ids, status=ImageStatus.PROCESSING, stage=STAGE_CLASSIFY, claimed_by=token
        ).order_by("position").values_list("pk", flat=True)
    )


def classify_chunk(
    image_ids: Sequence[int],
    model_version_id: int | None = None,
    *,
    token: str | None = None,
    actor_label: str = "",
    on_analysed: Callable[[int], None] | None = None,
) -> ChunkOutcome:
    """Classify a chunk of images with the warm Predictor and write one Analysis each.

    Decode failures fail their image alone (no retry: the file will not get
    better). The model runs on the chunk as one batch; if that raises, each
    image is run alone so only the image that breaks it fails. ``on_analysed``
    receives each new Analysis id after its transaction commits (the task
    sends ``segment_image`` from it).
    """
    from ml.errors import ImageLoadError

    token = token or claim_token(None)
    outcome = ChunkOutcome()
    timer = StageTimer()
    active = model_cache.active_models(fallback_version_id=model_version_id)
    with timer("db"):
        claimed = claim_for_classification(image_ids, token)
        images = {image.pk: image for image in SlideImage.objects.filter(pk__in=claimed).select_related("case")}
    outcome.claimed = list(claimed)
    if not claimed:
        outcome.timings = timer.as_dict()
        return outcome
    claim_share = timer.seconds["db"] / len(claimed)
    outcome.case_ids = {image.case_id for image in images.values()}
    if active.image_version is None:
        for case_id in outcome.case_ids:
            fail_case_without_model(case_id, actor_label=actor_label)
        outcome.failed = list(claimed)
        outcome.error = "no active image model"
        return outcome
    version = active.image_version
    outcome.model_version_id = version.pk
    if model_version_id is not None and model_version_id != version.pk:
        logger.info("chunk sent for model %s runs on the now active model %s", model_version_id, version.pk)

    pending: set[int] = set(claimed)
    try:
        arrays: dict[int, Any] = {}
        per_image: dict[int, dict[str, float]] = {}
        for image_id in claimed:
            image = images[image_id]
            started = time.perf_counter()
            try:
                with timer("decode"):
                    arrays[image_id] = _read_image(image)
            except ImageLoadError as exc:
                fail_image(image_id, exc.code, exc.reason, token=token, actor_label=actor_label, model_version=version)
                outcome.failed.append(image_id)
                pending.discard(image_id)
                continue
            except OSError as exc:
                fail_image(
                    image_id, "missing_file", f"The stored file could not be read ({exc.__class__.__name__}).",
                    token=token, actor_label=actor_label, model_version=version,
                )
                outcome.failed.append(image_id)
                pending.discard(image_id)
                continue
            per_image[image_id] = {"decode": time.perf_counter() - started, "db": claim_share}

        ready = [image_id for image_id in claimed if image_id in arrays]
        classified = _classify_isolating_failures(active.models, ready, arrays, timer, per_image)
        for image_id in ready:
            classification = classified.get(image_id)
            if isinstance(classification, str):
                fail_image(image_id, "analysis_error", classification, token=token, actor_label=actor_label, model_version=version)
                outcome.failed.append(image_id)
                pending.discard(image_id)
                continue
            arrays.pop(image_id)  # free the pixels as soon as they are no longer needed
            with timer("db"):
                analysis_id = _save_classification(images[image_id], version, classification, token, per_image[image_id])
            pending.discard(image_id)
            if analysis_id is not None:
                outcome.analysed.append(analysis_id)
                if on_analysed is not None:
                    on_analysed(analysis_id)
    except SoftTimeLimitExceeded:
        limit = settings.CELERY_TASK_SOFT_TIME_LIMIT
        for image_id in sorted(pending):
            fail_image(
                image_id, "time_limit", f"Analysis took longer than the time limit ({limit} s).",
                token=token, actor_label=actor_label, model_version=version,
            )
            outcome.failed.append(image_id)
        outcome.error = f"soft time limit ({limit} s) exceeded"
    finally:
        outcome.timings = timer.as_dict()
    for case_id in outcome.case_ids:
        if outcome.failed:
            finalize_case_if_complete(case_id, actor_label=actor_label)
    return outcome


def _classify_isolating_failures(models, ready: list[int], arrays: dict[int, Any], timer: StageTimer, per_image):
    """``ml.analysis.classify_images`` results by image id: the whole chunk in
    one batch; if the batch raises, one image at a time, and an image that
    still raises gets its error message instead of a result."""
    if not ready:
        return {}
    started = time.perf_counter()
    try:
        results = classify_images([arrays[image_id] for image_id in ready], models, timer=timer)
        share = (time.perf_counter() - started) / len(ready)
        for image_id in ready:
            per_image[image_id]["classify_cam"] = share
        return dict(zip(ready, results))
    except (SoftTimeLimitExceeded, MemoryError) + TRANSIENT_DB_ERRORS:
        raise
    except Exception:  # any model error: run the images one by one to isolate the one that causes it
        logger.warning("batch prediction failed; running the %d images one by one", len(ready), exc_info=True)
    classified: dict[int, Any] = {}
    for image_id in ready:
        started = time.perf_counter()
        try:
            classified[image_id] = classify_images([arrays[image_id]], models, timer=timer)[0]
        except (SoftTimeLimitExceeded, MemoryError) + TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 (this image breaks the model: it fails alone, with the error)
            classified[image_id] = f"The model could not analyse this image ({exc.__class__.__name__}: {exc})"[:500]
        per_image[image_id]["classify_cam"] = time.perf_counter() - started
    return classified


def _save_classification(image: SlideImage, version: ModelVersion, classification, token: str, timings) -> int | None:
    """Write the Analysis (get_or_create on the unique (image, model_version)) and
    hand the image on to segmentation, in one transaction. Returns the Analysis id,
    or None when this token lost its claim meanwhile (the sweeper gave it away).

    ``timings["db"]`` is the measured database time of this image up to the
    ``get_or_create``; the last writes of a transaction cannot time themselves
    and are in the TaskRun's task-level timings."""
    prediction, png, scope = classification.prediction, classification.cam_png, classification.scope
    written: list[str] = []
    started = time.perf_counter()
    with _delete_on_error(written), transaction.atomic():
        analysis, created = Analysis.objects.get_or_create(
            image=image,
            model_version=version,
            defaults={
                "label": prediction.label,
                "probabilities": prediction.probabilities,
                "confidence": prediction.confidence,
                "low_confidence": prediction.low_confidence,
                "all_probability": prediction.all_probability,
                "in_scope": scope.in_scope,
                "scope_code": scope.code[:40],
                "scope_reason": scope.reason,
            },
        )
        update_fields = []
        if created:
            timings = dict(timings)
            timings["db"] = timings.get("db", 0.0) + (time.perf_counter() - started)
            analysis.timings = {stage: round(value, 4) for stage, value in timings.items()}
            update_fields.append("timings")
        if png is not None and not analysis.cam_overlay:
            analysis.cam_overlay.save("cam.png", ContentFile(png), save=False)
            written.append(analysis.cam_overlay.name)
            update_fields.append("cam_overlay")
        if update_fields:
            analysis.save(update_fields=update_fields)
        handed_on = SlideImage.objects.filter(
            pk=image.pk, status=ImageStatus.PROCESSING, stage=STAGE_CLASSIFY, claimed_by=token
        ).update(stage=STAGE_CLASSIFIED, claimed_at=timezone.now())
        if not created:
            logger.info("image %s already had an analysis by model %s: reused", image.pk, version.pk)
    return analysis.pk if handed_on else None


# --------------------------------------------------------------------------- segment_image


def claim_for_segmentation(image_id: int, token: str) -> bool:
    now = timezone.now()
    in_segmentation = Q(status=ImageStatus.PROCESSING, stage=STAGE_SEGMENT)
    return bool(
        SlideImage.objects.filter(pk=image_id)
        .filter(
            Q(status=ImageStatus.PROCESSING, stage=STAGE_CLASSIFIED)
            | (in_segmentation & Q(claimed_at__lt=_stale_before(now)))
            | (in_segmentation & Q(claimed_by__startswith=_task_prefix(token)))
        )
        .update(stage=STAGE_SEGMENT, claimed_at=now, claimed_by=token)
    )


@dataclass
class SegmentOutcome:
    image_id: int | None = None
    case_id: int | None = None
    state: str = "skipped"  # "done", "failed" or "skipped" (not ours: duplicate or already done)
    timings: dict[str, float] = field(default_factory=dict)
    case_finished: bool = False
    error: str = ""


def segment_image(analysis_id: int, *, token: str | None = None, actor_label: str = "") -> SegmentOutcome:
    """Segment one classified image, count its cells (and blasts with the
    active cell model), draw the overlay, mark the image done and finalize the
    case if it was the last one."""
    from ml.errors import ImageLoadError

    token = token or claim_token(None)
    outcome = SegmentOutcome()
    timer = StageTimer()
    with timer("db"):
        analysis = Analysis.objects.select_related("image__case", "model_version").filter(pk=analysis_id).first()
        claimed = analysis is not None and claim_for_segmentation(analysis.image_id, token)
    if analysis is None:
        return outcome
    image = analysis.image
    outcome.image_id, outcome.case_id = image.pk, image.case_id
    if not claimed:
        return outcome
    try:
        try:
            with timer("decode"):
                pixels = _read_image(image)
        except ImageLoadError as exc:
            return _segment_failed(outcome, image, exc.code, exc.reason, token, actor_label, analysis, timer)
        except OSError as exc:
            reason = f"The stored file could not be read ({exc.__class__.__name__})."
            return _segment_failed(outcome, image, "missing_file", reason, token, actor_label, analysis, timer)
        try:
            active = model_cache.active_models(image=False)
            result = analyse_cells_of(pixels, active.models, timer=timer)
        except (SoftTimeLimitExceeded, MemoryError) + TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:
            logger.warning("segmentation of image %s failed", image.pk, exc_info=True)
            reason = f"Segmentation failed ({exc.__class__.__name__}: {exc})"[:500]
            return _segment_failed(outcome, image, "segmentation_error", reason, token, actor_label, analysis, timer)
        del pixels
        save_started, db_before = time.perf_counter(), timer.seconds["db"]
        outcome.state = _save_segmentation(analysis, result, active.cell_version, token, timer, actor_label)
        # For the task-level timings the whole save counts, its last writes included.
        timer.seconds["db"] = db_before + (time.perf_counter() - save_started)
    except SoftTimeLimitExceeded:
        limit = settings.CELERY_TASK_SOFT_TIME_LIMIT
        reason = f"Analysis took longer than the time limit ({limit} s)."
        _segment_failed(outcome, image, "time_limit", reason, token, actor_label, analysis, timer)
        outcome.error = f"soft time limit ({limit} s) exceeded"
        return outcome
    with timer("db"):
        outcome.case_finished = finalize_case_if_complete(image.case_id, actor_label=actor_label)
    outcome.timings = timer.as_dict()
    return outcome


def _segment_failed(outcome, image, code, reason, token, actor_label, analysis, timer) -> SegmentOutcome:
    fail_image(image.pk, code, reason, token=token, actor_label=actor_label, model_version=analysis.model_version)
    outcome.state = "failed"
    outcome.timings = timer.as_dict()
    outcome.case_finished = finalize_case_if_complete(image.case_id, actor_label=actor_label)
    return outcome


def _cell_rows(analysis: Analysis, result) -> list[Cell]:
    """One Cell row per white cell: its call by the cell-type model when there is
    one; with a blast-or-not model only "blast" is a call; without a cell model none."""
    calls = {call.index: call for call in result.cells.cells} if result.cells is not None else {}
    rows = []
    for cell in result.segmentation.cells:
        if cell.kind != "wbc":
            continue
        r0, c0, r1, c1 = cell.bbox
        call = calls.get(cell.index)
        if call is not None:
            label, probabilities, confidence, low = call.label, call.probabilities, call.confidence, call.low_confidence
            contour = [list(point) for point in call.contour] if call.contour else None
        elif cell.blast_probability is not None:
            label = "blast" if cell.is_blast else ""
            probabilities, confidence, low, contour = {"blast": round(cell.blast_probability, 6)}, None, False, None
        else:
            label, probabilities, confidence, low, contour = "", {}, None, False, None
        rows.append(Cell(
            analysis=analysis, index=cell.index, kind=cell.kind, bbox=[int(c0), int(r0), int(c1), int(r1)],
            contour=contour, ai_label=label, probabilities=probabilities, confidence=confidence, low_confidence=low,
        ))
    return rows


def _save_segmentation(analysis: Analysis, result, cell_version, token: str, timer: StageTimer, actor_label: str) -> str:
    segmentation, png = result.segmentation, result.overlay_png
    image = analysis.image
    written: list[str] = []
    with _delete_on_error(written), transaction.atomic():
        with timer("db"):
            done = SlideImage.objects.filter(
                pk=image.pk, status=ImageStatus.PROCESSING, stage=STAGE_SEGMENT, claimed_by=token
            ).update(status=ImageStatus.DONE, stage="", error_code="", error="")
        if not done:  # the claim was given away meanwhile (stale): the new holder writes the result
            return "skipped"
        timings = dict(analysis.timings or {})
        for stage, seconds in timer.as_dict().items():
            timings[stage] = round(timings.get(stage, 0.0) + seconds, 4)
        timings["total"] = round(sum(timings.get(stage, 0.0) for stage in STAGES), 4)
        analysis.cell_counts = dict(segmentation.counts)
        analysis.blasts = segmentation.blasts
        analysis.cells = [cell.to_dict() for cell in segmentation.cells]
        analysis.cell_model_version = cell_version
        analysis.differential = dict(result.cells.counts) if result.cells is not None else {}
        analysis.nucleated = result.cells.nucleated if result.cells is not None else None
        Cell.objects.filter(analysis=analysis).delete()  # a re-run replaces the calls of the run it repeats
        Cell.objects.bulk_create(_cell_rows(analysis, result))
        analysis.timings = timings
        if analysis.segmentation_overlay:
            analysis.segmentation_overlay.delete(save=False)
        analysis.segmentation_overlay.save("segmentation.png", ContentFile(png), save=False)
        written.append(analysis.segmentation_overlay.name)
        analysis.save(
            update_fields=[
                "cell_counts", "blasts", "cells", "cell_model_version", "differential", "nucleated", "timings",
                "segmentation_overlay",
            ]
        )
        audit.record(
            AuditEvent.Verb.ANALYSED,
            actor_label=actor_label,
            case=image.case,
            obj=image,
            model_version=analysis.model_version,
            position=image.position,
            label=analysis.label,
            confidence=round(analysis.confidence, 4),
            counts=analysis.cell_counts,
            blasts=analysis.blasts,
        )
    return "done"


# --------------------------------------------------------------------------- finalize


def finalize_case_if_complete(case_id: int, *, actor_label: str = "") -> bool:
    """Move the case to ``awaiting_review`` (or ``failed`` when no image could be
    analysed) once no image is queued or processing, and store its summary.

    Decided by one conditional UPDATE whose WHERE clause holds both "still
    processing" and "no pending image", so when the last two images finish at
    once on two workers, exactly one UPDATE matches and one ``case_ready``
    event is written. Safe to call any number of times. Returns whether this
    call made the move.
    """
    pending = SlideImage.objects.filter(case_id=OuterRef("pk")).exclude(
        status__in=[ImageStatus.DONE, ImageStatus.FAILED]
    )
    active = [CaseStatus.UPLOADED, CaseStatus.QUEUED, CaseStatus.PROCESSING]
    case = Case.objects.filter(pk=case_id, status__in=active).exclude(Exists(pending)).select_related("lab").first()
    if case is None:
        return False
    summary = summarise_case(case)
    new_status = CaseStatus.AWAITING_REVIEW if summary["analysed"] else CaseStatus.FAILED
    with transaction.atomic():
        moved = (
            Case.objects.filter(pk=case_id, status__in=active)
            .exclude(Exists(pending))
            .update(
                status=new_status,
                summary=summary,
                who_flag=summary["who_flag"],
                processing_finished_at=timezone.now(),
                updated_at=timezone.now(),
            )
        )
        if moved:
            audit.record(
                AuditEvent.Verb.CASE_READY,
                actor_label=actor_label,
                case=case,
                obj=case,
                status=new_status,
                analysed=summary["analysed"],
                failed=summary["failed"],
                who_flag=summary["who_flag"],
                demo=summary["demo"],
            )
    if moved:
        logger.info("case %s -> %s (%s analysed, %s failed)", case_id, new_status, summary["analysed"], summary["failed"])
    return bool(moved)


def run_case_in_process(case_id: int) -> list[int]:
    """Every stage of a queued case in this process, in the order the tasks run them
    (start, classify each chunk, segment each analysis); returns the Analysis ids.

    For the tests and the benchmark scripts: the same functions the Celery tasks call,
    without a broker."""
    start_case(case_id)
    analysed: list[int] = []
    for chunk in dispatch_queued_images(case_id):
        classify_chunk(chunk, on_analysed=analysed.append)
    for analysis_id in analysed:
        segment_image(analysis_id)
    return analysed
