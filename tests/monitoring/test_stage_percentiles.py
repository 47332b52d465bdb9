"""p50/p95 per pipeline stage from Analysis.timings (and per task from TaskRun):
the values are those of linear interpolation (numpy's default, PostgreSQL's
percentile_cont), and the PostgreSQL aggregate agrees with the Python path."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from monitoring.timings import percentile_cont, stage_timings, task_timings
from tests.base import BaseTestCase
from tests.factories import TaskRunFactory, case_images, timed_analysis


class PercentileTests(BaseTestCase):
    def test_matches_numpy_linear_interpolation(self):
        rng = random.Random(7)
        for n in (1, 2, 3, 10, 101):
            values = [rng.uniform(0, 5) for _ in range(n)]
            for q in (0.0, 0.5, 0.95, 1.0):
                self.assertAlmostEqual(percentile_cont(values, q), float(np.percentile(values, q * 100)), places=12)
        self.assertIsNone(percentile_cont([], 0.5))


class StageTimingsTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        rng = random.Random(3)
        self.values: dict[str, list[float]] = {"decode": [], "segmentation": [], "db": []}
        for image in case_images(self.lab, 23):
            timings = {stage: round(rng.uniform(0.001, 2.0), 4) for stage in self.values}
            for stage, seconds in timings.items():
                self.values[stage].append(seconds)
            timed_analysis(image, {**timings, "note": "not a number"})
        for seconds in (0.2, 0.4, 1.0, 3.0):
            TaskRunFactory(task_name="segment_image", seconds=seconds)
        TaskRunFactory(task_name="classify_chunk", seconds=2.5)

    def check(self, rows):
        by_key = {row.key: row for row in rows}
        self.assertEqual(set(by_key), set(self.values))  # "note" is not a number: ignored
        self.assertEqual([row.key for row in rows], ["decode", "segmentation", "db"])  # pipeline order
        for stage, values in self.values.items():
            row = by_key[stage]
            self.assertEqual(row.n, 23)
            self.assertAlmostEqual(row.p50, float(np.percentile(values, 50)), places=9)
            self.assertAlmostEqual(row.p95, float(np.percentile(values, 95)), places=9)
            self.assertAlmostEqual(row.mean, float(np.mean(values)), places=9)
            self.assertAlmostEqual(row.max, max(values), places=9)

    def test_python_path(self):
        self.check(stage_timings("1h", use_sql=False))

    @pytest.mark.services
    def test_postgresql_aggregate_agrees(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
        self.check(stage_timings("1h", use_sql=True))

    def test_analyses_outside_the_window_are_not_counted(self):
        self.assertEqual(stage_timings("1h", now=timezone.now() + timedelta(hours=2)), [])

    def test_task_durations(self):
        for use_sql in (False, True) if connection.vendor == "postgresql" else (False,):
            rows = {row.key: row for row in task_timings("1h", use_sql=use_sql)}
            self.assertEqual(rows["segment_image"].n, 4)
            self.assertAlmostEqual(rows["segment_image"].p50, 0.7)
            self.assertAlmostEqual(rows["segment_image"].p95, float(np.percentile([0.2, 0.4, 1.0, 3.0], 95)))
            self.assertEqual(rows["classify_chunk"].n, 1)
