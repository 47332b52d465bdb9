"""The instant check: one image in, label + CAM + cell counts out, in seconds.

This is the quick path of the original Streamlit tool, kept apart from cases:
the image is stored as a one-off ``InstantCheck`` of the user's lab (so lab
isolation and the protected file view apply as everywhere else) and analysed
on the ``priority`` queue, which a worker serves ahead of case batches.
"""

from __future__ import annotations

import logging

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
    """Analyse one claimed instant check with ``ml.analysis.analyse_image``, as
    the case pipeline does; every failure becomes a readable error on the row,
    never a stuck "processing"."""
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
    """``ml.analysis.analyse_image`` on the check's file with the warm active
    models: the same function, models and settings as the case pipeline."""
    from diagnostics import model_cache
    from ml.analysis import analyse_image

    active = model_cache.active_models()
    if active.image_version is None:
        raise RuntimeError("No image model is registered and active: ask an admin to activate one.")
    with check.file.open("rb") as handle:
        data = handle.read()
    result = analyse_image(data, active.models, filename=check.original_filename)
    prediction = result.prediction
    if result.classification.cam_png is not None:
        check.cam_overlay.save("cam.png", ContentFile(result.classification.cam_png), save=False)
    check.segmentation_overlay.save("segmentation.png", ContentFile(result.cells.overlay_png), save=False)
    check.model_version = active.image_version
    check.label = prediction.label
    check.probabilities = {k: round(float(v), 6) for k, v in prediction.probabilities.items()}
    check.confidence = float(prediction.confidence)
    check.low_confidence = bool(prediction.low_confidence)
    check.all_probability = None if prediction.all_probability is None else float(prediction.all_probability)
    check.cell_counts = {k: int(v) for k, v in result.cells.segmentation.counts.items()}
    check.blasts = result.cells.blasts
    check.timings = result.timings
    check.status = ImageStatus.DONE
    check.finished_at = timezone.now()
    check.save()
