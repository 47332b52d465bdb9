"""Duplicates by SHA-256: refused within one upload and against the case's earlier images; fine across cases."""

from __future__ import annotations

from diagnostics.models import SlideImage
from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    make_zip,
    png_upload,
    stored_files,
    upload,
)
from tests.imagefactory import png_bytes


class DuplicateTests(UploadTestCase):
    def test_same_bytes_twice_in_one_upload(self) -> None:
        same = png_bytes(seed=1)
        archive = make_zip([("again.png", same)])
        self.post_new_case([upload("a.png", same), upload("b.png", same), upload("c.zip", archive), png_upload("d.png", seed=2)])
        case = self.only_case()
        self.assertEqual(list(case.images.order_by("position").values_list("original_filename", flat=True)), ["a.png", "d.png"])
        rejected = case.batches.get().rejected
        self.assertEqual([(r["filename"], r["code"]) for r in rejected], [("b.png", "duplicate"), ("c.zip › again.png", "duplicate")])
        self.assertIn("already image #1 of this case", rejected[0]["reason"])
        self.assertEqual(len(stored_files()), 2)

    def test_same_bytes_added_later_to_the_same_case(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1), png_upload("b.png", seed=2)])
        case = self.only_case()
        self.post_add_images(case, [png_upload("a-again.png", seed=1), png_upload("c.png", seed=3)])
        self.assertEqual(list(case.images.order_by("position").values_list("position", "original_filename")), [(1, "a.png"), (2, "b.png"), (3, "c.png")])
        latest = case.batches.order_by("-created_at", "-pk").first()
        self.assertEqual([(r["filename"], r["code"]) for r in latest.rejected], [("a-again.png", "duplicate")])

    def test_the_same_image_may_belong_to_two_cases(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1)], accession_number="C-1")
        self.post_new_case([png_upload("a.png", seed=1)], accession_number="C-2")
        self.assertEqual(SlideImage.objects.filter(case__lab=self.lab).count(), 2)
