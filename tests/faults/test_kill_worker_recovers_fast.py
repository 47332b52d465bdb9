"""kill -9 of the main worker process mid-case with the *production* settings
(no shortened visibility timeout), beat running as its own process: after a
restart the case completes within 2 minutes of the kill, with one Analysis
per image.

How: the killed worker's heartbeat key in the shared cache expires after
``WORKER_DEAD_AFTER_S``; the next sweep (every ``SWEEP_PERIOD_S``) gives its
claims back and re-sends the work, which the new worker does. The killed
task's own message stays unacknowledged until the visibility timeout (the
hard time limit + 60 s), long after this test; when it comes back the claims
make it a no-op.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from django.conf import settings
from django.db.models import Q

from diagnostics.models import ImageStatus
from diagnostics.services.cases import STAGE_CLASSIFY, STAGE_SEGMENT
from tests.faults.helpers import BrokerFaultTestCase, assert_exactly_once, image_states, upload_case, wait_until
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import (
    REPO_ROOT,
    run_worker,
    wait_for_case_status,
    worker_environment,
)

N_IMAGES = 8
RECOVERY_LIMIT_S = 120


@contextlib.contextmanager
def run_beat():
    """``celery beat`` as its own process (as bin/run and the compose file run it)."""
    folder = tempfile.mkdtemp(prefix="mf-beat-")
    log_path = os.path.join(folder, "beat.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "marrowfind", "beat", "-l", "INFO", "-s", os.path.join(folder, "schedule")],
            cwd=REPO_ROOT, env=worker_environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.services
@pytest.mark.slow
class KillWorkerRecoversFastTests(BrokerFaultTestCase):
    def test_case_completes_within_two_minutes_of_a_kill_9(self):
        self.assertGreater(settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"], RECOVERY_LIMIT_S)
        register_test_model()
        case = upload_case(self.lab, self.technician, [smear_bytes(seed) for seed in range(1, N_IMAGES + 1)]).case
        in_task = Q(status=ImageStatus.PROCESSING, stage__in=[STAGE_CLASSIFY, STAGE_SEGMENT])

        def mid_case():
            images = case.images.all()
            if images.filter(status=ImageStatus.DONE).exists():
                return images.filter(in_task).values_list("pk", "stage", "claimed_by").first()
            return None

        with run_beat():
            with run_worker(env={"WORKER_BATCH_SIZE": "4"}) as first:
                wait_until(mid_case, timeout=180, poll=0.02, what="a task in flight", worker=first)
                os.kill(first.pid, signal.SIGKILL)  # the main worker process only, as an OOM kill would
                killed_at = time.monotonic()
                first.process.wait(timeout=30)
            at_kill = image_states(case)
            self.assertTrue(case.images.filter(in_task).exists(), f"nothing in flight at the kill: {at_kill}")
            with run_worker(env={"WORKER_BATCH_SIZE": "4"}) as second:
                wait_for_case_status(case, {"awaiting_review"}, timeout=RECOVERY_LIMIT_S + 30, worker=second)
                recovered_s = time.monotonic() - killed_at
        sys.stderr.write(f"\nkill -9 to case complete: {recovered_s:.1f} s\n")
        print(f"kill -9 to case complete: {recovered_s:.1f} s")
        self.assertLess(recovered_s, RECOVERY_LIMIT_S, f"states at kill: {at_kill}")
        assert_exactly_once(self, case)
