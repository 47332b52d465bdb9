"""Failures on the dashboard: each failed image with its reason code, the
readable reason and how many times a worker took it; each failed task run with
its error, whether it was retried, and Celery's retry number."""

from __future__ import annotations

from django.core.cache import cache
from django.urls import reverse

from monitoring.pipeline_state import (
    failure_counts,
    recent_image_failures,
    recent_task_failures,
)
from tests.base import BaseTestCase
from tests.factories import TaskRunFactory, UserFactory, case_images, fail_image


class FailureTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.images = case_images(self.lab, 3, accession="BM-FAIL-1")
        fail_image(self.images[1], "truncated", "The JPEG file is cut short.")
        fail_image(self.images[2], "too_many_attempts", "Gave up after 3 attempts.", attempts=3)
        TaskRunFactory(task_name="classify_chunk", ok=False, retries=0,
                       error="OperationalError: terminating connection due to administrator command (will retry)")
        TaskRunFactory(task_name="classify_chunk", ok=True, retries=1)
        TaskRunFactory(task_name="segment_image", ok=False, retries=6,
                       error="OperationalError: server closed the connection")

    def test_image_failures_newest_first_with_reason_and_attempts(self):
        failures = recent_image_failures()
        self.assertEqual([f.code for f in failures], ["too_many_attempts", "truncated"])
        newest = failures[0]
        self.assertEqual((newest.position, newest.attempts, newest.status_now), (3, 3, "failed"))
        self.assertEqual(newest.accession_number, "BM-FAIL-1")
        self.assertEqual(failures[1].reason, "The JPEG file is cut short.")

    def test_task_failures_say_whether_they_were_retried(self):
        failures = recent_task_failures()
        self.assertEqual(len(failures), 2)  # the successful retry is not a failure
        by_task = {f.task_name: f for f in failures}
        self.assertTrue(by_task["classify_chunk"].will_retry)
        self.assertFalse(by_task["segment_image"].will_retry)
        self.assertEqual(by_task["segment_image"].retries, 6)

    def test_counts_in_the_window(self):
        self.assertEqual(failure_counts("1h"), {"failed_images": 2, "task_errors": 2, "retried_runs": 2})

    def test_the_page_lists_them(self):
        self.client.force_login(UserFactory(username="siteadmin", site_admin=True))
        page = self.client.get(reverse("monitoring_dashboard"))
        self.assertContains(page, "The JPEG file is cut short.")
        self.assertContains(page, "too_many_attempts")
        self.assertContains(page, "terminating connection due to administrator command")
        self.assertContains(page, "retried")
