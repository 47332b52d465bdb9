"""A REAL Celery worker process for tests, against the test database and Redis.

Used by the end-to-end and fault tests (also by other areas)::

    from tests.workerproc import require_services, purge_broker, run_worker, wait_for_case_status

    class MyTest(BaseTransactionTestCase):          # rows must be committed for the worker to see them
        def setUp(self):
            require_services()                      # skip with a reason without PostgreSQL + Redis
            super().setUp()
            purge_broker()                          # this test's Redis DB only
        def test_it(self):
            with run_worker(queues=("gpu", "cpu"), concurrency=1, pool="solo") as worker:
                ...                                 # worker.pid, worker.kill(), worker.log()
                wait_for_case_status(case, {"awaiting_review"}, timeout=180, worker=worker)

The worker is started with ``python -m celery -A marrowfind worker`` in its
own process group, with an environment pointing it at the *current test
database* (``connection.settings_dict["NAME"]``, i.e. ``test_...``), the same
broker, ``MEDIA_ROOT`` and ``MARROWFIND_MODEL_DIR`` as the test. Its output
goes to a log file that is printed when the block fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parent.parent
ALL_QUEUES = ("priority", "gpu", "cpu")
READY_MARKER = " ready."


def services_unavailable_reason() -> str | None:
    """Why the real-services tests cannot run here, or None when they can."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return f"needs PostgreSQL (DATABASE_URL is {connection.vendor}); set DATABASE_URL=postgres://..."
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis://", "rediss://")):
        return f"needs Redis as the Celery broker (CELERY_BROKER_URL={broker!r})"
    try:
        import redis

        redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 (any failure means: skip with the reason)
        return f"Redis at {broker} is unreachable ({exc.__class__.__name__}: {exc})"
    return None


def require_services() -> None:
    """Skip the calling test (with the reason) unless PostgreSQL and Redis are there."""
    import pytest

    reason = services_unavailable_reason()
    if reason:
        pytest.skip(reason)


def purge_broker(queues: Iterable[str] = ALL_QUEUES) -> int:
    """Empty this test's queues, including messages delivered but not acknowledged
    (kept by the Redis transport in its ``unacked`` hash). Touches only the
    broker URL's own Redis database. Returns the number of messages removed."""
    from marrowfind.celery import app

    removed = 0
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in queues:
            with contextlib.suppress(Exception):  # a queue that was never declared
                removed += channel.queue_purge(queue) or 0
        client = getattr(channel, "client", None)
        if client is not None:
            keys = [getattr(channel, name, None) for name in ("unacked_key", "unacked_index_key", "unacked_mutex_key")]
            client.delete(*[key for key in keys if key])
    return removed


def database_url() -> str:
    """A DATABASE_URL for the database this test process is using right now (the test database)."""
    from django.db import connection

    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


def worker_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "marrowfind.settings",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "MARROWFIND_MODEL_DIR": str(settings.MARROWFIND_MODEL_DIR),
            "MARROWFIND_VAR_DIR": str(settings.VAR_DIR),
            "SECRET_KEY": settings.SECRET_KEY,
            "SECURE_HTTPS": "0",
            "PYTHONUNBUFFERED": "1",
            "WORKER_BATCH_SIZE": str(settings.WORKER_BATCH_SIZE),
            "STUCK_IMAGE_AFTER_S": str(settings.STUCK_IMAGE_AFTER_S),
        }
    )
    # Be a good neighbour on a shared CPU unless the test asks otherwise.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.update(extra or {})
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log_path: Path
    name: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"worker {self.name} exited with {self.process.returncode} before logging {text!r}")
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} did not log {text!r} within {timeout:.0f} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default: kill -9) to the worker and its pool children (its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        if sig == signal.SIGKILL:
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM: running tasks finish), then kill -9 if it hangs."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def run_worker(
    queues: Iterable[str] = ("gpu", "cpu"),
    *,
    concurrency: int = 1,
    pool: str = "solo",
    env: dict[str, str] | None = None,
    loglevel: str = "INFO",
    ready_timeout: float = 120.0,
    extra_args: Iterable[str] = (),
    app: str = "marrowfind",
) -> Iterator[WorkerProcess]:
    """Start a real worker, wait until it is ready, yield it, stop it.

    ``pool="solo"`` is one process doing one task at a time (and the pool a
    GPU worker uses); ``"prefork"`` with ``concurrency`` forks children.
    ``app`` is the module given to ``celery -A``: a test-only app module (e.g.
    ``tests.faults.redelivery_app``) can adjust broker options the settings do
    not expose. On an exception inside the block the worker's log is printed.
    """
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    log_file = tempfile.NamedTemporaryFile(prefix="mf-worker-", suffix=".log", delete=False)  # noqa: SIM115
    log_path = Path(log_file.name)
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker",
        "-Q", ",".join(queues), "-P", pool, "-c", str(concurrency), "-n", name,
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", loglevel, *extra_args,
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=worker_environment(env),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # own process group: kill() reaches the pool children too
    )
    log_file.close()
    worker = WorkerProcess(process=process, log_path=log_path, name=name)
    failed = False
    try:
        worker.wait_for_log(READY_MARKER, timeout=ready_timeout)
        yield worker
    except BaseException:
        failed = True
        raise
    finally:
        worker.stop()
        if failed:
            sys.stderr.write(f"\n----- log of worker {name} (pid {process.pid}) -----\n{worker.log()[-20000:]}\n-----\n")
        with contextlib.suppress(OSError):
            log_path.unlink()


def wait_for_case_status(case, statuses: Iterable[str], timeout: float = 180.0, *, worker: WorkerProcess | None = None, poll: float = 0.5):
    """Poll the database until ``case.status`` is one of ``statuses``; returns the refreshed case.

    On timeout the assertion says where every image is (and the worker's last log lines).
    """
    wanted = set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        case.refresh_from_db()
        if case.status in wanted:
            return case
        if worker is not None and not worker.alive():
            raise AssertionError(f"the worker died (exit {worker.process.returncode}) while case was {case.status}:\n{worker.log()[-5000:]}")
        if time.monotonic() > deadline:
            images = list(case.images.values_list("position", "status", "stage", "error_code"))
            tail = worker.log()[-5000:] if worker is not None else ""
            raise AssertionError(
                f"case {case.pk} is {case.status!r} after {timeout:.0f} s, not one of {sorted(wanted)}; "
                f"images (position, status, stage, error): {images}\n{tail}"
            )
        time.sleep(poll)
