"""Helpers for the fault tests: the common test case set-up, real uploads, a
private Redis server that a test may kill and restart, and the exactly-once
assertions every fault test ends with. Workers come from
``tests.workerproc.run_worker`` (``app=`` for a test-only Celery app module).

Nothing here fakes a fault: workers are killed with SIGKILL, Redis is a real
``redis-server`` process, database errors come from PostgreSQL itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django.test import override_settings

from diagnostics.models import Analysis, AuditEvent, Case, ImageStatus, SlideImage
from diagnostics.services.upload import UploadResult, create_case
from tests.base import BaseTransactionTestCase
from tests.workerproc import WorkerProcess, purge_broker, require_services


class BrokerFaultTestCase(BaseTransactionTestCase):
    """Base for fault tests against the shared Redis broker and a real worker.

    Skips (with the reason) without PostgreSQL + Redis, and empties this test's
    broker queues before and after, so a message left over by an earlier test
    can never be what makes a case finish.
    """

    def setUp(self):
        require_services()
        super().setUp()
        purge_broker()
        self.addCleanup(purge_broker)


def upload_case(lab, user, payloads: Iterable[bytes], *, accession: str | None = None) -> UploadResult:
    """Create a case through the upload service, as the web form does: its
    ``process_case`` message is sent to the broker when the transaction commits."""
    files = [
        SimpleUploadedFile(f"field-{i:03d}.png", data, content_type="image/png")
        for i, data in enumerate(payloads, start=1)
    ]
    result = create_case(
        lab=lab,
        user=user,
        fields={
            "accession_number": accession or f"FAULT-{uuid.uuid4().hex[:8]}",
            "patient_pseudonym": "P-FAULT",
            "specimen": "bone_marrow_aspirate",
            "stain": "Wright-Giemsa",
            "clinical_note": "",
        },
        files=files,
    )
    assert not result.rejected, [r.as_dict() for r in result.rejected]
    return result


def wait_until(predicate: Callable[[], object], timeout: float, *, poll: float = 0.05, what: str = "condition",
               worker: WorkerProcess | None = None):
    """Poll ``predicate`` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker died while waiting for {what}:\n{worker.log()[-4000:]}")
        if time.monotonic() > deadline:
            tail = worker.log()[-4000:] if worker is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(poll)


def image_states(case: Case) -> list[tuple[int, str, str, str, int]]:
    return list(case.images.order_by("position").values_list("position", "status", "stage", "error_code", "attempts"))


def assert_exactly_once(testcase, case: Case, *, failed: int = 0) -> None:
    """The invariants every fault must leave intact: the case reached "awaiting
    review" once, every image is finished, and each analysed image has exactly
    one Analysis (the unique constraint plus the claims; this checks both)."""
    case.refresh_from_db()
    testcase.assertEqual(case.status, "awaiting_review", image_states(case))
    images = case.images.all()
    testcase.assertEqual(images.filter(status=ImageStatus.FAILED).count(), failed, image_states(case))
    testcase.assertEqual(images.exclude(status__in=[ImageStatus.DONE, ImageStatus.FAILED]).count(), 0)
    per_image = dict(
        Analysis.objects.filter(image__case=case).values_list("image_id").annotate(n=Count("id")).values_list("image_id", "n")
    )
    done_ids = set(images.filter(status=ImageStatus.DONE).values_list("pk", flat=True))
    testcase.assertLessEqual(done_ids, set(per_image), "every analysed image has its Analysis")
    testcase.assertTrue(all(n == 1 for n in per_image.values()), f"analyses per image: {per_image}")
    for analysis in Analysis.objects.filter(image_id__in=done_ids):
        testcase.assertTrue(analysis.segmentation_overlay, f"image {analysis.image_id} has no segmentation overlay")
        testcase.assertIn("segmentation", analysis.timings)
    testcase.assertEqual(
        AuditEvent.objects.filter(case=case, verb=AuditEvent.Verb.CASE_READY).count(), 1, "case_ready recorded once"
    )
    testcase.assertEqual(case.summary.get("analysed"), len(done_ids))


# --------------------------------------------------------------------------- a private Redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A ``redis-server`` of this test alone (never the shared one), which the
    test may kill and start again on the same port. Persistence is off unless
    ``appendonly``: a restart then loses every message it held."""

    def __init__(self, port: int | None = None, *, appendonly: bool = False) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self.folder = Path(tempfile.mkdtemp(prefix="mf-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            import pytest

            pytest.skip("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                   "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash, without saving anything."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def message_count(self, queues: Iterable[str]) -> int:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        return sum(client.llen(queue) for queue in queues)


def _reset_broker_pools(app) -> None:
    """Forget every pooled broker connection (kombu keeps them in a process-wide
    registry keyed by URL), so the next send connects to the current broker URL."""
    from kombu import pools

    pools.reset()
    app._pool = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None


@contextlib.contextmanager
def use_broker(url: str) -> Iterator[None]:
    """Point this test process's Celery app (what the upload service sends
    with) and ``settings.CELERY_BROKER_URL`` (what a started worker is given) at ``url``."""
    from marrowfind.celery import app

    previous = app.conf.get("broker_url")
    previous_env = os.environ.get("CELERY_BROKER_URL")
    with override_settings(CELERY_BROKER_URL=url):
        # Celery reads $CELERY_BROKER_URL before its own setting: change both.
        os.environ["CELERY_BROKER_URL"] = url
        app.conf.broker_url = url
        _reset_broker_pools(app)
        try:
            yield
        finally:
            if previous_env is None:
                os.environ.pop("CELERY_BROKER_URL", None)
            else:
                os.environ["CELERY_BROKER_URL"] = previous_env
            app.conf.broker_url = previous
            _reset_broker_pools(app)


def failed_images(case: Case) -> list[SlideImage]:
    return list(case.images.filter(status=ImageStatus.FAILED).order_by("position"))
