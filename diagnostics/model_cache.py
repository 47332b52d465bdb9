"""The warm model of a worker process: loaded once, swapped when the registry changes.

Loading a checkpoint costs seconds (and, on a GPU, a CUDA context), so each
worker process keeps one :class:`ml.predict.Predictor` per task ("image" and
"cell") for its whole life. At every chunk the pipeline asks :func:`get`; it
reads the active :class:`~diagnostics.models.ModelVersion` (one indexed query)
and reloads only when that version's SHA-256 differs from the one held. So
activating another model (``manage.py activate_model``) needs no worker restart.

Why the SHA-256 and not the row id: the checkpoint file is what decides the
results. The loaded file's own SHA-256 is compared with the registered one, and
a mismatch (the file was replaced on disk after registration) is an error, not
a silent switch to unregistered weights.

Thread safety: the ``threads`` pool (used for GPU workers) shares one cache
between threads, so loading is done under a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from diagnostics.models import ModelTask, ModelVersion

logger = logging.getLogger(__name__)


class ModelFileChangedError(RuntimeError):
    """The checkpoint on disk is not the file that was registered."""


@dataclass
class LoadedModel:
    version_id: int
    sha256: str
    predictor: Any  # ml.predict.Predictor (imported lazily: the web process never loads torch)
    load_seconds: float


class ModelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, LoadedModel] = {}
        self.loads = 0  # how many checkpoints this process has loaded (tests check "once")

    def held(self, task: str = ModelTask.IMAGE) -> LoadedModel | None:
        return self._held.get(task)

    def get(self, task: str = ModelTask.IMAGE, *, fallback_version_id: int | None = None) -> tuple[ModelVersion, Any] | None:
        """The active model version of ``task`` and its warm Predictor, or None when none is registered.

        ``fallback_version_id``: used when no version is active (a case queued
        just before its model was deactivated still runs on the model it was sent with).
        """
        version = ModelVersion.objects.filter(task=task, is_active=True).first()
        if version is None and fallback_version_id is not None:
            version = ModelVersion.objects.filter(pk=fallback_version_id, task=task).first()
        if version is None:
            return None
        held = self._held.get(task)
        if held is not None and held.sha256 == version.sha256:
            return version, held.predictor
        with self._lock:
            held = self._held.get(task)
            if held is None or held.sha256 != version.sha256:
                held = self._load(version)
                self._held[task] = held
        return version, held.predictor

    def _load(self, version: ModelVersion) -> LoadedModel:
        from ml.checkpoint import file_sha256
        from ml.labels import CELL_TYPES

        started = time.perf_counter()
        if version.task == ModelTask.CELL and set(version.class_names) <= set(CELL_TYPES):
            # A cell-type model (a differential): ml.cells runs it on the white-cell crops.
            from ml.cells import CellClassifier

            predictor = CellClassifier.load(version.checkpoint_path, batch_size=settings.WORKER_BATCH_SIZE)
            loaded_sha, where = file_sha256(version.checkpoint_path), "cpu"
        else:
            from ml.predict import Predictor

            predictor = Predictor.from_checkpoint(
                version.checkpoint_path,
                device=settings.INFERENCE_DEVICE,
                precision=settings.INFERENCE_PRECISION,
                low_confidence_threshold=settings.LOW_CONFIDENCE_THRESHOLD,
                cam_method=settings.CAM_METHOD,
                batch_size=settings.WORKER_BATCH_SIZE,
                compile=settings.INFERENCE_COMPILE,
                compile_cache_dir=settings.COMPILE_CACHE_DIR,
            )
            loaded_sha, where = predictor.sha256, f"{predictor.device}/{predictor.precision}"
        if loaded_sha != version.sha256:
            raise ModelFileChangedError(
                f"{version.checkpoint_path} has SHA-256 {loaded_sha}, but model version {version.pk} "
                f"was registered with {version.sha256}: register the new file instead of replacing it"
            )
        seconds = time.perf_counter() - started
        self.loads += 1
        logger.info(
            "loaded %s model %s (%s, sha %s) on %s in %.2f s",
            version.task, version.name, version.arch, version.short_sha, where, seconds,
        )
        return LoadedModel(version_id=version.pk, sha256=version.sha256, predictor=predictor, load_seconds=seconds)

    def warm_up(self) -> None:
        """Load the active models now (at worker-process start), so the first chunk does not wait."""
        for task in (ModelTask.IMAGE, ModelTask.CELL):
            try:
                loaded = self.get(task)
            except Exception:  # a broken registry must not stop the worker from starting
                logger.exception("warm-up of the %s model failed; it is retried at the first task", task)
                continue
            if loaded is None:
                logger.info("no active %s model to warm up", task)
                continue
            from ml.predict import Predictor

            if isinstance(loaded[1], Predictor):  # a cell-type model (ml.cells.CellClassifier) is not compiled
                # Compiling takes minutes on a CPU: it runs in a background thread, so the child
                # reports ready at once (Celery's start-up timeout) and early batches run eager.
                try:
                    loaded[1].warm_up(wait=False)
                except Exception:  # eager is always there; compiling is only an optimisation
                    logger.exception("could not start compiling the %s model; it runs eager", task)

    def clear(self) -> None:
        with self._lock:
            self._held.clear()


cache = ModelCache()


def get(task: str = ModelTask.IMAGE, *, fallback_version_id: int | None = None) -> tuple[ModelVersion, Any] | None:
    return cache.get(task, fallback_version_id=fallback_version_id)


_wbc_masks: dict[tuple[str, float], Any] = {}
_wbc_lock = threading.Lock()


def wbc_mask():
    """The learned white-cell mask of ``settings.WBC_MASK_MODEL`` (loaded once per process and file
    version), or None when it is not set. A file that is not a mask checkpoint raises ValueError."""
    path = settings.WBC_MASK_MODEL
    if path is None:
        return None
    from ml.wbcmask import load_wbc_mask_model

    key = (str(path), path.stat().st_mtime)
    with _wbc_lock:
        if key not in _wbc_masks:
            _wbc_masks.clear()
            _wbc_masks[key] = load_wbc_mask_model(path)
        return _wbc_masks[key]


@dataclass(frozen=True)
class Active:
    """The active models as ``ml.analysis`` takes them, and their registry rows."""

    models: Any  # ml.analysis.ActiveModels
    image_version: ModelVersion | None
    cell_version: ModelVersion | None


def active_models(*, image: bool = True, fallback_version_id: int | None = None) -> Active:
    """The warm active models of this process for :func:`ml.analysis.analyse_image` (and its halves),
    with the pipeline's settings. ``image=False`` skips the image model (the segmentation stage)."""
    from ml.analysis import ActiveModels
    from ml.segment import SegmentParams

    image_loaded = get(ModelTask.IMAGE, fallback_version_id=fallback_version_id) if image else None
    cell_loaded = get(ModelTask.CELL)
    models = ActiveModels(
        image=image_loaded[1] if image_loaded else None,
        cells=cell_loaded[1] if cell_loaded else None,
        segment_params=SegmentParams(pixels_per_micron=settings.PIXELS_PER_MICRON),
        low_confidence=settings.LOW_CONFIDENCE_THRESHOLD,
        max_pixels=settings.MAX_IMAGE_PIXELS,
        wbc_mask=wbc_mask(),
    )
    return Active(
        models=models,
        image_version=image_loaded[0] if image_loaded else None,
        cell_version=cell_loaded[0] if cell_loaded else None,
    )
