"""The JSON progress endpoint: done/total and the number of images at each stage."""

from __future__ import annotations

from django.urls import reverse

from diagnostics.models import CaseStatus, ImageStatus, SlideImage
from tests.base import BaseTestCase
from tests.factories import BatchFactory, CaseFactory, SlideImageFactory


class ProgressJsonTests(BaseTestCase):
    def test_counts_per_stage(self) -> None:
        case = CaseFactory(lab=self.lab, status=CaseStatus.PROCESSING)
        batch = BatchFactory(case=case)
        states = [
            (ImageStatus.QUEUED, ""), (ImageStatus.QUEUED, ""), (ImageStatus.PROCESSING, "classify"),
            (ImageStatus.PROCESSING, "classified"), (ImageStatus.PROCESSING, "segmentation"),
            (ImageStatus.DONE, ""), (ImageStatus.DONE, ""), (ImageStatus.FAILED, ""),
        ]
        for position, (status, stage) in enumerate(states, start=1):
            SlideImageFactory(batch=batch, case=case, position=position, status=status, stage=stage)
        self.client.force_login(self.pathologist)
        response = self.client.get(reverse("case_progress_json", args=[case.pk]))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Cache-Control"], "no-store")
        data = response.json()
        self.assertEqual((data["total"], data["done"], data["failed"], data["finished"], data["remaining"]), (8, 2, 1, 3, 5))
        self.assertEqual(data["percent"], 37.5)
        self.assertEqual(
            data["stages"],
            {"queued": 2, "classify": 1, "classified": 1, "segmentation": 1, "done": 2, "failed": 1},
        )
        self.assertTrue(data["active"])
        self.assertEqual(data["status"], "processing")
        self.assertIsNone(data["summary"])

        SlideImage.objects.filter(case=case).exclude(status=ImageStatus.FAILED).update(status=ImageStatus.DONE, stage="")
        case.status = CaseStatus.AWAITING_REVIEW
        case.summary = {"images": 8}
        case.save()
        data = self.client.get(reverse("case_progress_json", args=[case.pk])).json()
        self.assertFalse(data["active"])
        self.assertEqual(data["summary"], {"images": 8})

    def test_outsider_404_and_anonymous_redirect(self) -> None:
        case = CaseFactory(lab=self.lab)
        url = reverse("case_progress_json", args=[case.pk])
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(url).status_code, 404)
        self.client.logout()
        self.assertEqual(self.client.get(url).status_code, 302)
