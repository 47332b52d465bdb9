"""The sweeper gives back stale claims and re-sends lost work, and leaves fresh work alone."""

from __future__ import annotations

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from diagnostics import pipeline, sweeper
from diagnostics.models import ImageStatus, SlideImage
from diagnostics.pipeline import STAGE_CLASSIFIED, STAGE_CLASSIFY, STAGE_SEGMENT
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.modelfixtures import register_test_model


@override_settings(STUCK_IMAGE_AFTER_S=60)
class RequeueStuckImagesTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.now = timezone.now()
        self.stale = self.now - timedelta(seconds=120)
        self.fresh = self.now - timedelta(seconds=5)

    def test_stale_classification_claims_go_back_to_the_queue(self) -> None:
        case = uploaded_case(self.lab, n_images=3)
        one, two, three = case.images.order_by("position")
        SlideImage.objects.filter(pk=one.pk).update(status=ImageStatus.PROCESSING, stage=STAGE_CLASSIFY, claimed_at=self.stale, claimed_by="t@dead", attempts=1)
        SlideImage.objects.filter(pk=two.pk).update(status=ImageStatus.PROCESSING, stage=STAGE_CLASSIFY, claimed_at=self.fresh, claimed_by="t@alive", attempts=1)
        SlideImage.objects.filter(pk=three.pk).update(claimed_at=self.fresh)  # sent a moment ago, waiting in the queue
        plan = sweeper.requeue_stuck_images(now=self.now)
        one.refresh_from_db(); two.refresh_from_db(); three.refresh_from_db()
        self.assertEqual((one.status, one.claimed_by, one.claimed_at), (ImageStatus.QUEUED, "", None))
        self.assertEqual(two.status, ImageStatus.PROCESSING)
        self.assertEqual(plan.cases, [case.pk])
        # process_case then sends only what is not already waiting in the broker.
        self.assertEqual(pipeline.dispatch_queued_images(case.pk), [[one.pk]])

    def test_a_stale_segmentation_is_sent_again(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, n_images=2)
        analysed: list[int] = []
        pipeline.classify_chunk(list(case.images.values_list("pk", flat=True)), on_analysed=analysed.append)
        first, second = case.images.order_by("position")
        SlideImage.objects.filter(pk=first.pk).update(stage=STAGE_SEGMENT, claimed_at=self.stale, claimed_by="t@dead")
        SlideImage.objects.filter(pk=second.pk).update(stage=STAGE_CLASSIFIED, claimed_at=self.fresh)
        plan = sweeper.requeue_stuck_images(now=self.now)
        self.assertEqual(plan.segment, [first.analyses.get().pk])
        first.refresh_from_db()
        self.assertEqual((first.stage, first.claimed_at), (STAGE_CLASSIFIED, self.now))
        # A second sweep right after finds nothing: the re-send is fresh.
        self.assertEqual(sweeper.requeue_stuck_images(now=self.now + timedelta(seconds=1)).segment, [])
        # And the re-sent segmentation completes the image.
        self.assertEqual(pipeline.segment_image(plan.segment[0]).state, "done")

    def test_queued_images_whose_message_was_lost_are_found(self) -> None:
        case = uploaded_case(self.lab, n_images=1)
        SlideImage.objects.filter(case=case).update(created_at=self.stale, claimed_at=None)  # never sent
        self.assertEqual(sweeper.requeue_stuck_images(now=self.now).cases, [case.pk])
        SlideImage.objects.filter(case=case).update(claimed_at=self.fresh)
        self.assertEqual(sweeper.requeue_stuck_images(now=self.now).cases, [])

    def test_an_image_that_keeps_killing_workers_fails(self) -> None:
        case = uploaded_case(self.lab, n_images=1)
        SlideImage.objects.filter(case=case).update(
            status=ImageStatus.PROCESSING, stage=STAGE_CLASSIFY, claimed_at=self.stale,
            attempts=pipeline.MAX_IMAGE_ATTEMPTS,
        )
        plan = sweeper.requeue_stuck_images(now=self.now)
        image = case.images.get()
        self.assertEqual(plan.failed, [image.pk])
        self.assertEqual(image.status, ImageStatus.FAILED)
        self.assertIn("Gave up after 3 attempts", image.error)
        case.refresh_from_db()
        self.assertEqual(case.status, "failed")
