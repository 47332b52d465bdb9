"""kill -9 of the worker in the middle of a batch, then a new worker: the case
completes with exactly one Analysis per image.

How it recovers: tasks are ``acks_late`` with ``reject_on_worker_lost``, so
the message of the task the worker was running is never acknowledged; Redis
hands it back after the visibility timeout (shortened for this test by
``tests.faults.redelivery_app``), the new worker runs it again with the same
task id, re-takes the images its first run had claimed, and the database
claims plus the unique constraint make everything the first run had finished
a no-op. No sweeper runs in this test (no beat), so the redelivery alone
must do it.
"""

from __future__ import annotations

import pytest
from django.db.models import Q

from diagnostics.models import ImageStatus, SlideImage
from diagnostics.services.cases import STAGE_CLASSIFY, STAGE_SEGMENT
from tests.faults.helpers import BrokerFaultTestCase, assert_exactly_once, image_states, upload_case, wait_until
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import run_worker, wait_for_case_status

N_IMAGES = 8
WORKER_ENV = {
    "WORKER_BATCH_SIZE": "4",
    # Hard limit below the (test) visibility timeout, as the settings require in production.
    "CELERY_TASK_SOFT_TIME_LIMIT": "15",
    "CELERY_TASK_TIME_LIMIT": "20",
    "MF_TEST_VISIBILITY_TIMEOUT_S": "25",
}


@pytest.mark.services
@pytest.mark.slow
class KillWorkerMidBatchTests(BrokerFaultTestCase):
    def test_case_completes_once_after_kill_9(self):
        register_test_model()
        case = upload_case(self.lab, self.technician, [smear_bytes(seed) for seed in range(1, N_IMAGES + 1)]).case
        in_task = Q(status=ImageStatus.PROCESSING, stage__in=[STAGE_CLASSIFY, STAGE_SEGMENT])

        def mid_batch():
            images = case.images.all()
            if images.filter(status=ImageStatus.DONE).exists():
                return images.filter(in_task).values_list("pk", "stage", "claimed_by").first()
            return None

        with run_worker(app="tests.faults.redelivery_app", env=WORKER_ENV) as first:
            wait_until(mid_batch, timeout=120, poll=0.02, what="a task in flight", worker=first)
            first.kill()  # SIGKILL to the worker's process group: no acknowledgement, no cleanup
        at_kill = image_states(case)
        in_flight = case.images.filter(in_task).values_list("pk", "stage", "claimed_by").first()
        self.assertIsNotNone(in_flight, f"no task was in flight when the worker died: {at_kill}")
        image_id, stage, claimed_by = in_flight
        killed_task_id = claimed_by.split("@", 1)[0]

        with run_worker(app="tests.faults.redelivery_app", env=WORKER_ENV) as second:
            wait_for_case_status(case, {"awaiting_review"}, timeout=150, worker=second)
            log = second.log()

        assert_exactly_once(self, case)
        # The killed task's own message came back (not a new one): same task id, run by the new worker.
        self.assertIn(f"[{killed_task_id}] received", log, f"killed in {stage}; states at kill: {at_kill}")
        image = SlideImage.objects.get(pk=image_id)
        self.assertEqual(image.status, ImageStatus.DONE)
        self.assertLessEqual(image.attempts, 2, "taken at most once more after the kill")
