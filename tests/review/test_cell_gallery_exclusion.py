"""The cell gallery leaves out the cells of an image excluded as not assessable: they count
in no figure, so they are in no class group (nor Unidentified); the page says which image's
cells are not shown and why, its markers take no added cell, and labelling the image again
brings its cells back."""

from __future__ import annotations

import re
import uuid

from django.urls import reverse

from diagnostics.models import ExclusionReason
from review import services as review_service
from tests.base import BaseTestCase
from tests.factories import smear_case


def gallery_cell_ids(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<figure class="cg-cell[^"]*" id="cell-(\d+)"', html)}


class GalleryLeavesOutExcludedImagesTest(BaseTestCase):
    def test_excluded_image_cells_are_in_no_group_until_it_is_labelled_again(self):
        case, images, cells = smear_case(self.lab, n_images=2, wbc_per_image=4, low_every=3)
        first = {c.pk for c in cells if c.analysis.image_id == images[0].pk}
        second = {c.pk for c in cells if c.analysis.image_id == images[1].pk}
        self.assertTrue(first and second)
        self.client.force_login(self.pathologist)
        url = reverse("case_cells", args=[case.pk])
        self.assertEqual(gallery_cell_ids(self.client.get(url).content.decode()), first | second)

        review_service.record_review(image=images[0], reviewer=self.pathologist, exclusion=ExclusionReason.OUT_OF_FOCUS,
                                     submission_token=uuid.uuid4())
        response = self.client.get(url)
        html = response.content.decode()
        self.assertEqual(gallery_cell_ids(html), second)
        grouped = {item["row"].cell_id for g in response.context["groups"] for item in g["cells"]}
        self.assertEqual(grouped, second)
        self.assertIn(f"Not shown: the cells of image #1 ({images[0].original_filename}, {len(first)} cells, "
                      "excluded: out of focus)", html)
        markers = re.search(rf'<figure class="cg-image" id="image-{images[0].pk}".*?</figure>', html, re.DOTALL).group(0)
        self.assertIn('class="cg-markers"', markers)  # no "can-add": a cell added there would count nowhere
        self.assertIn("excluded (out of focus): counted in no figure", markers)

        review_service.record_review(image=images[0], reviewer=self.pathologist, label="Pre",
                                     submission_token=uuid.uuid4())
        html = self.client.get(url).content.decode()
        self.assertEqual(gallery_cell_ids(html), first | second)
        self.assertNotIn("Not shown:", html)

        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(url).status_code, 404)
