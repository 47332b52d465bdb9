"""Throughput, per-stage and per-task seconds, and the /metrics histograms, from the
database (``Analysis.timings``, ``TaskRun``): on PostgreSQL the percentiles and histograms
are computed by the database (``percentile_cont`` over ``jsonb_each``), on SQLite in Python."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from diagnostics.models import (
    Analysis,
    AuditEvent,
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
