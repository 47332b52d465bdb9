"""What each worker holds right now, from the image claims in the database:
shown next to the live workers, and, for a worker that did not answer (busy
solo worker, or dead), listed separately and marked stale once the sweeper
would give the images back."""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from diagnostics.models import ImageStatus, SlideImage
from diagnostics.services.cases import STAGE_CLASSIFIED, STAGE_CLASSIFY, STAGE_SEGMENT
from monitoring.pipeline_state import claims_by_worker
from tests.base import BaseTestCase
from tests.factories import UserFactory, case_images


def claim(image, stage: str, token: str, age_s: float) -> None:
    SlideImage.objects.filter(pk=image.pk).update(
        status=ImageStatus.PROCESSING, stage=stage, claimed_by=token, claimed_at=timezone.now() - timedelta(seconds=age_s)
    )


@override_settings(STUCK_IMAGE_AFTER_S=600)
class WorkerClaimsTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        images = case_images(self.lab, 6, status=ImageStatus.QUEUED)
        claim(images[0], STAGE_CLASSIFY, "task-a@gpu1@host", 5)
        claim(images[1], STAGE_CLASSIFY, "task-a@gpu1@host", 5)
        claim(images[2], STAGE_SEGMENT, "task-b@gpu1@host", 2)
        claim(images[3], STAGE_SEGMENT, "task-c@dead@host", 1200)
        claim(images[4], STAGE_CLASSIFIED, "", 30)  # waiting for segmentation: held by nobody

    def test_claims_per_worker(self):
        held = claims_by_worker()
        self.assertEqual(set(held), {"gpu1@host", "dead@host"})
        self.assertEqual(held["gpu1@host"]["images"], 3)
        self.assertEqual(held["gpu1@host"]["stages"], {STAGE_CLASSIFY: 2, STAGE_SEGMENT: 1})
        self.assertEqual(held["gpu1@host"]["tasks"], 2)
        self.assertFalse(held["gpu1@host"]["stale"])
        self.assertTrue(held["dead@host"]["stale"])
        self.assertGreaterEqual(held["dead@host"]["oldest_s"], 1200)

    def test_the_page_lists_claims_of_workers_that_did_not_answer(self):
        self.client.force_login(UserFactory(username="siteadmin", site_admin=True))
        page = self.client.get(reverse("monitoring_dashboard"))
        self.assertContains(page, 'data-testid="unanswered-claims"')
        self.assertContains(page, "dead@host")
        self.assertContains(page, "stale: the sweeper gives these back")
