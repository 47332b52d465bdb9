"""The Celery tasks (run eagerly in this process) drive the whole pipeline and record a TaskRun each."""

from __future__ import annotations

from diagnostics import tasks
from diagnostics.models import CaseStatus, TaskRun
from marrowfind.celery import app
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model


class EagerTaskTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self._eager = app.conf.task_always_eager
        app.conf.task_always_eager = True  # .delay() runs inline: no broker, no worker

    def tearDown(self) -> None:
        app.conf.task_always_eager = self._eager
        super().tearDown()

    def test_process_case_runs_everything_and_records_each_task(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, files=[smear_bytes(1), smear_bytes(2), b"broken"])
        tasks.process_case.delay(case.pk)
        case.refresh_from_db()
        self.assertEqual(case.status, CaseStatus.AWAITING_REVIEW)
        runs = TaskRun.objects.filter(case=case)
        self.assertEqual(runs.filter(task_name="process_case").count(), 1)
        self.assertEqual(runs.filter(task_name="classify_chunk").count(), 1)
        self.assertEqual(runs.filter(task_name="segment_image").count(), 2)
        self.assertFalse(runs.filter(ok=False).exists())
        chunk = runs.get(task_name="classify_chunk")
        self.assertEqual(chunk.image_count, 3)
        for stage in ("decode", "classify_cam", "overlays", "db", "task"):
            self.assertIn(stage, chunk.timings)
        for run in runs.filter(task_name="segment_image"):
            for stage in ("decode", "segmentation", "overlays", "db", "task"):
                self.assertIn(stage, run.timings)
            self.assertIsNotNone(run.finished_at)

    def test_without_a_model_the_run_says_why(self) -> None:
        case = uploaded_case(self.lab, files=[smear_bytes(1)])
        tasks.process_case.delay(case.pk)
        run = TaskRun.objects.get(task_name="process_case")
        self.assertFalse(run.ok)
        self.assertEqual(run.error, "no active image model")
        case.refresh_from_db()
        self.assertEqual(case.status, CaseStatus.FAILED)

    def test_the_sweeper_task_records_its_run(self) -> None:
        result = tasks.requeue_stuck_images.delay().get()
        self.assertEqual(result, {"cases": 0, "segment": 0, "failed": 0, "reports": 0, "tiles": 0})
        self.assertTrue(TaskRun.objects.filter(task_name="requeue_stuck_images", ok=True).exists())
