"""Redis restarts in the middle of a batch: the work resumes and nothing is lost.

The hard version of the fault: this test's own ``redis-server`` runs with
persistence off and is killed with SIGKILL, so every message it held (the
queued chunks, the segmentation messages, the unacknowledged one) is gone
when it comes back empty on the same port. What must hold anyway:

* the worker process survives and reconnects by itself ("the work resumes");
* no image is lost: the database, not the broker, is the record of what is
  left to do, and the periodic sweeper (``requeue_stuck_images``) re-sends
  images whose message went missing once their claim is older than
  ``STUCK_IMAGE_AFTER_S``. Beat sends the sweeper every 120 s in production;
  here the test sends it every few seconds, through the restarted Redis;
* still exactly one Analysis per image, and the case finishes once.

(The compose file runs Redis with ``appendonly yes``, which keeps queued
messages across a restart too; this test does not rely on that.)
"""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from diagnostics.models import ImageStatus
from monitoring.broker import queue_depths
from tests.base import BaseTransactionTestCase
from tests.faults.helpers import PrivateRedis, assert_exactly_once, image_states, upload_case, use_broker, wait_until
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import require_services, run_worker

N_IMAGES = 8
STALE_AFTER_S = 30  # the smallest STUCK_IMAGE_AFTER_S the settings accept
QUEUES = ("gpu", "cpu")


@pytest.mark.services
@pytest.mark.slow
@override_settings(STUCK_IMAGE_AFTER_S=STALE_AFTER_S)
class RedisRestartMidBatchTests(BaseTransactionTestCase):
    def setUp(self):
        require_services()  # PostgreSQL (the private Redis is started below)
        super().setUp()
        self.redis = PrivateRedis(appendonly=False)
        self.redis.start()
        self.addCleanup(self.redis.stop)
        broker = use_broker(self.redis.url)
        broker.__enter__()
        self.addCleanup(broker.__exit__, None, None, None)

    def test_work_resumes_and_nothing_is_lost(self):
        from diagnostics.tasks import requeue_stuck_images

        register_test_model()
        with run_worker(queues=QUEUES, env={"WORKER_BATCH_SIZE": "2"}) as worker:
            pid = worker.pid
            case = upload_case(self.lab, self.technician, [smear_bytes(seed) for seed in range(1, N_IMAGES + 1)]).case

            def some_done_some_left():
                return 2 <= case.images.filter(status=ImageStatus.DONE).count() < N_IMAGES

            wait_until(some_done_some_left, timeout=120, poll=0.05, what="part of the batch done", worker=worker)
            self.redis.kill()
            time.sleep(2)
            self.redis.start()  # same port, empty: persistence is off
            at_restart = image_states(case)
            lost = [s for s in at_restart if s[1] not in (ImageStatus.DONE, ImageStatus.FAILED)]
            self.assertTrue(lost, f"the batch finished before Redis went down: {at_restart}")
            self.assertEqual(self.redis.message_count(QUEUES), 0, "the restarted Redis came back empty")

            # The worker reconnects on its own.
            wait_until(lambda: queue_depths(QUEUES, url=self.redis.url).ok, timeout=10, what="Redis back")
            wait_until(lambda: worker.log().count("Connected to redis://") >= 2, timeout=60,
                       what="the worker reconnected", worker=worker)

            # Beat's job, faster: send the sweeper until the case is done.
            deadline = time.monotonic() + STALE_AFTER_S + 120
            while True:
                case.refresh_from_db()
                if case.status == "awaiting_review" or time.monotonic() > deadline:
                    break
                self.assertTrue(worker.alive(), worker.log()[-3000:])
                requeue_stuck_images.delay()
                time.sleep(4)
            self.assertEqual(worker.pid, pid)
            self.assertTrue(worker.alive(), "the same worker process carried on after the restart")
            log = worker.log()

        assert_exactly_once(self, case)
        self.assertIn("requeue_stuck_images", log)
