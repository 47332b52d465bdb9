"""The instant check: one image in, label + CAM + cell counts out, in seconds.

This is the quick path of the original Streamlit tool, kept apart from cases:
the image is stored as a one-off ``InstantCheck`` of the user's lab (so lab
isolation and the protected file view apply as everywhere else) and analysed
on the ``priority`` queue, which a worker serves ahead of case batches.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from diagnostics import access
from diagnostics.models import ImageStatus, Lab
from instant.models import InstantCheck
from marrowfind import dispatch

log = logging.getLogger(__name__)


class InstantCheckError(Exception):
    """An upload that cannot be checked; the message is shown to the user."""


def checks_for(user) -> QuerySet[InstantCheck]:
    """Instant checks visible to ``user``: those of the user's labs."""
    return InstantCheck.objects.filter(lab__in=access.labs_for(user))


def create_instant_check(*, user, lab: Lab, upload) -> InstantCheck:
    """Validate one uploaded image with the ``ml`` loader, store it, and queue
    its analysis once the row has committed (so the worker finds it)."""
    from ml.errors import ImageLoadError
    from ml.imageio import load_image_and_info, sha256_bytes

    if not access.can_upload(user, lab):
        raise InstantCheckError("You are not a member of this lab.")
    limit = settings.MAX_UPLOAD_FILE_MB * 1024 * 1024
    if upload.size is not None and upload.size > limit:
        raise InstantCheckError(f"The file is larger than {settings.MAX_UPLOAD_FILE_MB} MB.")
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise InstantCheckError(f"The file is larger than {settings.MAX_UPLOAD_FILE_MB} MB.")
    name = (upload.name or "image").rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:255]
    try:
        _, info = load_image_and_info(data, filename=name, max_pixels=settings.MAX_IMAGE_PIXELS)
    except ImageLoadError as exc:
        raise InstantCheckError(exc.reason if hasattr(exc, "reason") else str(exc)) from None
    with transaction.atomic():
        check = InstantCheck(
            lab=lab,
            created_by=user,
            original_filename=name,
            sha256=sha256_bytes(data),
            width=info.width,
            height=info.height,
        )
        check.file.save(name, ContentFile(data), save=False)
        check.save()
        check_id = str(check.pk)
        dispatch.instant_check(check_id)
    return check


def claim(check_id) -> bool:
    """Move a queued check to processing; False if another worker has it or
    it is finished (a redelivered message does the work at most once)."""
    return bool(
        InstantCheck.objects.filter(pk=check_id, status=ImageStatus.QUEUED).update(status=ImageStatus.PROCESSING)
    )


def run_instant_check(check_id) -> InstantCheck | None:
    """Analyse one claimed instant check with the same ``ml`` calls, the same
    settings and the same warm models (``diagnostics.model_cache``) as the case
    pipeline (``diagnostics.pipeline.classify_chunk`` + ``segment_image``, which
    work on case rows, so they are not called here); every failure becomes a readable
    error on the row, never a stuck "processing"."""
    if not claim(check_id):
        return None
    check = InstantCheck.objects.get(pk=check_id)
    try:
        _analyse(check)
    except Exception as exc:
        log.exception("instant check %s failed", check_id)
        InstantCheck.objects.filter(pk=check_id).update(
            status=ImageStatus.FAILED, error=_readable(exc), finished_at=timezone.now()
        )
    check.refresh_from_db()
    return check


def _readable(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc) or type(exc).__name__


def _analyse(check: InstantCheck) -> None:
    from instant.tasks import blast_classifier, image_predictor
    from ml.imageio import load_image
    from ml.overlay import cam_overlay, encode_png, segmentation_overlay
    from ml.segment import SegmentParams, classify_blasts, segment

    timings: dict[str, float] = {}
    started = time.perf_counter()
    with check.file.open("rb") as handle:
        image = load_image(handle.read(), filename=check.original_filename, max_pixels=settings.MAX_IMAGE_PIXELS)
    timings["decode"] = time.perf_counter() - started

    stage = time.perf_counter()
    predictor, version = image_predictor()
    prediction = predictor.predict([image], with_cam=True)[0]
    timings["classify"] = time.perf_counter() - stage

    stage = time.perf_counter()
    result = segment(image, SegmentParams(pixels_per_micron=settings.PIXELS_PER_MICRON))
    predict_blast, _cell_version = blast_classifier()
    if predict_blast is not None:
        result = classify_blasts(image, result, predict_blast)
    timings["segment"] = time.perf_counter() - stage

    stage = time.perf_counter()
    if prediction.cam is not None:
        check.cam_overlay.save("cam.png", ContentFile(encode_png(cam_overlay(image, prediction.cam))), save=False)
    check.segmentation_overlay.save(
        "segmentation.png", ContentFile(encode_png(segmentation_overlay(image, result))), save=False
    )
    timings["overlays"] = time.perf_counter() - stage
    timings["total"] = time.perf_counter() - started

    check.model_version = version
    check.label = prediction.label
    check.probabilities = {k: round(float(v), 6) for k, v in prediction.probabilities.items()}
    check.confidence = float(prediction.confidence)
    check.low_confidence = bool(prediction.confidence < settings.LOW_CONFIDENCE_THRESHOLD)
    check.all_probability = None if prediction.all_probability is None else float(prediction.all_probability)
    check.cell_counts = {k: int(v) for k, v in result.counts.items()}
    check.blasts = result.blasts
    check.timings = {k: round(v, 4) for k, v in timings.items()}
    check.status = ImageStatus.DONE
    check.finished_at = timezone.now()
    check.save()
