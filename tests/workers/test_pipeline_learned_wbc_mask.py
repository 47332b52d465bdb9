"""With ``WBC_MASK_MODEL`` set, the pipeline's white cells come from the learned mask
(ml.wbcmask), and the rows say so; a file that is not a mask checkpoint is refused
with a clear error when the models are loaded.

The checkpoint here is an untrained U-Net whose card threshold is 0: its mask is the
whole field, so every image must hold exactly one white cell from the learned mask
and no red cell (all covered). The mask's accuracy is bench/counting.py's business.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from django.test import override_settings

from diagnostics import model_cache
from diagnostics.models import Analysis
from ml.segment import LEARNED_MASK
from ml.wbcmask import CompactUNet, save_wbc_mask
from tests.base import BaseTestCase
from tests.factories import uploaded_case
from tests.modelfixtures import register_test_model
from tests.workers.helpers import run_case_inline


class LearnedWbcMaskPipelineTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.folder = Path(tempfile.mkdtemp(prefix="mf-wbcmask-"))
        torch.manual_seed(0)
        self.checkpoint = save_wbc_mask(CompactUNet(8), self.folder / "mask.pt", {"threshold": 0.0})

    def test_white_cells_come_from_the_learned_mask(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, n_images=2)
        with override_settings(WBC_MASK_MODEL=self.checkpoint):
            self.assertIsNotNone(model_cache.active_models(image=False).models.wbc_mask)
            run_case_inline(case)
        for analysis in Analysis.objects.filter(image__case=case):
            self.assertEqual(analysis.cell_counts["wbc"], 1)
            self.assertEqual(analysis.cell_counts["rbc"], 0)
            wbc = [cell for cell in analysis.cells if cell["kind"] == "wbc"]
            self.assertEqual([cell["source"] for cell in wbc], [LEARNED_MASK])

    def test_without_the_setting_the_colour_rules_find_them(self) -> None:
        register_test_model()
        case = uploaded_case(self.lab, n_images=1)
        with override_settings(WBC_MASK_MODEL=None):
            self.assertIsNone(model_cache.active_models(image=False).models.wbc_mask)
            run_case_inline(case)
        analysis = Analysis.objects.get(image__case=case)
        self.assertTrue(all(cell["source"] == "colour" for cell in analysis.cells))

    def test_a_file_that_is_not_a_mask_checkpoint_is_a_clear_error(self) -> None:
        bad = self.folder / "not-a-mask.pt"
        torch.save({"kind": "something-else"}, bad)
        with override_settings(WBC_MASK_MODEL=bad), self.assertRaisesMessage(ValueError, "not a white-cell mask checkpoint"):
            model_cache.wbc_mask()
