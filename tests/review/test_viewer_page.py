"""The viewer page's states and what it hands the browser: the layers that exist, the
cell outlines in their current class (a reviewer's decision over the AI's call) with
a legend, and a readable line while the tiles are not there (being made, failed, no
analysis)."""

from __future__ import annotations

import json
import re

from django.urls import reverse

from diagnostics import tiles
from diagnostics.models import Analysis, ImageStatus
from review.viewer import CELL_COLOURS, viewer_state
from tests.base import BaseTestCase
from tests.factories import add_cells, analysed_case
from tests.review.cell_helpers import reclassify


class ViewerPageTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=2, failed=(2,))
        self.image = self.images[0]
        self.analysis = self.image.analyses.get()
        self.url = reverse("image_viewer", args=[self.case.pk, self.image.pk])
        self.client.force_login(self.pathologist)

    def test_the_layers_and_cells_in_their_current_class(self):
        tiles.make_tiles(self.analysis.pk)
        cells = add_cells(self.analysis, ["blast", "lymphocyte", "lymphocyte"])
        reclassify(self.case, self.pathologist, cells[1:2], "blast")
        state = viewer_state(self.image, Analysis.objects.get(pk=self.analysis.pk))
        self.assertTrue(state.ready)
        self.assertEqual([layer.key for layer in state.layers], ["original", "cam", "segmentation"])
        self.assertEqual(state.layer("cam").dzi_url, reverse("image_tiles_dzi", args=[self.case.pk, self.image.pk, "cam"]))
        by_index = {cell["index"]: cell for cell in state.cells}
        self.assertEqual((by_index[2]["label"], by_index[2]["ai_label"], by_index[2]["reviewed"]), ("blast", "lymphocyte", True))
        self.assertEqual(by_index[2]["colour"], CELL_COLOURS["blast"])
        self.assertEqual((by_index[3]["label"], by_index[3]["reviewed"]), ("lymphocyte", False))
        self.assertEqual(state.cell_legend, [(CELL_COLOURS["blast"], "Blast", 2), (CELL_COLOURS["lymphocyte"], "Lymphocyte", 1)])

        page = self.client.get(self.url).content.decode()
        cells_json = json.loads(re.search(r'data-cells="([^"]*)"', page).group(1).replace("&quot;", '"'))
        self.assertEqual([c["label"] for c in cells_json], ["blast", "blast", "lymphocyte"])
        for key in ("cam", "segmentation", "cells"):
            self.assertIn(f'data-layer="{key}"', page)
            self.assertRegex(page, rf'data-layer="{key}"[\s\S]*?data-role="opacity"')
        self.assertIn('class="jet-bar"', page)  # the Grad-CAM colour scale
        self.assertIn("Blast <span class=\"meta\">2</span>", page)

    def test_before_the_tiles_exist_the_page_says_they_are_being_made(self):
        response = self.client.get(self.url)
        self.assertContains(response, "still being made by the workers")
        self.assertNotContains(response, "openseadragon.min.js")

    def test_a_failure_to_make_them_is_shown(self):
        Analysis.objects.filter(pk=self.analysis.pk).update(tiles={"error": "The viewer tiles could not be made (OSError: x)"})
        self.assertContains(self.client.get(self.url), "The viewer tiles could not be made (OSError: x)")

    def test_an_image_without_analysis_has_nothing_to_view(self):
        failed = self.images[1]
        self.assertEqual(failed.status, ImageStatus.FAILED)
        response = self.client.get(reverse("image_viewer", args=[self.case.pk, failed.pk]))
        self.assertContains(response, "has not been analysed (failed")
        self.assertContains(response, 'rel="prev"')
