"""The Prometheus metrics are computed from the database at scrape time: they
parse as the Prometheus text format and agree with the rows."""

from __future__ import annotations

import math

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from diagnostics.models import ImageStatus
from monitoring.timings import HISTOGRAM_BUCKETS, stage_histograms, task_histograms
from tests.base import BaseTestCase
from tests.factories import TaskRunFactory, case_images, fail_image, timed_analysis

TOKEN = "metrics-content-token-0123456789"
STAGE_SECONDS = [0.004, 0.02, 0.3, 0.3, 1.5, 7.0, 400.0]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@override_settings(METRICS_TOKEN=TOKEN)
class MetricsContentTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        images = case_images(self.lab, len(STAGE_SECONDS))
        for image, seconds in zip(images, STAGE_SECONDS):
            timed_analysis(image, {"segmentation": seconds, "decode": 0.01})
        queued = case_images(self.lab, 2, status=ImageStatus.QUEUED)
        fail_image(queued[0], "truncated", "cut short")
        TaskRunFactory(task_name="segment_image", seconds=0.5)
        TaskRunFactory(task_name="segment_image", seconds=0.7, ok=False, error="OperationalError (will retry)")
        TaskRunFactory(task_name="segment_image", seconds=0.6, retries=1)

    def scrape(self) -> dict:
        response = self.client.get(reverse("metrics"), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        self.assertEqual(response.status_code, 200)
        return samples(response.content.decode())

    def test_gauges_and_counters_match_the_rows(self):
        found = self.scrape()
        self.assertEqual(found[("marrowfind_images", (("status", "done"),))], len(STAGE_SECONDS))
        self.assertEqual(found[("marrowfind_images", (("status", "queued"),))], 1)
        self.assertEqual(found[("marrowfind_images", (("status", "failed"),))], 1)
        self.assertEqual(found[("marrowfind_failed_images", (("code", "truncated"),))], 1)
        self.assertEqual(found[("marrowfind_analyses_total", ())], len(STAGE_SECONDS))
        self.assertEqual(found[("marrowfind_task_runs_total", (("outcome", "ok"), ("task", "segment_image")))], 2)
        self.assertEqual(found[("marrowfind_task_runs_total", (("outcome", "error"), ("task", "segment_image")))], 1)
        self.assertEqual(found[("marrowfind_task_retries_total", (("task", "segment_image"),))], 1)
        # The broker was asked for its queue depths.
        self.assertIn(("marrowfind_queue_depth", (("queue", "gpu"),)), found)

    def test_stage_histogram_buckets_are_cumulative_counts(self):
        found = self.scrape()
        stage = (("stage", "segmentation"),)
        self.assertEqual(found[("marrowfind_stage_seconds_count", stage)], len(STAGE_SECONDS))
        self.assertAlmostEqual(found[("marrowfind_stage_seconds_sum", stage)], sum(STAGE_SECONDS))
        for bound in HISTOGRAM_BUCKETS:
            key = ("marrowfind_stage_seconds_bucket", tuple(sorted({"stage": "segmentation", "le": repr(float(bound))}.items())))
            self.assertEqual(found[key], sum(1 for s in STAGE_SECONDS if s <= bound), bound)
        self.assertEqual(
            found[("marrowfind_stage_seconds_bucket", tuple(sorted({"stage": "segmentation", "le": "+Inf"}.items())))],
            len(STAGE_SECONDS),
        )

    @pytest.mark.services
    def test_postgresql_histograms_agree_with_python(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
        for compute in (stage_histograms, task_histograms):
            sql, python = compute(use_sql=True), compute(use_sql=False)
            self.assertEqual(set(sql), set(python))
            for key in sql:
                self.assertEqual(sql[key].buckets, python[key].buckets, key)
                self.assertEqual(sql[key].count, python[key].count)
                self.assertTrue(math.isclose(sql[key].total, python[key].total, rel_tol=1e-9))
