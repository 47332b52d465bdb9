"""Which workers are alive, so the sweeper can give back a killed worker's claims
within a minute instead of waiting for the long stale limit.

Each worker's main process writes ``mf:worker-alive:<hostname>#<pid>`` to the
shared cache every ``WORKER_HEARTBEAT_S`` seconds, with a lifetime of
``WORKER_DEAD_AFTER_S``. Claims carry ``<task id>@<hostname>#<pid>``
(``diagnostics.pipeline.claim_token``); the heartbeat thread is started by workers/signals.py, so a claim whose key has expired
belongs to a worker that is gone (kill -9, power loss), even when a new worker
with the same host name has started since. A worker that is alive but slow
keeps its claims until ``STUCK_IMAGE_AFTER_S``.
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)

PID_ENV = "MF_WORKER_PID"
KEY_PREFIX = "mf:worker-alive:"


def worker_id(hostname: str) -> str:
    """``hostname#pid`` of the worker's main process (set at worker start, inherited by pool children)."""
    pid = os.environ.get(PID_ENV)
    return f"{hostname}#{pid}" if pid and hostname else hostname


def key(worker: str) -> str:
    return KEY_PREFIX + worker


def beat(worker: str) -> None:
    from django.conf import settings
    from django.core.cache import cache

    cache.set(key(worker), 1, timeout=settings.WORKER_DEAD_AFTER_S)


def is_gone(worker: str) -> bool:
    """True when ``worker`` (``hostname#pid``) carries a pid and its heartbeat has expired."""
    from django.core.cache import cache

    return "#" in worker and cache.get(key(worker)) is None


def start_heartbeat(hostname: str) -> threading.Thread:
    from django.conf import settings
    from django.db import connections

    worker = worker_id(hostname)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                beat(worker)
            except Exception:
                logger.warning("worker heartbeat to the cache failed", exc_info=True)
            finally:
                connections.close_all()  # the database cache's connection, in this thread
            stop.wait(settings.WORKER_HEARTBEAT_S)

    thread = threading.Thread(target=run, name="mf-heartbeat", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread
