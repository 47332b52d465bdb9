"""A poison image (a file that passed the upload check, then turned out not to
decode in the worker: here its bytes were cut on disk after the upload) fails
alone, with its reason, at its first attempt; the rest of the case is analysed."""

from __future__ import annotations

import pytest

from diagnostics.models import ImageStatus, TaskRun
from ml.errors import ImageLoadError
from tests.faults.helpers import BrokerFaultTestCase, assert_exactly_once, failed_images, upload_case
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import run_worker, wait_for_case_status

N_IMAGES = 5
POISON_POSITION = 3


@pytest.mark.services
@pytest.mark.slow
class PoisonImageTests(BrokerFaultTestCase):
    def test_the_poison_image_alone_fails_with_its_reason(self):
        register_test_model()
        case = upload_case(self.lab, self.technician, [smear_bytes(seed) for seed in range(1, N_IMAGES + 1)]).case
        poison = case.images.get(position=POISON_POSITION)
        path = poison.file.path
        with open(path, "rb") as handle:
            data = handle.read()
        with open(path, "wb") as handle:  # accepted at upload; broken by the time a worker reads it
            handle.write(data[: len(data) // 2])

        with run_worker(queues=("gpu", "cpu"), env={"WORKER_BATCH_SIZE": "8"}) as worker:  # one batch with all images
            wait_for_case_status(case, {"awaiting_review"}, timeout=150, worker=worker)

        assert_exactly_once(self, case, failed=1)
        [failed] = failed_images(case)
        self.assertEqual(failed.position, POISON_POSITION)
        self.assertIn(failed.error_code, {"truncated", "unsupported", "not_an_image"})
        # The same words the image loader uses for this kind of damage, readable by lab staff.
        with self.assertRaises(ImageLoadError) as raised:
            from ml.imageio import load_image

            load_image(data[: len(data) // 2], filename="x.png")
        self.assertEqual((failed.error_code, failed.error), (raised.exception.code, raised.exception.reason))
        self.assertEqual(failed.attempts, 1, "a bad image is not retried")
        self.assertEqual(case.images.filter(status=ImageStatus.DONE).count(), N_IMAGES - 1)
        self.assertFalse(failed.analyses.exists())
        # A bad image is not a task failure: no run errored or was retried.
        runs = TaskRun.objects.filter(case=case)
        self.assertFalse(runs.filter(ok=False).exists(), list(runs.values_list("task_name", "error")))
        self.assertFalse(runs.filter(retries__gt=0).exists())
        case.refresh_from_db()
        self.assertEqual((case.summary["analysed"], case.summary["failed"]), (N_IMAGES - 1, 1))
