"""An image that takes longer than the task's soft time limit fails alone,
with the time limit as its reason; the other images of the case are analysed.

The slow image is genuinely slow (a 6000 x 6000 field: decoding it, its
full-size CAM overlay and PNG take several seconds on this CPU), not a
test hook that sleeps. The worker uses the prefork pool: Celery enforces time
limits only there (the solo and threads pools ignore them). Each image is its
own chunk (WORKER_BATCH_SIZE=1), so the limit cuts only the slow one.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from diagnostics.models import ImageStatus
from tests.faults.helpers import (
    BrokerFaultTestCase,
    assert_exactly_once,
    failed_images,
    smear_bytes,
    upload_case,
)
from tests.modelfixtures import register_test_model
from tests.workerproc import run_worker, wait_for_case_status

SOFT_LIMIT_S = 3
N_NORMAL = 3


def slow_field_png(side: int = 6000, seed: int = 0) -> bytes:
    """A large smear-like field (pale background, many stained disks); compresses to well under the upload limit."""
    import cv2

    rng = np.random.default_rng(seed)
    pixels = np.full((side, side, 3), (232, 220, 226), np.uint8)
    for _ in range(side * side // 4000):
        x, y = (int(v) for v in rng.integers(0, side, 2))
        cv2.circle(pixels, (x, y), int(rng.integers(8, 20)), (200, 120, 140), -1)
    for _ in range(side * side // 60000):
        x, y = (int(v) for v in rng.integers(0, side, 2))
        cv2.circle(pixels, (x, y), int(rng.integers(20, 30)), (120, 60, 160), -1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.services
@pytest.mark.slow
class TimeLimitTests(BrokerFaultTestCase):
    def test_the_slow_image_alone_fails_on_the_time_limit(self):
        register_test_model()
        payloads = [smear_bytes(seed) for seed in range(1, N_NORMAL + 1)]
        payloads.insert(1, slow_field_png())
        case = upload_case(self.lab, self.technician, payloads).case
        env = {
            "WORKER_BATCH_SIZE": "1",
            "CELERY_TASK_SOFT_TIME_LIMIT": str(SOFT_LIMIT_S),
            # Room between the soft and the hard limit, so the soft one (which the pipeline
            # turns into "failed: time limit") always acts before the process is killed.
            "CELERY_TASK_TIME_LIMIT": "60",
        }
        with run_worker(queues=("gpu", "cpu"), pool="prefork", concurrency=1, env=env) as worker:
            wait_for_case_status(case, {"awaiting_review"}, timeout=180, worker=worker)

        assert_exactly_once(self, case, failed=1)
        [failed] = failed_images(case)
        self.assertEqual(failed.position, 2)
        self.assertEqual(failed.error_code, "time_limit")
        self.assertIn(f"time limit ({SOFT_LIMIT_S} s)", failed.error)
        self.assertEqual(case.images.filter(status=ImageStatus.DONE).count(), N_NORMAL)
