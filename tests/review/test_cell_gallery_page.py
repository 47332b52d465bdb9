"""The cell gallery page: every white cell's crop in its class group, low-confidence cells
in "Unidentified", the AI class and confidence on each, the cells on their images, and
the crops themselves (cut from the original by the cell's box, lab-private, never cached)."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image

from diagnostics.models import CaseStatus
from review import cells as cells_service
from tests.base import BaseTestCase
from tests.factories import add_cells, analysed_case, smear_case


class GalleryPageTests(BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.case, cls.images, cls.cells = smear_case(cls.lab, n_images=2, wbc_per_image=6, low_every=4)

    def setUp(self):
        super().setUp()
        self.client.force_login(self.pathologist)

    def test_every_cell_is_in_its_class_group_with_ai_class_and_confidence(self):
        response = self.client.get(reverse("case_cells", args=[self.case.pk]))
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertEqual(html.count('<figure class="cg-cell') - html.count('<template'), len(self.cells))
        for group in response.context["groups"]:
            label = group["group"].label
            for item in group["cells"]:
                cell = next(c for c in self.cells if c.pk == item["row"].cell_id)
                if cell.low_confidence:
                    self.assertEqual(label, cells_service.UNIDENTIFIED)
                else:
                    self.assertEqual(label, cell.ai_label)
        low = [c for c in self.cells if c.low_confidence]
        self.assertTrue(low, "the fixture must have low-confidence cells")
        unidentified = next(g for g in response.context["groups"] if g["group"].label == "Unidentified")
        self.assertEqual({i["row"].cell_id for i in unidentified["cells"]}, {c.pk for c in low})
        blast = next(c for c in self.cells if c.ai_label == "blast" and not c.low_confidence)
        self.assertContains(response, f'id="cell-{blast.pk}"')
        self.assertContains(response, "AI Blast 91%")
        # One marker per cell, on its image, at its box.
        for cell in self.cells:
            x0, y0, x1, y1 = cell.bbox
            self.assertIn(f'id="marker-{cell.pk}" data-cell="{cell.pk}" x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"', html)
        # Every class is a drop target with its key, the Unidentified group is not.
        for label, key in cells_service.CELL_KEYS.items():
            self.assertIn(f'data-drop-label="{label}" data-key="{key}"', html)
        self.assertNotIn('data-drop-label="Unidentified"', html)
        self.assertContains(response, "data-editable")

    def test_crop_is_the_cell_cut_from_the_original_and_never_cached(self):
        cell = self.cells[0]
        response = self.client.get(reverse("cell_crop", args=[self.case.pk, cell.pk]))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "image/jpeg")
        self.assertEqual(response["Cache-Control"], "no-store")
        crop = np.asarray(Image.open(io.BytesIO(b"".join(response.streaming_content))).convert("RGB"))
        self.assertEqual(crop.shape, (cells_service.CROP_PX, cells_service.CROP_PX, 3))
        # The same square, cut and resized from the original by ml.cells, differs only by JPEG noise.
        from ml.cells import square_crop

        image = self.images[0]
        with image.file.open("rb") as handle:
            original = np.asarray(Image.open(handle).convert("RGB"))
        x0, y0, x1, y1 = cell.bbox
        side = max(x1 - x0, y1 - y0) * (1 + 2 * cells_service.CROP_PAD)
        expected = square_crop(original, ((x0 + x1) / 2, (y0 + y1) / 2), side, cells_service.CROP_PX)
        self.assertLess(np.abs(crop.astype(int) - expected.astype(int)).mean(), 6)
        other = self.cells[-1]  # a cell of the other image: another picture
        far = square_crop(original, ((other.bbox[0] + other.bbox[2]) / 2, (other.bbox[1] + other.bbox[3]) / 2), side,
                          cells_service.CROP_PX)
        self.assertGreater(np.abs(crop.astype(int) - far.astype(int)).mean(), 10)

    def test_the_page_carries_the_crops_the_crop_route_serves(self):
        import base64
        import re

        html = self.client.get(reverse("case_cells", args=[self.case.pk])).content.decode()
        inline = dict(re.findall(r'id="cell-(\d+)".*?src="data:image/jpeg;base64,([^"]+)"', html, flags=re.DOTALL))
        self.assertEqual(set(inline), {str(c.pk) for c in self.cells})
        cell = self.cells[2]
        served = b"".join(self.client.get(reverse("cell_crop", args=[self.case.pk, cell.pk])).streaming_content)
        self.assertEqual(base64.b64decode(inline[str(cell.pk)]), served)

    def test_a_large_gallery_links_its_crops_instead(self):
        from unittest import mock

        with mock.patch.object(cells_service, "INLINE_CROPS_MAX", len(self.cells) - 1):
            html = self.client.get(reverse("case_cells", args=[self.case.pk])).content.decode()
        self.assertNotIn("data:image/jpeg", html)
        for cell in self.cells:
            self.assertIn(f'src="{reverse("cell_crop", args=[self.case.pk, cell.pk])}"', html)

    def test_crop_of_a_cell_of_another_case_of_the_lab_is_404(self):
        other_case, _ = analysed_case(self.lab, n_images=1)
        response = self.client.get(reverse("cell_crop", args=[other_case.pk, self.cells[0].pk]))
        self.assertEqual(response.status_code, 404)

    def test_a_missing_original_gives_a_404_crop_not_an_error(self):
        case, images = analysed_case(self.lab, n_images=1)
        analysis = images[0].analyses.get()
        (cell,) = add_cells(analysis, ["lymphocyte"])
        images[0].file.delete(save=False)
        page = self.client.get(reverse("case_cells", args=[case.pk]))
        self.assertEqual(page.status_code, 200)
        self.assertEqual(self.client.get(reverse("cell_crop", args=[case.pk, cell.pk])).status_code, 404)

    def test_technician_sees_the_gallery_read_only(self):
        self.client.force_login(self.technician)
        response = self.client.get(reverse("case_cells", args=[self.case.pk]))
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, "data-editable")
        self.assertNotContains(response, "data-drop-label")
        self.assertContains(response, "Read-only")

    def test_signed_out_case_is_locked(self):
        case, images = analysed_case(self.lab, n_images=1, status=CaseStatus.SIGNED_OUT)
        add_cells(images[0].analyses.get(), ["blast", "lymphocyte"])
        response = self.client.get(reverse("case_cells", args=[case.pk]))
        self.assertContains(response, "the cells are locked")
        self.assertNotContains(response, "data-editable")

    def test_crops_are_made_once(self):
        self.client.get(reverse("case_cells", args=[self.case.pk]))
        cell = self.cells[1]
        made = cells_service.ensure_crops(self.case, [(cell.pk, cell.analysis.image_id, tuple(cell.bbox))])
        self.assertEqual(made, 0)

    def test_a_high_bit_depth_original_gives_crops_too(self):
        # The crops use the pipeline's decoder (ml.imageio), not a bare Pillow open.
        case, images = analysed_case(self.lab, n_images=1)
        rgb16 = (np.random.default_rng(3).integers(0, 65535, size=(64, 64, 3))).astype(np.uint16)
        buffer = io.BytesIO()
        import tifffile

        tifffile.imwrite(buffer, rgb16, photometric="rgb")
        images[0].file.save("deep.tif", ContentFile(buffer.getvalue()), save=True)
        (cell,) = add_cells(images[0].analyses.get(), ["neutrophil"])
        response = self.client.get(reverse("cell_crop", args=[case.pk, cell.pk]))
        self.assertEqual(response.status_code, 200)
