"""Images per minute over time: one point per bucket, zeros included, each
analysis counted in the minute it was written, divided by the bucket's minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitoring.timings import WINDOWS, throughput_series, window_bounds
from tests.base import BaseTestCase
from tests.factories import TaskRunFactory, case_images, fail_image, timed_analysis

NOW = datetime(2026, 3, 2, 10, 30, 20, tzinfo=UTC)


class WindowBoundsTests(BaseTestCase):
    def test_bounds_are_whole_buckets_that_include_the_current_minute(self):
        for name, (minutes, bucket) in WINDOWS.items():
            start, end, got_bucket = window_bounds(name, NOW)
            self.assertEqual(got_bucket, bucket)
            self.assertEqual(end - start, timedelta(minutes=minutes))
            self.assertGreater(end, NOW)
            self.assertLessEqual(end - NOW, timedelta(minutes=bucket))
            self.assertEqual(int(end.timestamp() // 60) % bucket, 0, name)

    def test_unknown_window_is_refused(self):
        with self.assertRaises(ValueError):
            window_bounds("7d", NOW)


class ThroughputSeriesTests(BaseTestCase):
    def test_counts_per_minute_with_zero_filled_gaps(self):
        images = case_images(self.lab, 6)
        # 3 images analysed in the minute 10:25, 2 in 10:29, 1 long before the window.
        for image in images[:3]:
            timed_analysis(image, {"total": 0.1}, at=NOW.replace(minute=25, second=5))
        for image in images[3:5]:
            timed_analysis(image, {"total": 0.1}, at=NOW.replace(minute=29, second=59))
        timed_analysis(images[5], {"total": 0.1}, at=NOW - timedelta(hours=3))
        for second in (1, 2):
            TaskRunFactory(task_name="segment_image", at=NOW.replace(minute=26, second=second))
        TaskRunFactory(task_name="segment_image", at=NOW.replace(minute=26, second=3), image_count=0)  # a duplicate
        TaskRunFactory(task_name="classify_chunk", at=NOW.replace(minute=26, second=4), image_count=5)  # not segmenting
        fail_image(images[0], "truncated", "cut short", at=NOW.replace(minute=30, second=1))

        series = throughput_series("1h", now=NOW)

        self.assertEqual(len(series["labels"]), 60)
        start = datetime.fromisoformat(series["labels"][0])
        index = {minute: int((NOW.replace(minute=minute, second=0) - start).total_seconds() // 60) for minute in (25, 26, 29, 30)}
        analysed = series["series"]["analysed"]
        self.assertEqual(analysed[index[25]], 3)
        self.assertEqual(analysed[index[29]], 2)
        self.assertEqual(sum(analysed), 5)  # the 3-hour-old analysis is outside the window
        self.assertEqual(series["series"]["segmented"][index[26]], 2)
        self.assertEqual(sum(series["series"]["segmented"]), 2)
        self.assertEqual(series["series"]["failed"][index[30]], 1)
        self.assertEqual(series["totals"], {"analysed": 5, "segmented": 2, "failed": 1})

    def test_wider_buckets_are_still_images_per_minute(self):
        images = case_images(self.lab, 10)
        for image in images:  # 10 images in one 5-minute bucket -> 2 per minute
            timed_analysis(image, {"total": 0.1}, at=NOW.replace(minute=21, second=0))
        series = throughput_series("6h", now=NOW)
        self.assertEqual(series["bucket_minutes"], 5)
        self.assertEqual(len(series["labels"]), 72)
        self.assertEqual(sorted(v for v in series["series"]["analysed"] if v), [2.0])
        self.assertEqual(series["totals"]["analysed"], 10)
