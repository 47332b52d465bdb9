"""A bad image fails alone, with its reason, and never blocks the rest of the case."""

from __future__ import annotations

from diagnostics.models import Analysis, AuditEvent, CaseStatus, ImageStatus
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workers.helpers import run_case_inline


class BadImageInPipelineTests(BaseTestCase):
    def test_corrupt_and_missing_files_fail_alone_with_their_reason(self) -> None:
        register_test_model()
        good = [smear_bytes(1), smear_bytes(2)]
        truncated = smear_bytes(3)[:300]
        case = uploaded_case(self.lab, files=[good[0], truncated, good[1], smear_bytes(4)])
        missing = case.images.get(position=4)
        missing.file.storage.delete(missing.file.name)  # the stored file vanished after the upload

        run_case_inline(case)

        self.assertEqual(case.status, CaseStatus.AWAITING_REVIEW)
        states = {image.position: (image.status, image.error_code) for image in case.images.all()}
        self.assertEqual(
            states,
            {1: (ImageStatus.DONE, ""), 2: (ImageStatus.FAILED, "truncated"), 3: (ImageStatus.DONE, ""),
             4: (ImageStatus.FAILED, "missing_file")},
        )
        self.assertIn("cut short", case.images.get(position=2).error)
        self.assertEqual(Analysis.objects.filter(image__case=case).count(), 2)
        self.assertEqual((case.summary["analysed"], case.summary["failed"]), (2, 2))
        self.assertEqual(AuditEvent.objects.filter(case=case, verb=AuditEvent.Verb.ANALYSIS_FAILED).count(), 2)

    def test_a_case_where_every_image_fails_is_failed(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, files=[b"not an image at all" * 5, smear_bytes(1)[:200]])
        run_case_inline(case)
        self.assertEqual(case.status, CaseStatus.FAILED)
        self.assertEqual(case.summary["failed"], 2)

    def test_without_a_model_images_fail_with_what_to_do(self) -> None:
        from diagnostics import pipeline

        case = uploaded_case(self.lab, n_images=2)
        pipeline.fail_case_without_model(case.pk)
        case.refresh_from_db()
        self.assertEqual(case.status, CaseStatus.FAILED)
        for image in case.images.all():
            self.assertEqual(image.error_code, "no_model")
            self.assertIn("bootstrap_demo", image.error)
