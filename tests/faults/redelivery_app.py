"""The project's Celery app for the kill -9 test, with Redis told to hand back
unacknowledged messages within seconds instead of an hour.

Why this exists: a message a worker took and never acknowledged (it was
killed) stays in Redis's ``unacked`` hash until ``visibility_timeout`` has
passed; then the next consumer's restore sweep puts it back in its queue. In
production the timeout is an hour (``CELERY_VISIBILITY_TIMEOUT``, which the
settings keep at 60 s or more and above the hard time limit), and kombu sweeps
every ``unacked_restore_interval`` x ``unacked_restore_throttle`` (about 100 s).
A test cannot wait that long, so this module (test-only, started with
``celery -A tests.faults.redelivery_app worker``) shortens both. The code path
is the real one: kombu's ``restore_visible`` on a real Redis.

The timeout stays longer than the hard time limit the test gives the worker
(``CELERY_TASK_TIME_LIMIT``), as the settings require, so a task that is
merely slow is never delivered twice.
"""

from __future__ import annotations

import os

from marrowfind.celery import app

VISIBILITY_TIMEOUT_S = int(os.environ.get("MF_TEST_VISIBILITY_TIMEOUT_S", "25"))

_time_limit = int(app.conf.task_time_limit or 0)
if _time_limit and VISIBILITY_TIMEOUT_S <= _time_limit:
    raise RuntimeError(
        f"MF_TEST_VISIBILITY_TIMEOUT_S={VISIBILITY_TIMEOUT_S} must be longer than CELERY_TASK_TIME_LIMIT={_time_limit}"
    )
app.conf.broker_transport_options = {
    **(app.conf.broker_transport_options or {}),
    "visibility_timeout": VISIBILITY_TIMEOUT_S,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

__all__ = ["app"]
