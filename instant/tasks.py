"""The instant single-image check (priority queue).

Thin over ``instant.services``. The task is routed to the ``priority`` queue
(settings.CELERY_TASK_ROUTES), so a worker started with ``-Q priority,...``
answers it ahead of case batches. The models come from the same process-wide
cache as the case pipeline (``diagnostics.model_cache``): a worker that has
served a batch pays no model load, and activating another model needs no restart.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="instant.tasks.instant_check", acks_late=True, ignore_result=True)
def instant_check(check_id: str) -> str:
    from instant.services import run_instant_check

    check = run_instant_check(check_id)
    return check.status if check is not None else "skipped"
