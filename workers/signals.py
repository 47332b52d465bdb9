"""Worker start-up: load the active models once per worker process.

``worker_process_init`` is sent inside each pool process (prefork children,
and the one process of the ``solo`` pool) after the fork, so CUDA, when used,
is initialised in the process that runs the tasks and never in a parent that
forks afterwards. The ``threads`` pool sends no ``worker_process_init``; its
threads share the main process, which is warmed up at ``worker_ready``
instead. Where neither applies (e.g. tests calling the pipeline directly) the
model loads lazily at the first chunk.

Set ``MARROWFIND_WARM_UP=0`` to skip the warm-up (e.g. a worker that only
serves the report queue).
"""

from __future__ import annotations

import logging
import os

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from diagnostics import liveness

logger = logging.getLogger(__name__)


def _enabled() -> bool:
    from django.conf import settings

    return settings.MARROWFIND_WARM_UP  # strictly parsed (marrowfind.env): a typo stops the start


def _warm_up() -> None:
    from django.db import connections

    from diagnostics import model_cache

    try:
        model_cache.cache.warm_up()
    finally:
        # The warm-up's connection must not be carried into the first task (or a fork).
        connections.close_all()


@worker_process_init.connect
def warm_up_model_in_pool_process(**kwargs) -> None:
    if _enabled():
        _warm_up()


@worker_ready.connect
def warm_up_model_for_threads_pool(sender=None, **kwargs) -> None:
    pool_cls = getattr(getattr(sender, "controller", None), "pool_cls", None)
    name = getattr(pool_cls, "__module__", "") if pool_cls is not None else ""
    if _enabled() and name.endswith("concurrency.thread"):
        _warm_up()


@worker_init.connect
def remember_main_pid(**kwargs) -> None:
    """The main process's pid, inherited by prefork children: claims name ``hostname#pid``."""
    os.environ[liveness.PID_ENV] = str(os.getpid())


_heartbeat = None


@worker_ready.connect
def start_liveness_heartbeat(sender=None, **kwargs) -> None:
    global _heartbeat
    hostname = getattr(sender, "hostname", "") or ""
    if hostname and _heartbeat is None:
        _heartbeat = liveness.start_heartbeat(hostname)


@worker_shutdown.connect
def stop_liveness_heartbeat(**kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop.set()
