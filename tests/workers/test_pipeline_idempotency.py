"""Duplicated or redelivered messages never duplicate a result: claims, get_or_create on
(image, model_version), and an idempotent finalize."""

from __future__ import annotations

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from diagnostics import pipeline
from diagnostics.models import Analysis, AuditEvent, CaseStatus, ImageStatus, SlideImage
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.modelfixtures import register_test_model


class IdempotencyTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.version = register_test_model()
        self.case = uploaded_case(self.lab, n_images=2)
        self.ids = list(self.case.images.order_by("position").values_list("pk", flat=True))

    def test_the_same_chunk_twice_analyses_each_image_once(self) -> None:
        first: list[int] = []
        second: list[int] = []
        pipeline.classify_chunk(self.ids, self.version.pk, token=pipeline.claim_token("task-a"), on_analysed=first.append)
        outcome = pipeline.classify_chunk(self.ids, self.version.pk, token=pipeline.claim_token("task-b"), on_analysed=second.append)
        self.assertEqual(len(first), 2)
        self.assertEqual(outcome.claimed, [])  # already taken: the duplicate does nothing
        self.assertEqual(second, [])
        for analysis_id in first + first:  # segment messages delivered twice
            pipeline.segment_image(analysis_id)
        self.assertEqual(Analysis.objects.filter(image__case=self.case).count(), 2)
        self.assertEqual(AuditEvent.objects.filter(case=self.case, verb=AuditEvent.Verb.ANALYSED).count(), 2)
        self.assertEqual(AuditEvent.objects.filter(case=self.case, verb=AuditEvent.Verb.CASE_READY).count(), 1)

    def test_a_rerun_after_a_crash_reuses_the_existing_analysis(self) -> None:
        analysed: list[int] = []
        pipeline.classify_chunk(self.ids, token=pipeline.claim_token("task-a"), on_analysed=analysed.append)
        # The worker died after writing the analyses; the sweeper gave the images back.
        SlideImage.objects.filter(pk__in=self.ids).update(status=ImageStatus.QUEUED, stage="", claimed_at=None)
        again: list[int] = []
        pipeline.classify_chunk(self.ids, token=pipeline.claim_token("task-b"), on_analysed=again.append)
        self.assertEqual(sorted(again), sorted(analysed))  # the same rows, handed on again
        self.assertEqual(Analysis.objects.filter(image__case=self.case).count(), 2)

    def test_a_retry_of_the_same_task_may_take_its_own_claims_back(self) -> None:
        token = pipeline.claim_token("task-a", "celery@one")
        self.assertEqual(pipeline.claim_for_classification(self.ids, token), self.ids)
        # The retry may run on another worker: same task id, different host.
        self.assertEqual(pipeline.claim_for_classification(self.ids, pipeline.claim_token("task-a", "celery@two")), self.ids)
        self.assertEqual(pipeline.claim_for_classification(self.ids, pipeline.claim_token("task-b")), [])

    @override_settings(STUCK_IMAGE_AFTER_S=60)
    def test_a_stale_claim_is_taken_over_and_a_poison_image_gives_up(self) -> None:
        token = pipeline.claim_token("task-a")
        pipeline.claim_for_classification(self.ids, token)
        long_ago = timezone.now() - timedelta(seconds=120)
        SlideImage.objects.filter(pk=self.ids[0]).update(claimed_at=long_ago)
        SlideImage.objects.filter(pk=self.ids[1]).update(claimed_at=long_ago, attempts=pipeline.MAX_IMAGE_ATTEMPTS)
        taken = pipeline.claim_for_classification(self.ids, pipeline.claim_token("task-b"))
        self.assertEqual(taken, [self.ids[0]])
        poison = SlideImage.objects.get(pk=self.ids[1])
        self.assertEqual((poison.status, poison.error_code), (ImageStatus.FAILED, "too_many_attempts"))

    def test_finalize_is_idempotent_and_waits_for_every_image(self) -> None:
        self.assertFalse(pipeline.finalize_case_if_complete(self.case.pk))  # images still queued
        SlideImage.objects.filter(pk=self.ids[0]).update(status=ImageStatus.DONE)
        self.assertFalse(pipeline.finalize_case_if_complete(self.case.pk))
        SlideImage.objects.filter(pk=self.ids[1]).update(status=ImageStatus.FAILED, error="x")
        self.assertTrue(pipeline.finalize_case_if_complete(self.case.pk))
        self.assertFalse(pipeline.finalize_case_if_complete(self.case.pk))
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)
        self.assertEqual((self.case.summary["analysed"], self.case.summary["failed"]), (1, 1))
        self.assertEqual(AuditEvent.objects.filter(case=self.case, verb=AuditEvent.Verb.CASE_READY).count(), 1)
