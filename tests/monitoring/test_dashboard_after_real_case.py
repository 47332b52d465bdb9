"""After a real worker has processed a case, the dashboard shows that case's
figures: the images in the per-minute series, one timing per image and stage,
the worker live with its queues (Celery inspect), empty queues read from
Redis, and the same figures in /metrics."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from diagnostics.models import Analysis
from tests.base import BaseTransactionTestCase
from tests.factories import UserFactory
from tests.faults.helpers import upload_case
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import (
    purge_broker,
    require_services,
    run_worker,
    wait_for_case_status,
)

N_IMAGES = 4
TOKEN = "dashboard-e2e-token-0123456789"


@pytest.mark.services
@pytest.mark.slow
@override_settings(METRICS_TOKEN=TOKEN)
class DashboardAfterRealCaseTests(BaseTransactionTestCase):
    def setUp(self):
        require_services()
        super().setUp()
        purge_broker()
        self.addCleanup(purge_broker)
        cache.clear()

    def test_the_dashboard_shows_the_processed_case(self):
        register_test_model()
        case = upload_case(self.lab, self.technician, [smear_bytes(seed) for seed in range(1, N_IMAGES + 1)]).case
        self.client.force_login(UserFactory(username="siteadmin", site_admin=True))
        with run_worker(queues=("gpu", "cpu"), env={"WORKER_BATCH_SIZE": "2"}) as worker:
            wait_for_case_status(case, {"awaiting_review"}, timeout=150, worker=worker)
            cache.clear()
            data = self.client.get(reverse("monitoring_data")).json()
            page = self.client.get(reverse("monitoring_dashboard"))
            metrics = self.client.get(reverse("metrics"), HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
            worker_name = worker.name.replace("%h", "")

        self.assertEqual(data["throughput"]["totals"]["analysed"], N_IMAGES)
        self.assertEqual(data["throughput"]["totals"]["segmented"], N_IMAGES)
        stages = {row["key"]: row for row in data["stages"]}
        for stage in ("decode", "classify_cam", "segmentation", "overlays", "db", "total"):
            self.assertEqual(stages[stage]["n"], N_IMAGES, stage)
            self.assertGreater(stages[stage]["p95"], 0, stage)
            self.assertLessEqual(stages[stage]["p50"], stages[stage]["p95"])
        totals = sorted(a.timings["total"] for a in Analysis.objects.filter(image__case=case))
        self.assertAlmostEqual(stages["total"]["max"], totals[-1], places=4)
        tasks = {row["key"]: row["n"] for row in data["tasks"]}
        self.assertEqual(tasks["classify_chunk"], N_IMAGES // 2)
        self.assertEqual(tasks["segment_image"], N_IMAGES)

        self.assertTrue(data["broker"]["ok"], data["broker"])
        self.assertEqual({q["name"]: q["waiting"] for q in data["broker"]["queues"]}, {"priority": 0, "gpu": 0, "cpu": 0})
        self.assertTrue(data["workers"]["available"], data["workers"])
        [live] = [w for w in data["workers"]["workers"] if w["name"].startswith(worker_name)]
        self.assertEqual(live["queues"], ["cpu", "gpu"])
        self.assertEqual(live["pool"], "solo")
        self.assertGreaterEqual(live["processed"], 1 + N_IMAGES // 2 + N_IMAGES)  # process_case, chunks, segmentations
        self.assertGreater(live["maxrss_mb"], 10)

        self.assertContains(page, live["name"])
        self.assertContains(page, 'data-stage="segmentation"')
        found = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        self.assertEqual(found[("marrowfind_stage_seconds_count", (("stage", "segmentation"),))], N_IMAGES)
        self.assertEqual(found[("marrowfind_images", (("status", "done"),))], N_IMAGES)
        self.assertEqual(found[("marrowfind_broker_up", ())], 1)
        self.assertEqual(found[("marrowfind_workers", ())], 1)
