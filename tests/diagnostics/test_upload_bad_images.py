"""Each file is checked with the ml/ loader: a bad one is refused with its own reason, the good ones go on."""

from __future__ import annotations

from django.test import override_settings
from django.urls import reverse
from django.utils.html import escape

from diagnostics.models import AuditEvent, ImageStatus
from tests.diagnostics.upload_helpers import UploadTestCase, png_upload, upload
from tests.imagefactory import png_bytes
from tests.ml.imagefiles import decompression_bomb_png


class BadImageTests(UploadTestCase):
    def test_every_kind_of_bad_file_gets_its_reason_and_the_good_ones_go_on(self) -> None:
        good = png_bytes(seed=11)
        bad = {
            "empty.png": (b"", "empty"),
            "truncated.png": (good[: len(good) // 2], "truncated"),
            "notes.jpg": (b"Patient 12, smear 3: see attached.\n" * 20, "not_an_image"),
            "really-a-png.jpg": (png_bytes(seed=12), "wrong_extension"),
            "report.pdf": (b"%PDF-1.4\n" + b"0" * 200, "wrong_extension"),
            "tiny.png": (png_bytes(seed=13, size=(4, 4)), "too_small"),
            "bomb.png": (decompression_bomb_png(100_000, 100_000), "too_large"),
        }
        files = [upload("good-1.png", good, "image/png")]
        files += [upload(name, data) for name, (data, _) in bad.items()]
        files.append(png_upload("good-2.png", seed=14))
        response = self.post_new_case(files, follow=True)

        case = self.only_case()
        self.assertEqual(
            list(case.images.order_by("position").values_list("original_filename", "position", "status")),
            [("good-1.png", 1, ImageStatus.QUEUED), ("good-2.png", 2, ImageStatus.QUEUED)],
        )
        rejected = {item["filename"]: item for item in case.batches.get().rejected}
        self.assertEqual({name: item["code"] for name, item in rejected.items()}, {n: c for n, (_, c) in bad.items()})
        for name, item in rejected.items():
            self.assertTrue(len(item["reason"]) > 15, item)
            # Shown twice: as a flash message after the upload, and in the case page's list.
            self.assertContains(response, escape(f"{name}: {item['reason']}"))
        self.assertEqual(
            AuditEvent.objects.filter(case=case, verb=AuditEvent.Verb.UPLOAD_REJECTED).count(), len(bad)
        )
        page = self.client.get(reverse("case_detail", args=[case.pk]))
        for name, item in rejected.items():
            self.assertContains(page, escape(item["reason"]))

    @override_settings(MAX_IMAGE_PIXELS=60 * 60)
    def test_pixel_count_limit_comes_from_settings(self) -> None:
        self.post_new_case([png_upload("small.png", seed=1, size=(50, 50)), png_upload("big.png", seed=2, size=(70, 70))])
        case = self.only_case()
        self.assertEqual(list(case.images.values_list("original_filename", flat=True)), ["small.png"])
        self.assertEqual(self.rejected_by_code(case), {"too_large": ["big.png"]})

    def test_a_new_case_with_no_usable_file_is_not_created(self) -> None:
        response = self.post_new_case([upload("notes.png", b"not an image at all" * 10)])
        self.assertEqual(response.status_code, 400)
        self.assertFalse(self.lab.cases.exists())
        self.assertContains(response, "None of the files could be used", status_code=400)
        self.assertContains(response, "notes.png", status_code=400)
        # The entered case fields are kept in the form.
        self.assertContains(response, 'value="BM-2026-00042"', status_code=400)
