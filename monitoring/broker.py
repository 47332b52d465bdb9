"""The broker's view of now: messages waiting per queue (a passive ``queue_declare``),
messages delivered but not acknowledged (Redis' ``unacked`` hash), and the live workers
(Celery remote control, ``inspect``). Short timeouts, never raises: a dashboard must still
load when Redis is down, and say so."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 2.0  # connecting to / asking the broker
INSPECT_TIMEOUT_S = 1.0  # waiting for worker replies to a remote-control broadcast
BROKER_CACHE_S = 5  # the broker snapshot is shared by dashboard refreshes and scrapes for this long


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
