"""What the pipeline is doing and how fast: the queries behind the admin
monitoring dashboard and the Prometheus ``/metrics`` endpoint.

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

import json
import logging
import math
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from diagnostics.models import (
    Analysis,
    AuditEvent,
    Case,
    CaseStatus,
    ImageStatus,
    SlideImage,
    TaskRun,
)

logger = logging.getLogger(__name__)

# Per-image stages as diagnostics.pipeline writes them into Analysis.timings, in
# pipeline order; unknown keys found in the data are shown after these.
STAGE_LABELS: dict[str, str] = {
    "decode": "Decode",
    "classify_cam": "Classify + CAM",
    "segmentation": "Segmentation",
    "overlays": "Overlays",
    "db": "Database writes",
    "total": "Total per image",
}
TASK_DURATION_KEY = "task"  # TaskRun.timings key holding the whole run's seconds

# Dashboard windows: name -> (minutes shown, minutes per chart point).
WINDOWS: dict[str, tuple[int, int]] = {"1h": (60, 1), "6h": (360, 5), "24h": (1440, 15)}
DEFAULT_WINDOW = "1h"

# Histogram bucket upper bounds in seconds for /metrics (+Inf is added).
HISTOGRAM_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)

BROKER_TIMEOUT_S = 2.0  # connecting to / asking the broker
INSPECT_TIMEOUT_S = 1.0  # waiting for worker replies to a remote-control broadcast
BROKER_CACHE_S = 5  # the broker snapshot is shared by dashboard refreshes and scrapes for this long


# --------------------------------------------------------------------------- helpers


def window_bounds(window: str = DEFAULT_WINDOW, now: datetime | None = None) -> tuple[datetime, datetime, int]:
    """(start, end, bucket minutes) of a dashboard window, aligned to whole buckets
    so that consecutive refreshes show the same points."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; one of {', '.join(WINDOWS)}")
    minutes, bucket = WINDOWS[window]
    now = now or timezone.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    epoch_minutes = int(end.timestamp() // 60)
    end += timedelta(minutes=(-epoch_minutes) % bucket)
    return end - timedelta(minutes=minutes), end, bucket


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the two
    nearest ranks (numpy's default ``linear`` method). None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def format_seconds(seconds: float | None) -> str:
    """"12 ms", "1.35 s", "2 min 5 s"; a dash for no value."""
    if seconds is None:
        return "\u2014"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.0095 else f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------- throughput


def throughput_series(window: str = DEFAULT_WINDOW, *, now: datetime | None = None) -> dict[str, Any]:
    """Images per minute over the window, one point per bucket (zeros included):

    * ``analysed``: new Analysis rows (classification + CAM written; exactly once per image);
    * ``segmented``: images through ``segment_image`` (TaskRun rows, any outcome but "skipped");
    * ``failed``: images that failed, with a reason (audit events).

    A point is the count in its bucket divided by the bucket's minutes, so the
    axis always reads "images per minute" whatever the window.
    """
    start, end, bucket = window_bounds(window, now)
    n_points = int((end - start).total_seconds() // 60) // bucket
    counts: dict[str, list[float]] = {name: [0.0] * n_points for name in ("analysed", "segmented", "failed")}

    def add(series: str, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            minute = row["minute"]
            if minute is None:
                continue
            index = int((minute - start).total_seconds() // 60) // bucket
            if 0 <= index < n_points:
                counts[series][index] += float(row["n"] or 0)

    add(
        "analysed",
        Analysis.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute")
        .annotate(n=Count("id")),
    )
    add(
        "segmented",
        TaskRun.objects.filter(task_name="segment_image", finished_at__gte=start, finished_at__lt=end)
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute")
        .annotate(n=Sum("image_count")),
    )
    add(
        "failed",
        AuditEvent.objects.filter(verb=AuditEvent.Verb.ANALYSIS_FAILED, created_at__gte=start, created_at__lt=end)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute")
        .annotate(n=Count("id")),
    )
    labels = [(start + timedelta(minutes=i * bucket)).isoformat() for i in range(n_points)]
    totals = {name: int(sum(values)) for name, values in counts.items()}
    return {
        "window": window,
        "bucket_minutes": bucket,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "labels": labels,
        "series": {name: [round(v / bucket, 3) for v in values] for name, values in counts.items()},
        "totals": totals,
    }


def recent_rate(minutes: int = 5, *, now: datetime | None = None) -> float:
    """Images analysed per minute over the last ``minutes`` (a headline figure)."""
    now = now or timezone.now()
    n = Analysis.objects.filter(created_at__gte=now - timedelta(minutes=minutes), created_at__lte=now).count()
    return round(n / minutes, 2)


# --------------------------------------------------------------------------- per-stage times


@dataclass
class StageStats:
    key: str
    label: str
    n: int
    p50: float | None
    p95: float | None
    mean: float | None
    max: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def p50_text(self) -> str:
        return format_seconds(self.p50)

    @property
    def p95_text(self) -> str:
        return format_seconds(self.p95)

    @property
    def mean_text(self) -> str:
        return format_seconds(self.mean)

    @property
    def max_text(self) -> str:
        return format_seconds(self.max)


def _stage_order(key: str) -> tuple[int, str]:
    keys = list(STAGE_LABELS)
    return (keys.index(key), key) if key in keys else (len(keys), key)


def _stats(key: str, label: str, values: Sequence[float]) -> StageStats:
    return StageStats(
        key=key,
        label=label,
        n=len(values),
        p50=percentile_cont(values, 0.5),
        p95=percentile_cont(values, 0.95),
        mean=(sum(values) / len(values)) if values else None,
        max=max(values) if values else None,
    )


_PG_STAGE_SQL = """
SELECT kv.key,
       count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY (kv.value #>> '{{}}')::float8),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY (kv.value #>> '{{}}')::float8),
       avg((kv.value #>> '{{}}')::float8),
       max((kv.value #>> '{{}}')::float8)
FROM {table} AS a CROSS JOIN LATERAL jsonb_each(a.timings) AS kv
WHERE a.created_at >= %s AND a.created_at < %s AND jsonb_typeof(kv.value) = 'number'
GROUP BY kv.key
"""

_PG_TASK_SQL = """
SELECT t.task_name,
       count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY (t.timings ->> %s)::float8),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY (t.timings ->> %s)::float8),
       avg((t.timings ->> %s)::float8),
       max((t.timings ->> %s)::float8)
FROM {table} AS t
WHERE t.started_at >= %s AND t.started_at < %s AND jsonb_typeof(t.timings -> %s) = 'number'
GROUP BY t.task_name
"""


def stage_timings(window: str = DEFAULT_WINDOW, *, now: datetime | None = None, use_sql: bool | None = None) -> list[StageStats]:
    """p50/p95/mean/max seconds per pipeline stage, over the images analysed in the window.

    From ``Analysis.timings`` (seconds per image; ``classify_cam`` is the
    image's share of its batch). ``use_sql``: force (True) or avoid (False)
    the PostgreSQL aggregate; by default it is used on PostgreSQL.
    """
    start, end, _ = window_bounds(window, now)
    use_sql = _is_postgresql() if use_sql is None else use_sql
    rows: list[StageStats] = []
    if use_sql:
        with connection.cursor() as cursor:
            cursor.execute(_PG_STAGE_SQL.format(table=connection.ops.quote_name(Analysis._meta.db_table)), [start, end])
            for key, n, p50, p95, mean, top in cursor.fetchall():
                rows.append(StageStats(key, STAGE_LABELS.get(key, key), int(n), p50, p95, mean, top))
    else:
        values: dict[str, list[float]] = defaultdict(list)
        for timings in Analysis.objects.filter(created_at__gte=start, created_at__lt=end).values_list("timings", flat=True):
            for key, value in (timings or {}).items():
                number = _number(value)
                if number is not None:
                    values[key].append(number)
        rows = [_stats(key, STAGE_LABELS.get(key, key), found) for key, found in values.items()]
    return sorted(rows, key=lambda row: _stage_order(row.key))


def task_timings(window: str = DEFAULT_WINDOW, *, now: datetime | None = None, use_sql: bool | None = None) -> list[StageStats]:
    """p50/p95/mean/max seconds per task name (the whole run, ``TaskRun.timings["task"]``)."""
    start, end, _ = window_bounds(window, now)
    use_sql = _is_postgresql() if use_sql is None else use_sql
    key = TASK_DURATION_KEY
    rows: list[StageStats] = []
    if use_sql:
        with connection.cursor() as cursor:
            cursor.execute(
                _PG_TASK_SQL.format(table=connection.ops.quote_name(TaskRun._meta.db_table)),
                [key, key, key, key, start, end, key],
            )
            for name, n, p50, p95, mean, top in cursor.fetchall():
                rows.append(StageStats(name, name, int(n), p50, p95, mean, top))
    else:
        values: dict[str, list[float]] = defaultdict(list)
        for name, timings in TaskRun.objects.filter(started_at__gte=start, started_at__lt=end).values_list(
            "task_name", "timings"
        ):
            number = _number((timings or {}).get(key))
            if number is not None:
                values[name].append(number)
        rows = [_stats(name, name, found) for name, found in values.items()]
    return sorted(rows, key=lambda row: row.key)


# --------------------------------------------------------------------------- histograms for /metrics


@dataclass
class Histogram:
    """Cumulative bucket counts (``le`` bound -> count, +Inf last), the sum and count."""

    buckets: list[tuple[float, int]]
    total: float
    count: int


def _histogram_from_values(values: Sequence[float], bounds: Sequence[float]) -> Histogram:
    buckets = [(bound, sum(1 for v in values if v <= bound)) for bound in bounds]
    buckets.append((math.inf, len(values)))
    return Histogram(buckets=buckets, total=float(sum(values)), count=len(values))


def _pg_histograms(select_values_sql: str, params: list[Any], bounds: Sequence[float]) -> dict[str, Histogram]:
    """Histograms grouped by ``k`` over a subquery yielding (k, v), computed by PostgreSQL."""
    filters = ", ".join("count(*) FILTER (WHERE v <= %s)" for _ in bounds)
    sql = f"SELECT k, count(*), coalesce(sum(v), 0), {filters} FROM ({select_values_sql}) AS s GROUP BY k"
    result: dict[str, Histogram] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [*bounds, *params])
        for row in cursor.fetchall():
            key, count, total, *cumulative = row
            buckets = list(zip(bounds, (int(c) for c in cumulative)))
            buckets.append((math.inf, int(count)))
            result[key] = Histogram(buckets=buckets, total=float(total), count=int(count))
    return result


def stage_histograms(bounds: Sequence[float] = HISTOGRAM_BUCKETS, *, use_sql: bool | None = None) -> dict[str, Histogram]:
    """All-time histogram of seconds per stage over every Analysis (a Prometheus
    histogram must only grow, so it is never windowed)."""
    use_sql = _is_postgresql() if use_sql is None else use_sql
    if use_sql:
        table = connection.ops.quote_name(Analysis._meta.db_table)
        inner = (
            f"SELECT kv.key AS k, (kv.value #>> '{{}}')::float8 AS v FROM {table} AS a "
            "CROSS JOIN LATERAL jsonb_each(a.timings) AS kv WHERE jsonb_typeof(kv.value) = 'number'"
        )
        return _pg_histograms(inner, [], bounds)
    values: dict[str, list[float]] = defaultdict(list)
    for timings in Analysis.objects.values_list("timings", flat=True).iterator(chunk_size=2000):
        for key, value in (timings or {}).items():
            number = _number(value)
            if number is not None:
                values[key].append(number)
    return {key: _histogram_from_values(found, bounds) for key, found in values.items()}


def task_histograms(bounds: Sequence[float] = HISTOGRAM_BUCKETS, *, use_sql: bool | None = None) -> dict[str, Histogram]:
    """All-time histogram of whole-task seconds per task name (TaskRun rows)."""
    use_sql = _is_postgresql() if use_sql is None else use_sql
    if use_sql:
        table = connection.ops.quote_name(TaskRun._meta.db_table)
        inner = (
            f"SELECT t.task_name AS k, (t.timings ->> %s)::float8 AS v FROM {table} AS t "
            "WHERE jsonb_typeof(t.timings -> %s) = 'number'"
        )
        return _pg_histograms(inner, [TASK_DURATION_KEY, TASK_DURATION_KEY], bounds)
    values: dict[str, list[float]] = defaultdict(list)
    for name, timings in TaskRun.objects.values_list("task_name", "timings").iterator(chunk_size=2000):
        number = _number((timings or {}).get(TASK_DURATION_KEY))
        if number is not None:
            values[name].append(number)
    return {key: _histogram_from_values(found, bounds) for key, found in values.items()}


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


# --------------------------------------------------------------------------- the broker


def configured_queues() -> list[str]:
    """The queue names the settings route tasks to (and the default queue)."""
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for route in settings.CELERY_TASK_ROUTES.values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    order = {"priority": 0, "gpu": 1, "cpu": 2}
    return sorted(names, key=lambda name: (order.get(name, 9), name))


@dataclass
class QueueDepth:
    name: str
    waiting: int | None  # messages ready for a worker
    unacked: int | None = None  # delivered to a worker, not yet acknowledged (Redis only)
    error: str = ""


@dataclass
class BrokerState:
    ok: bool
    transport: str
    url: str  # without password
    queues: list[QueueDepth] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


def _broker_connection(url: str | None = None, transport_options: dict[str, Any] | None = None):
    """A connection to the configured broker (or ``url``) that fails fast: a
    web request must never hang on a broker that is down."""
    from marrowfind.celery import app

    conn = app.connection_for_read(url) if url else app.connection_for_read()
    options = dict(conn.transport_options if transport_options is None else transport_options)
    if conn.transport.driver_type == "redis":
        options.update(socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S)
    conn.transport_options = options
    conn.connect_timeout = BROKER_TIMEOUT_S
    return conn


def _connect(conn) -> None:
    conn.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.2, timeout=BROKER_TIMEOUT_S)


def _display_url(conn) -> str:
    """``redis://host:port/db``: where the broker is, without credentials."""
    driver = conn.transport.driver_type
    if not conn.hostname or driver == "filesystem":
        return f"{driver}://"
    port = f":{conn.port}" if conn.port else ""
    vhost = f"/{conn.virtual_host}" if conn.virtual_host not in (None, "", "/") else ""
    return f"{driver}://{conn.hostname}{port}{vhost}"


def _unacked_by_queue(channel) -> dict[str, int] | None:
    """Redis keeps delivered-but-unacknowledged messages in one hash; count them per routing key."""
    client = getattr(channel, "client", None)
    key = getattr(channel, "unacked_key", None)
    if client is None or key is None:
        return None
    counts: dict[str, int] = defaultdict(int)
    for _, raw in client.hscan_iter(key, count=500):
        try:
            _message, exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        counts[routing_key or exchange or "?"] += 1
    return counts


def queue_depths(
    queues: Sequence[str] | None = None, *, url: str | None = None, transport_options: dict[str, Any] | None = None
) -> BrokerState:
    """Messages per queue, read from the broker (never raises).

    ``queue_declare(passive=True)`` returns the message count without creating
    anything: on Redis the summed ``LLEN`` of the queue's priority lists, on the
    file-system broker the number of message files. A queue that was never
    declared holds 0 messages.
    """
    queues = list(queues or configured_queues())
    started = time.perf_counter()
    conn = _broker_connection(url, transport_options)
    state = BrokerState(ok=False, transport=conn.transport.driver_type, url=_display_url(conn))
    try:
        _connect(conn)
        channel = conn.default_channel
        unacked = _unacked_by_queue(channel)
        for name in queues:
            try:
                _, waiting, _ = channel.queue_declare(queue=name, passive=True)
            except conn.channel_errors:  # passive declare of a queue that does not exist
                waiting = 0
                channel = conn.default_channel  # some transports close the channel on NOT_FOUND
            state.queues.append(QueueDepth(name=name, waiting=int(waiting or 0),
                                           unacked=None if unacked is None else unacked.get(name, 0)))
        state.ok = True
    except Exception as exc:  # noqa: BLE001  (the broker is down or unreachable: say so, do not fail the page)
        state.error = f"{exc.__class__.__name__}: {exc}"[:300]
        state.queues = [QueueDepth(name=name, waiting=None, error="broker unreachable") for name in queues]
    finally:
        try:
            conn.release()
        except Exception:
            logger.debug("closing the broker connection failed", exc_info=True)
        state.seconds = round(time.perf_counter() - started, 3)
    return state


@dataclass
class WorkerInfo:
    name: str
    queues: list[str] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)  # {"name", "id", "args", "runtime_s"}
    reserved: int = 0
    pool: str = ""
    concurrency: int | None = None
    processed: int | None = None  # tasks this worker process ran since it started
    pid: int | None = None
    maxrss_mb: float | None = None  # peak resident memory of the worker's main process
    claims: dict[str, Any] | None = None  # images it holds now, from the database (claims_by_worker)


@dataclass
class WorkersState:
    available: bool  # remote control answered (False: the broker cannot broadcast, or is down)
    workers: list[WorkerInfo] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0

    @property
    def any_solo(self) -> bool:
        """A solo-pool worker answers remote control only between tasks."""
        return any(worker.pool == "solo" for worker in self.workers)


def _short_args(request: dict[str, Any]) -> str:
    args = request.get("args")
    text = json.dumps(args, default=str) if args is not None else ""
    return text if len(text) <= 80 else text[:77] + "..."


def live_workers(timeout: float = INSPECT_TIMEOUT_S, *, url: str | None = None) -> WorkersState:
    """Live workers, their queues and what they run now, by Celery remote control (never raises).

    The three ``inspect`` broadcasts (active, active_queues, stats) are sent
    at once on separate connections, so the page waits ``timeout`` once, not
    three times. A broker that cannot broadcast (or is down) is reported as
    "not available" with the reason; the file-system broker of the embedded
    mode can, through its ``control_folder``.
    """
    from marrowfind.celery import app

    started = time.perf_counter()
    state = WorkersState(available=False)

    def ask(method: str) -> dict[str, Any] | None:
        conn = _broker_connection(url)
        try:
            _connect(conn)
            return getattr(app.control.inspect(timeout=timeout, connection=conn), method)()
        finally:
            conn.release()

    try:
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="mf-inspect") as pool:
            futures = {name: pool.submit(ask, name) for name in ("active", "active_queues", "stats")}
            replies = {name: future.result(timeout=timeout + 2 * BROKER_TIMEOUT_S + 1) for name, future in futures.items()}
    except NotImplementedError as exc:
        state.reason = f"this broker has no remote control ({exc})"
        return state
    except Exception as exc:  # noqa: BLE001  (no answer is an answer: the page says why)
        state.reason = f"could not ask the workers: {exc.__class__.__name__}: {exc}"[:300]
        state.seconds = round(time.perf_counter() - started, 3)
        return state
    names = set()
    for reply in replies.values():
        names.update((reply or {}).keys())
    now = time.time()
    for name in sorted(names):
        info = WorkerInfo(name=name)
        for task in (replies["active"] or {}).get(name) or []:
            started_at = task.get("time_start")
            info.active.append(
                {
                    "name": task.get("name") or task.get("type") or "?",
                    "id": task.get("id", ""),
                    "args": _short_args(task),
                    "runtime_s": round(now - started_at, 1) if isinstance(started_at, (int, float)) else None,
                }
            )
        info.queues = sorted(q.get("name", "?") for q in (replies["active_queues"] or {}).get(name) or [])
        stats = (replies["stats"] or {}).get(name) or {}
        pool = stats.get("pool") or {}
        # "celery.concurrency.solo:TaskPool" -> "solo"
        info.pool = str(pool.get("implementation", "")).split(":", 1)[0].rsplit(".", 1)[-1]
        info.concurrency = pool.get("max-concurrency")
        totals = stats.get("total") or {}
        info.processed = sum(int(v) for v in totals.values()) if totals else 0
        info.pid = stats.get("pid")
        maxrss = (stats.get("rusage") or {}).get("maxrss")
        info.maxrss_mb = round(maxrss / 1024.0, 1) if isinstance(maxrss, (int, float)) else None  # Linux: KiB
        state.workers.append(info)
    state.available = True
    state.seconds = round(time.perf_counter() - started, 3)
    if not state.workers:
        state.reason = f"no worker answered within {timeout:g} s"
    return state


def broker_snapshot(*, use_cache: bool = True) -> dict[str, Any]:
    """Queue depths and live workers, cached for a few seconds so that several
    open dashboards and a Prometheus scrape do not each broadcast to the workers."""
    key = "marrowfind:monitoring:broker"
    if use_cache:
        cached = cache.get(key)
        if cached is not None:
            return cached
    snapshot = {"broker": queue_depths(), "workers": live_workers(), "at": timezone.now()}
    if use_cache:
        cache.set(key, snapshot, BROKER_CACHE_S)
    return snapshot


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
