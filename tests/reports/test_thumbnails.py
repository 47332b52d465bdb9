"""Thumbnails are made once per image and reused by every later render."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from reports import services as reports
from reports import thumbnails
from tests.base import BaseTestCase
from tests.factories import analysed_case


class ThumbnailCacheTest(BaseTestCase):
    def test_made_once_then_reused(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Benign"], size=400)
        image, analysis = built.images[0], built.analyses[1]
        first = thumbnails.make_thumbnails(image, analysis)
        self.assertTrue(first.original.is_file() and first.cam.is_file())
        with Image.open(first.original) as picture:
            self.assertEqual(max(picture.size), thumbnails.THUMBNAIL_PX)
            self.assertEqual(picture.format, "JPEG")
        self.assertIn(f"/cases/{built.case.pk}/overlays/thumbs/{image.pk}-", str(first.original))
        stamps = {path: path.stat().st_mtime_ns for path in (first.original, first.cam)}

        reports.time_report_render(built.case)  # a render reads the cache ...
        reports.time_report_render(built.case)  # ... however often it runs
        again = thumbnails.make_thumbnails(image, analysis)
        self.assertEqual((again.original, again.cam), (first.original, first.cam))
        self.assertEqual({path: path.stat().st_mtime_ns for path in stamps}, stamps)
        folder = Path(first.original).parent
        self.assertEqual(len(list(folder.glob("*.jpg"))), 4)  # 2 images x (original + Grad-CAM)

    def test_missing_source_gives_no_thumbnail(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pro"])
        analysis = built.analyses[1]
        analysis.cam_overlay.storage.delete(analysis.cam_overlay.name)
        made = thumbnails.make_thumbnails(built.images[0], analysis)
        self.assertIsNotNone(made.original)
        self.assertIsNone(made.cam)
