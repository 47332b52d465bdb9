"""Progress while a case runs, and the case summary once it has results."""

from __future__ import annotations

from diagnostics.models import CaseStatus, ImageStatus
from diagnostics.services.cases import case_progress
from tests.api.helpers import ApiTestCase
from tests.factories import BatchFactory, CaseFactory, SlideImageFactory


class ProgressTests(ApiTestCase):
    def test_progress_counts_images_per_stage(self) -> None:
        case = CaseFactory(lab=self.lab, status=CaseStatus.PROCESSING)
        batch = BatchFactory(case=case)
        states = [
            (ImageStatus.DONE, ""),
            (ImageStatus.FAILED, ""),
            (ImageStatus.PROCESSING, "segmentation"),
            (ImageStatus.QUEUED, ""),
        ]
        for position, (state, stage) in enumerate(states, start=1):
            SlideImageFactory(batch=batch, case=case, position=position, status=state, stage=stage)
        response = self.api.get(self.url("api-case-progress", pk=case.pk))
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body, case_progress(case))  # the same figures as the case page
        self.assertEqual((body["total"], body["done"], body["failed"], body["remaining"]), (4, 1, 1, 2))
        self.assertEqual(body["stages"]["segmentation"], 1)
        self.assertEqual(body["stages"]["queued"], 1)
        self.assertEqual(body["percent"], 50.0)
        self.assertTrue(body["active"])
        self.assertEqual(body["status"], "processing")


class SummaryTests(ApiTestCase):
    def test_summary_of_an_analysed_case(self) -> None:
        case, _ = self.make_analysed_case(images=3)
        response = self.api.get(self.url("api-case-summary", pk=case.pk))
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual((body["images"], body["analysed"], body["failed"]), (3, 3, 0))
        self.assertEqual(body["per_class"], {"Pre": 3})
        self.assertEqual(body["wbc"], 30)
        self.assertEqual(body["cells"], 3 * (10 + 40 + 3))
        # No cell-level model ran: blasts are "not determined", never 0.
        self.assertIsNone(body["blasts"])
        self.assertIsNone(body["blast_percent"])
        self.assertFalse(body["who_flag"])
        self.assertTrue(body["demo"])

    def test_who_flag_at_twenty_percent_blasts_in_marrow(self) -> None:
        case, made = self.make_analysed_case(images=2)
        for _, analysis in made:
            analysis.blasts = 2  # 2 of 10 white cells per image: 20%
            analysis.save()
        body = self.api.get(self.url("api-case-summary", pk=case.pk)).json()
        self.assertEqual((body["blasts"], body["blast_wbc"]), (4, 20))
        self.assertEqual(body["blast_percent"], 20.0)
        self.assertTrue(body["who_flag"])
