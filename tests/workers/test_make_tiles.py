"""The viewer's Deep Zoom tiles: once an image is segmented the task is sent through
marrowfind.dispatch (cpu queue) and writes one pyramid per layer that matches the
stored original, records it on the Analysis and a TaskRun; a file that cannot be
read records why instead of failing forever."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from diagnostics import tasks, tiles
from diagnostics.models import Analysis, ImageStatus, TaskRun
from marrowfind.celery import app
from ml.deepzoom import DeepZoomLayout
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workers.helpers import run_case_inline


class MakeTilesTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self._eager = app.conf.task_always_eager
        app.conf.task_always_eager = True

    def tearDown(self) -> None:
        app.conf.task_always_eager = self._eager
        super().tearDown()

    def test_segmenting_an_image_sends_the_tile_task_and_its_pyramids_match_the_original(self) -> None:
        self.assertEqual(settings.CELERY_TASK_ROUTES["diagnostics.tasks.*"]["queue"], "cpu")
        register_test_model()
        case = uploaded_case(self.lab, files=[smear_bytes(5, size=(200, 300))])  # size is (height, width)
        with self.captureOnCommitCallbacks(execute=True):
            tasks.process_case.delay(case.pk)
        analysis = Analysis.objects.get(image__case=case)
        self.assertEqual(set(analysis.tiles["layers"]), {"original", "cam", "segmentation"})
        run = TaskRun.objects.get(task_name="make_tiles")
        self.assertTrue(run.ok, run.error)
        self.assertEqual(run.case_id, case.pk)
        self.assertIn("tiles", run.timings)

        folder = Path(default_storage.path(analysis.tiles["folder"]))
        self.assertEqual(folder, Path(settings.MEDIA_ROOT) / f"labs/{self.lab.pk}/cases/{case.pk}/tiles/{analysis.pk}")
        with analysis.image.file.open("rb") as handle:
            original = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
        for layer, fmt in (("original", "jpeg"), ("cam", "jpeg"), ("segmentation", "png")):
            layout = DeepZoomLayout.from_descriptor((folder / f"{layer}.dzi").read_text())
            self.assertEqual((layout.width, layout.height, layout.format), (300, 200, fmt))
            self.assertEqual(layout.as_dict(), analysis.tiles["layers"][layer])
            written = sorted(p.relative_to(folder / f"{layer}_files").as_posix() for p in folder.glob(f"{layer}_files/*/*"))
            self.assertEqual(len(written), layout.tile_count)
        # The full-size level of the original, put back together, is the stored original (JPEG q90).
        canvas = np.zeros_like(original)
        cols, rows = layout.tile_grid(layout.max_level)
        original_layout = DeepZoomLayout(**{k: analysis.tiles["layers"]["original"][k]
                                            for k in ("width", "height", "tile_size", "overlap", "format")})
        for col in range(cols):
            for row in range(rows):
                x0, y0, x1, y1 = original_layout.tile_bounds(original_layout.max_level, col, row)
                path = folder / "original_files" / str(original_layout.max_level) / f"{col}_{row}.jpeg"
                canvas[y0:y1, x0:x1] = np.asarray(Image.open(path))
        self.assertLess(np.abs(canvas.astype(int) - original.astype(int)).mean(), 3.0)

        self.assertEqual(tiles.tile_name(analysis, "original", 0, 0, 0, "jpeg"),
                         f"{analysis.tiles['folder']}/original_files/0/0_0.jpeg")
        self.assertIsNone(tiles.tile_name(analysis, "original", 0, 0, 0, "png"))  # not that pyramid's format
        self.assertIsNone(tiles.tile_name(analysis, "original", layout.level_count, 0, 0, "jpeg"))

    def test_a_second_run_replaces_the_tiles(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, files=[smear_bytes(6, size=(160, 120))])
        (analysis_id,) = run_case_inline(case)
        first = tiles.make_tiles(analysis_id)
        second = tiles.make_tiles(analysis_id)
        self.assertEqual(first, second)
        folder = Path(default_storage.path(first["folder"]))
        self.assertEqual(sorted(p.name for p in folder.iterdir() if p.name.endswith(".dzi")),
                         ["cam.dzi", "original.dzi", "segmentation.dzi"])
        self.assertFalse([p for p in folder.iterdir() if p.name.startswith(".")])

    def test_an_unreadable_original_records_why(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, files=[smear_bytes(7)])
        (analysis_id,) = run_case_inline(case)
        image = case.images.get()
        self.assertEqual(image.status, ImageStatus.DONE)
        Path(image.file.path).write_bytes(b"not an image any more")
        tasks.make_tiles.delay(analysis_id)
        analysis = Analysis.objects.get(pk=analysis_id)
        self.assertIn("could not be made", analysis.tiles["error"])
        self.assertEqual(tiles.layers_of(analysis), {})
        run = TaskRun.objects.get(task_name="make_tiles")
        self.assertFalse(run.ok)
        self.assertIn("could not be made", run.error)

    def test_an_image_that_is_not_done_gets_no_tiles(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, files=[smear_bytes(8)])
        (analysis_id,) = run_case_inline(case)
        case.images.update(status=ImageStatus.FAILED)
        self.assertEqual(tiles.make_tiles(analysis_id), {})
        self.assertEqual(Analysis.objects.get(pk=analysis_id).tiles, {})


class SweeperSendsMissingTilesTests(BaseTestCase):
    def test_the_sweeper_sends_the_tiles_whose_message_was_lost(self) -> None:
        from datetime import timedelta

        from django.utils import timezone

        from diagnostics.sweeper import analyses_without_tiles

        register_test_model()
        case = uploaded_case(self.lab, files=[smear_bytes(9), smear_bytes(10), smear_bytes(11)])
        lost, failed, fresh = run_case_inline(case)  # inline: no tile task was ever sent
        long_ago = timezone.now() - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S + 60)
        Analysis.objects.filter(pk__in=[lost, failed]).update(created_at=long_ago)
        Analysis.objects.filter(pk=failed).update(tiles={"error": "The viewer tiles could not be made (...)"})
        self.assertEqual(analyses_without_tiles(timezone.now() - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S)),
                         [lost])

        eager = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            result = tasks.requeue_stuck_images.delay().get()
        finally:
            app.conf.task_always_eager = eager
        self.assertEqual(result["tiles"], 1)
        self.assertEqual(set(Analysis.objects.get(pk=lost).tiles["layers"]), {"original", "cam", "segmentation"})
        self.assertEqual(Analysis.objects.get(pk=fresh).tiles, {})  # not stale yet: its own task may be on its way
