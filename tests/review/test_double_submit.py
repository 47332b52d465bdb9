"""A double-submitted review (the same form posted twice) is recorded once."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection
from django.urls import reverse

from diagnostics.models import AuditEvent
from review.models import Review
from review.services import ReviewError, record_review
from tests.base import BaseTestCase, BaseTransactionTestCase
from tests.factories import analysed_case


class DoubleSubmitTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=2, labels=["Pre", "Benign"])
        self.client.force_login(self.pathologist)

    def test_same_token_twice_records_one_review_and_one_audit_event(self):
        token = str(uuid.uuid4())
        url = reverse("review_image", args=[self.case.pk, self.images[0].pk])
        first = self.client.post(url, {"label": "Early", "submission_token": token}, HTTP_HX_REQUEST="true")
        second = self.client.post(url, {"label": "Early", "submission_token": token}, HTTP_HX_REQUEST="true")
        self.assertEqual((first.status_code, second.status_code), (200, 200))
        self.assertContains(second, "already recorded")
        self.assertEqual(Review.objects.count(), 1)
        self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.RELABELLED).count(), 1)

    def test_token_reused_for_another_image_is_refused(self):
        token = uuid.uuid4()
        record_review(image=self.images[0], reviewer=self.pathologist, label="Pre", submission_token=token)
        with self.assertRaises(ReviewError):
            record_review(image=self.images[1], reviewer=self.pathologist, label="Pre", submission_token=token)
        self.assertEqual(Review.objects.count(), 1)


@pytest.mark.services
class ConcurrentDoubleSubmitTests(BaseTransactionTestCase):
    """Two requests with the same token at the same moment (two connections)."""

    def test_concurrent_posts_record_once(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL for real row locks between connections")
        _, images = analysed_case(self.lab, n_images=1, labels=["Pre"])
        token = uuid.uuid4()
        barrier = threading.Barrier(2)
        outcomes, errors = [], []

        def submit():
            try:
                barrier.wait()
                outcomes.append(record_review(image=images[0], reviewer=self.pathologist, label="Pro", submission_token=token))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=submit) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(o.created for o in outcomes), [False, True])
        self.assertEqual(Review.objects.filter(submission_token=token).count(), 1)
