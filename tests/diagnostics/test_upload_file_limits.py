"""Per-file size limit and the most files per upload (settings.MAX_UPLOAD_FILE_MB, MAX_FILES_PER_BATCH)."""

from __future__ import annotations

from django.test import override_settings

from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    make_zip,
    png_upload,
    upload,
)
from tests.imagefactory import png_bytes


class FileSizeLimitTests(UploadTestCase):
    @override_settings(MAX_UPLOAD_FILE_MB=1)
    def test_a_file_over_the_size_limit_is_refused_unread(self) -> None:
        big = png_bytes(seed=1, size=(700, 700))  # random pixels do not compress: ~1.5 MB
        self.assertGreater(len(big), 1024 * 1024)
        self.post_new_case([upload("big.png", big, "image/png"), png_upload("ok.png", seed=2)])
        case = self.only_case()
        self.assertEqual(list(case.images.values_list("original_filename", flat=True)), ["ok.png"])
        rejected = case.batches.get().rejected
        self.assertEqual([(r["filename"], r["code"]) for r in rejected], [("big.png", "file_too_big")])
        self.assertIn("the most per file is 1 MB", rejected[0]["reason"])

    @override_settings(MAX_UPLOAD_FILE_MB=1)
    def test_the_size_limit_applies_to_zip_members(self) -> None:
        big = png_bytes(seed=1, size=(700, 700))
        archive = make_zip([("big.png", big), ("ok.png", png_bytes(seed=2))])
        self.post_new_case([upload("case.zip", archive, "application/zip")])
        case = self.only_case()
        self.assertEqual(list(case.images.values_list("original_filename", flat=True)), ["case.zip › ok.png"])
        self.assertEqual(self.rejected_by_code(case), {"file_too_big": ["case.zip › big.png"]})


class FileCountLimitTests(UploadTestCase):
    @override_settings(MAX_FILES_PER_BATCH=3)
    def test_files_beyond_the_limit_are_refused_each_with_the_reason(self) -> None:
        self.post_new_case([png_upload(f"f{i}.png", seed=i) for i in range(1, 6)])
        case = self.only_case()
        self.assertEqual(list(case.images.order_by("position").values_list("original_filename", flat=True)), ["f1.png", "f2.png", "f3.png"])
        rejected = case.batches.get().rejected
        self.assertEqual([(r["filename"], r["code"]) for r in rejected], [("f4.png", "too_many_files"), ("f5.png", "too_many_files")])
        self.assertIn("at most 3 images", rejected[0]["reason"])

    @override_settings(MAX_FILES_PER_BATCH=2)
    def test_a_zip_with_far_too_many_entries_is_refused_whole(self) -> None:
        archive = make_zip([(f"e{i}.png", b"x") for i in range(20)])
        self.post_new_case([upload("many.zip", archive), png_upload("ok.png", seed=1)])
        case = self.only_case()
        self.assertEqual(self.rejected_by_code(case), {"too_many_files": ["many.zip"]})
        self.assertEqual(case.images.count(), 1)
