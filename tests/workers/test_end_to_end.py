"""End to end: a case uploaded through the web form is analysed by a REAL Celery
worker process over Redis and PostgreSQL, and ends awaiting review with the right totals.

The upload holds synthetic smears and one corrupt file (refused at upload with
its reason). One stored image is then damaged on disk before the worker starts,
so the worker-side failure path runs too: that image fails alone, with its reason.
"""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnostics.models import (
    Analysis,
    AuditEvent,
    Case,
    CaseStatus,
    ImageStatus,
    TaskRun,
)
from tests.base import BaseTransactionTestCase
from tests.imagefactory import smear_png_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import (
    purge_broker,
    require_services,
    run_worker,
    wait_for_case_status,
)

GOOD_IMAGES = 8
LABELS = ("Benign", "Early", "Pre", "Pro")


@pytest.mark.services
class EndToEndTests(BaseTransactionTestCase):
    def setUp(self) -> None:
        require_services()
        super().setUp()
        purge_broker()

    def test_upload_then_real_worker_then_awaiting_review(self) -> None:
        started = time.perf_counter()
        version = register_test_model()
        good = [smear_png_bytes(seed=seed, label=LABELS[seed % 4], size=(160, 160)) for seed in range(GOOD_IMAGES)]
        corrupt = good[0][: len(good[0]) // 3]
        files = [SimpleUploadedFile(f"smear-{i + 1}.png", data, "image/png") for i, data in enumerate(good)]
        files.insert(3, SimpleUploadedFile("corrupt.png", corrupt, "image/png"))

        self.client.force_login(self.technician)
        response = self.client.post(
            reverse("case_new"),
            {"lab": self.lab.pk, "accession_number": "E2E-1", "patient_pseudonym": "P-E2E", "specimen": "bone_marrow_aspirate",
             "stain": "Wright-Giemsa", "clinical_note": "", "files": files},
        )
        case = Case.objects.get(lab=self.lab, accession_number="E2E-1")
        self.assertRedirects(response, reverse("case_detail", args=[case.pk]), fetch_redirect_response=False)
        self.assertEqual(case.images.count(), GOOD_IMAGES)
        rejected = case.batches.get().rejected
        self.assertEqual([(r["filename"], r["code"]) for r in rejected], [("corrupt.png", "truncated")])
        self.assertIn("cut short", rejected[0]["reason"])

        # Damage one stored image after the upload: it must fail in the worker, alone.
        damaged = case.images.get(position=5)
        with open(damaged.file.path, "r+b") as handle:
            handle.truncate(200)

        with run_worker(queues=("gpu", "cpu"), pool="prefork", concurrency=2) as worker:
            case = wait_for_case_status(case, {CaseStatus.AWAITING_REVIEW, CaseStatus.FAILED}, timeout=300, worker=worker)
        wall = time.perf_counter() - started

        self.assertEqual(case.status, CaseStatus.AWAITING_REVIEW)
        images = list(case.images.order_by("position"))
        done = [image for image in images if image.status == ImageStatus.DONE]
        failed = [image for image in images if image.status == ImageStatus.FAILED]
        self.assertEqual(len(done), GOOD_IMAGES - 1)
        self.assertEqual([image.position for image in failed], [5])
        self.assertEqual(failed[0].error_code, "truncated")
        self.assertIn("cut short", failed[0].error)

        # Every good image analysed exactly once, by the registered model, with both overlays.
        for image in done:
            analyses = list(Analysis.objects.filter(image=image))
            self.assertEqual(len(analyses), 1, image)
            self.assertEqual(analyses[0].model_version_id, version.pk)
            self.assertTrue(analyses[0].cam_overlay and analyses[0].segmentation_overlay)
            self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.ANALYSED, object_id=str(image.pk)).count(), 1)
        self.assertFalse(Analysis.objects.filter(image=failed[0]).exists())

        summary = case.summary
        self.assertEqual((summary["images"], summary["analysed"], summary["failed"]), (GOOD_IMAGES, GOOD_IMAGES - 1, 1))
        self.assertEqual(sum(summary["per_class"].values()), GOOD_IMAGES - 1)
        analyses = Analysis.objects.filter(image__case=case)
        self.assertEqual(summary["wbc"], sum(a.cell_counts["wbc"] for a in analyses))
        self.assertEqual(summary["cells"], sum(sum(a.cell_counts.values()) for a in analyses))
        self.assertTrue(summary["demo"])
        self.assertEqual(AuditEvent.objects.filter(case=case, verb=AuditEvent.Verb.CASE_READY).count(), 1)

        # The worker recorded its task runs, and the progress endpoint agrees.
        runs = TaskRun.objects.filter(case=case)
        self.assertEqual(runs.filter(task_name="segment_image", ok=True).count(), GOOD_IMAGES - 1)
        self.assertTrue(all(run.worker.startswith("test-") for run in runs))
        self.assertEqual({run.queue for run in runs.filter(task_name="classify_chunk")}, {"gpu"})
        progress = self.client.get(reverse("case_progress_json", args=[case.pk])).json()
        self.assertEqual((progress["total"], progress["done"], progress["failed"]), (GOOD_IMAGES, GOOD_IMAGES - 1, 1))

        print(f"\nend-to-end wall time (upload -> awaiting review, {GOOD_IMAGES} images + 1 corrupt, "
              f"real prefork worker x2 incl. start-up): {wall:.1f} s")
