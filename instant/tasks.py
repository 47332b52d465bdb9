"""The instant single-image check (priority queue).

Thin over ``instant.services``. The task is routed to the
``priority`` queue (settings.CELERY_TASK_ROUTES), so a worker started with
``-Q priority,...`` answers it ahead of case batches.
"""

from __future__ import annotations

from celery import shared_task

from diagnostics.models import ModelTask, ModelVersion


def image_predictor() -> tuple[object, ModelVersion]:
    """The warm predictor of the active image model and its registry row,
    from the same process-wide cache as the case pipeline
    (``diagnostics.model_cache``): a worker that has served a batch pays no
    model load, and activating another model needs no restart."""
    from diagnostics import model_cache

    loaded = model_cache.get(ModelTask.IMAGE)
    if loaded is None:
        raise RuntimeError("No image model is registered and active: ask an admin to activate one.")
    version, predictor = loaded
    return predictor, version


def blast_classifier():
    """The active cell (blast) model adapted for ``ml.segment.classify_blasts``,
    and its version; ``(None, None)`` when none is active (blasts are then
    "not determined", as in the case pipeline)."""
    from diagnostics import model_cache

    loaded = model_cache.get(ModelTask.CELL)
    if loaded is None:
        return None, None
    version, predictor = loaded
    return model_cache.blast_probability_fn(predictor), version


@shared_task(name="instant.tasks.instant_check", acks_late=True, ignore_result=True)
def instant_check(check_id: str) -> str:
    from instant.services import run_instant_check

    check = run_instant_check(check_id)
    return check.status if check is not None else "skipped"
