"""An image that takes longer than the task's soft time limit fails alone,
with the time limit as its reason; the other images of the case are analysed.

The slow step is controllable, so the test does not depend on the machine's
speed: the worker runs with ``PIPELINE_SLOW_IMAGE`` naming the second image,
whose decode step then waits until the soft limit interrupts it. The worker
uses the prefork pool: Celery enforces time limits only there (the solo and
threads pools ignore them). Each image is its own chunk (WORKER_BATCH_SIZE=1),
so the limit cuts only the slow one.
"""

from __future__ import annotations

import pytest

from diagnostics.models import ImageStatus
from tests.faults.helpers import BrokerFaultTestCase, assert_exactly_once, failed_images, upload_case
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import run_worker, wait_for_case_status

SOFT_LIMIT_S = 3
N_NORMAL = 3
SLOW_POSITION = 2


@pytest.mark.services
@pytest.mark.slow
class TimeLimitTests(BrokerFaultTestCase):
    def test_the_slow_image_alone_fails_on_the_time_limit(self):
        register_test_model()
        payloads = [smear_bytes(seed) for seed in range(1, N_NORMAL + 2)]
        case = upload_case(self.lab, self.technician, payloads).case
        slow = case.images.get(position=SLOW_POSITION)
        env = {
            "WORKER_BATCH_SIZE": "1",
            "PIPELINE_SLOW_IMAGE": slow.original_filename,
            "CELERY_TASK_SOFT_TIME_LIMIT": str(SOFT_LIMIT_S),
            # Room between the soft and the hard limit, so the soft one (which the pipeline
            # turns into "failed: time limit") always acts before the process is killed.
            "CELERY_TASK_TIME_LIMIT": "60",
        }
        with run_worker(queues=("gpu", "cpu"), pool="prefork", concurrency=1, env=env) as worker:
            wait_for_case_status(case, {"awaiting_review"}, timeout=180, worker=worker)

        assert_exactly_once(self, case, failed=1)
        [failed] = failed_images(case)
        self.assertEqual(failed.position, SLOW_POSITION)
        self.assertEqual(failed.error_code, "time_limit")
        self.assertIn(f"time limit ({SOFT_LIMIT_S} s)", failed.error)
        self.assertEqual(case.images.filter(status=ImageStatus.DONE).count(), N_NORMAL)
