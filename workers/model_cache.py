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
        from ml.predict import Predictor

        started = time.perf_counter()
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
        if predictor.sha256 != version.sha256:
            raise ModelFileChangedError(
                f"{version.checkpoint_path} has SHA-256 {predictor.sha256}, but model version {version.pk} "
                f"was registered with {version.sha256}: register the new file instead of replacing it"
            )
        seconds = time.perf_counter() - started
        self.loads += 1
        logger.info(
            "loaded %s model %s (%s, sha %s) on %s/%s in %.2f s",
            version.task, version.name, version.arch, version.short_sha, predictor.device, predictor.precision, seconds,
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


def blast_probability_fn(predictor: Any):
    """Adapt a cell-model Predictor to ``ml.segment.classify_blasts``: (N, 2) [not_blast, blast]
    columns, whatever order the checkpoint lists its classes in."""
    import numpy as np

    names = list(predictor.class_names)
    if "blast" not in names:
        raise ValueError(f"cell model classes {names} have no 'blast' class")
    blast = names.index("blast")

    def predict_proba(crops):
        proba = np.asarray(predictor.predict_proba(crops), dtype=np.float64)
        p_blast = proba[:, blast] if len(proba) else np.zeros(0)
        return np.stack([1.0 - p_blast, p_blast], axis=1) if len(proba) else np.zeros((0, 2))

    return predict_proba
