"""What the pipeline is doing and how fast: the admin monitoring dashboard, assembled
from ``monitoring.timings`` (throughput, stage and task seconds, histograms),
``monitoring.pipeline_state`` (failures, counts, active cases, claims) and
``monitoring.broker`` (queues and live workers); ``monitoring.metrics`` serves the same
figures to Prometheus at ``/metrics``.

Two kinds of source, on purpose:

* **The database** for everything historical: images analysed per minute
  (``Analysis.created_at``; one row per image and model version, so a
  redelivered task never counts twice), images segmented per minute and task
  durations (``TaskRun`` rows the workers write, which outlive a restart of
  Flower or of the workers), per-stage seconds (``Analysis.timings``), and
  failures with their reasons (``AuditEvent`` "analysis_failed" and failed
  ``TaskRun`` rows). On PostgreSQL the percentiles and histograms are computed
  by the database (``percentile_cont`` over ``jsonb_each``), so a scrape does
  not pull every row into Python; SQLite (the embedded laptop mode) gets the
  same numbers computed in Python.
* **The broker** for what is happening now: messages waiting per queue (a
  passive ``queue_declare``, which on Redis is the ``LLEN`` of the queue's
  lists, and on the file-system broker counts its files), messages delivered
  but not yet acknowledged (Redis keeps them in its ``unacked`` hash), and the
  live workers with the tasks they run (Celery remote control, ``inspect``).
  Broker calls use short timeouts and never raise: a dashboard must still load
  when Redis is down, and say so. When no worker answers the broadcast (or the
  broker cannot broadcast), the page lists the workers seen in recent
  ``TaskRun`` rows instead.
"""

from __future__ import annotations

import logging
import math
import socket
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.utils import timezone

from monitoring.broker import WorkersState, broker_snapshot
from monitoring.pipeline_state import (
    active_cases,
    claims_by_worker,
    failure_counts,
    pipeline_counts,
    recent_image_failures,
    recent_task_failures,
    recent_workers,
)
from monitoring.timings import (
    DEFAULT_WINDOW,
    WINDOWS,
    recent_rate,
    stage_timings,
    task_timings,
    throughput_series,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- everything, for the page and JSON


def dashboard(window: str = DEFAULT_WINDOW, *, now: datetime | None = None, use_cache: bool = True) -> dict[str, Any]:
    """All dashboard figures in one dict (the template context and the JSON endpoint)."""
    now = now or timezone.now()
    snapshot = broker_snapshot(use_cache=use_cache)
    workers: WorkersState = snapshot["workers"]
    claims = claims_by_worker(now=now)
    live_names = set()
    for worker in workers.workers:
        worker.claims = claims.get(worker.name)
        live_names.add(worker.name)
    return {
        "window": window,
        "windows": list(WINDOWS),
        "generated_at": now,
        "host": socket.gethostname(),
        "throughput": throughput_series(window, now=now),
        "rate_5min": recent_rate(5, now=now),
        "stages": stage_timings(window, now=now),
        "tasks": task_timings(window, now=now),
        "counts": pipeline_counts(),
        "failure_counts": failure_counts(window, now=now),
        "image_failures": recent_image_failures(),
        "task_failures": recent_task_failures(),
        "active_cases": active_cases(),
        "broker": snapshot["broker"],
        "workers": workers,
        "recent_workers": recent_workers(now=now) if not workers.workers else [],
        # Images claimed by workers that did not answer: busy solo workers, or dead ones (see "stale").
        "unanswered_claims": {name: held for name, held in claims.items() if name not in live_names},
    }


def to_jsonable(value: Any) -> Any:
    """Dataclasses and datetimes to plain JSON types (for the JSON endpoint)."""
    if hasattr(value, "__dataclass_fields__"):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
