"""The pipeline functions end to end in one process: classification + CAM, segmentation,
overlays, counts, timings, and the case moving to awaiting review with its summary."""

from __future__ import annotations

import io

from PIL import Image

from diagnostics.models import Analysis, AuditEvent, CaseStatus, ImageStatus
from ml.labels import SUBTYPES
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.modelfixtures import register_test_model
from tests.workers.helpers import run_case_inline


class InlinePipelineTests(BaseTestCase):
    def test_every_image_is_analysed_once_and_the_case_is_ready(self) -> None:
        version = register_test_model()
        case = uploaded_case(self.lab, n_images=3)
        analysis_ids = run_case_inline(case)

        self.assertEqual(case.status, CaseStatus.AWAITING_REVIEW)
        self.assertIsNotNone(case.processing_started_at)
        self.assertIsNotNone(case.processing_finished_at)
        self.assertEqual(len(analysis_ids), 3)
        self.assertEqual(Analysis.objects.filter(image__case=case).count(), 3)
        for image in case.images.all():
            self.assertEqual(image.status, ImageStatus.DONE)
            self.assertEqual(image.error, "")
            analysis = image.analyses.get()
            self.assertEqual(analysis.model_version, version)
            self.assertIn(analysis.label, SUBTYPES)
            self.assertAlmostEqual(sum(analysis.probabilities.values()), 1.0, places=4)
            self.assertAlmostEqual(analysis.confidence, max(analysis.probabilities.values()), places=5)
            self.assertIsNotNone(analysis.all_probability)  # the test model has the binary head
            for overlay in (analysis.cam_overlay, analysis.segmentation_overlay):
                with overlay.open("rb") as handle:
                    picture = Image.open(io.BytesIO(handle.read()))
                    self.assertEqual(picture.format, "PNG")
                    self.assertEqual(picture.size, (image.width, image.height))
            self.assertEqual(set(analysis.cell_counts), {"wbc", "rbc", "platelet"})
            self.assertIsNone(analysis.blasts)  # no cell-level model registered: not determined
            self.assertEqual(len(analysis.cells), sum(analysis.cell_counts.values()))
            for stage in ("decode", "classify_cam", "segmentation", "overlays", "db", "total"):
                self.assertGreaterEqual(analysis.timings[stage], 0.0, stage)

        summary = case.summary
        self.assertEqual((summary["images"], summary["analysed"], summary["failed"]), (3, 3, 0))
        self.assertEqual(sum(summary["per_class"].values()), 3)
        self.assertEqual(sum(summary["binary"].values()), 3)
        self.assertTrue(summary["demo"])
        self.assertIsNone(summary["blasts"])
        self.assertIsNone(summary["blast_fraction"])
        self.assertFalse(summary["who_flag"])
        self.assertFalse(case.who_flag)
        expected_wbc = sum(a.cell_counts["wbc"] for a in Analysis.objects.filter(image__case=case))
        self.assertEqual(summary["wbc"], expected_wbc)

        verbs = list(AuditEvent.objects.filter(case=case).values_list("verb", flat=True))
        self.assertEqual(verbs.count(AuditEvent.Verb.ANALYSED), 3)
        self.assertEqual(verbs.count(AuditEvent.Verb.CASE_READY), 1)

    def test_with_a_cell_model_blasts_are_counted(self) -> None:
        register_test_model()
        cell_version = register_test_model("cell")
        case = uploaded_case(self.lab, n_images=2)
        run_case_inline(case)
        self.assertEqual(case.status, CaseStatus.AWAITING_REVIEW)
        for analysis in Analysis.objects.filter(image__case=case):
            self.assertEqual(analysis.cell_model_version, cell_version)
            self.assertIsNotNone(analysis.blasts)
            self.assertLessEqual(analysis.blasts, analysis.cell_counts["wbc"])
        summary = case.summary
        total_blasts = sum(a.blasts for a in Analysis.objects.filter(image__case=case))
        self.assertEqual(summary["blasts"], total_blasts)
        if summary["wbc"]:
            self.assertAlmostEqual(summary["blast_fraction"], round(total_blasts / summary["wbc"], 4))
            self.assertEqual(summary["who_flag"], summary["blast_fraction"] >= 0.20)
