"""process_case: the case moves to processing and its queued images go out in chunks of WORKER_BATCH_SIZE, once."""

from __future__ import annotations

from django.test import override_settings

from diagnostics import pipeline
from diagnostics.models import CaseStatus, ImageStatus, SlideImage
from tests.base import BaseTestCase
from tests.factories import uploaded_case


class DispatchTests(BaseTestCase):
    @override_settings(WORKER_BATCH_SIZE=2)
    def test_chunks_in_position_order_and_no_second_send(self) -> None:
        case = uploaded_case(self.lab, files=[b"x%d" % i for i in range(5)])
        self.assertTrue(pipeline.start_case(case.pk))
        self.assertFalse(pipeline.start_case(case.pk))  # idempotent
        case.refresh_from_db()
        self.assertEqual(case.status, CaseStatus.PROCESSING)
        self.assertIsNotNone(case.processing_started_at)
        ids = list(case.images.order_by("position").values_list("pk", flat=True))
        self.assertEqual(pipeline.dispatch_queued_images(case.pk), [ids[0:2], ids[2:4], ids[4:5]])
        self.assertEqual(pipeline.dispatch_queued_images(case.pk), [])  # a duplicated process_case sends nothing
        self.assertFalse(SlideImage.objects.filter(case=case, claimed_at__isnull=True).exists())

    def test_only_queued_images_are_sent(self) -> None:
        case = uploaded_case(self.lab, files=[b"x%d" % i for i in range(3)])
        first = case.images.get(position=1)
        SlideImage.objects.filter(pk=first.pk).update(status=ImageStatus.DONE)
        chunks = pipeline.dispatch_queued_images(case.pk)
        self.assertEqual(sorted(image_id for chunk in chunks for image_id in chunk), sorted(case.images.exclude(pk=first.pk).values_list("pk", flat=True)))

    def test_a_finished_case_with_new_images_starts_again(self) -> None:
        case = uploaded_case(self.lab, files=[b"x"], status=CaseStatus.AWAITING_REVIEW)
        self.assertTrue(pipeline.start_case(case.pk))
        case.refresh_from_db()
        self.assertEqual(case.status, CaseStatus.PROCESSING)
        self.assertIsNone(case.processing_finished_at)

    def test_a_signed_out_case_never_restarts(self) -> None:
        case = uploaded_case(self.lab, files=[b"x"], status=CaseStatus.SIGNED_OUT)
        self.assertFalse(pipeline.start_case(case.pk))
