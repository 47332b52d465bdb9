"""The pipeline writes one Cell row per white cell it segmented (bbox in image
pixels, inside the image), records the scope check, and a second run of the
segmentation replaces the rows instead of adding to them."""

from __future__ import annotations

from diagnostics import pipeline
from diagnostics.models import Cell, ImageStatus, SlideImage
from diagnostics.pipeline import STAGE_CLASSIFIED
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.modelfixtures import register_test_model
from tests.workers.helpers import run_case_inline


class PipelineCellRowsTests(BaseTestCase):
    def test_one_cell_row_per_white_cell_and_a_rerun_replaces_them(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, n_images=2)
        analysis_ids = run_case_inline(case)
        for analysis_id in analysis_ids:
            analysis = case.images.get(analyses__pk=analysis_id).analyses.get()
            wbc = sorted(cell["index"] for cell in analysis.cells if cell["kind"] == "wbc")
            rows = list(Cell.objects.filter(analysis=analysis).order_by("index"))
            self.assertEqual([row.index for row in rows], wbc)
            self.assertTrue(wbc, "the synthetic smear has white cells")
            for row in rows:
                x0, y0, x1, y1 = row.bbox
                self.assertTrue(0 <= x0 < x1 <= analysis.image.width and 0 <= y0 < y1 <= analysis.image.height, row.bbox)
                self.assertEqual(row.kind, "wbc")
                self.assertEqual(row.ai_label, "")  # no cell model is active: no call, never a guess
            self.assertTrue(analysis.scope_code)  # ml.scope.check_scope ran and said why

        # The sweeper hands a segmentation out again: the rerun writes the same rows once.
        image = SlideImage.objects.get(analyses__pk=analysis_ids[0])
        before = Cell.objects.filter(analysis_id=analysis_ids[0]).count()
        SlideImage.objects.filter(pk=image.pk).update(status=ImageStatus.PROCESSING, stage=STAGE_CLASSIFIED)
        self.assertEqual(pipeline.segment_image(analysis_ids[0]).state, "done")
        self.assertEqual(Cell.objects.filter(analysis_id=analysis_ids[0]).count(), before)
