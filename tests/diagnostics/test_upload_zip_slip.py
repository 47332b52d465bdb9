"""Zip-slip: entries with absolute paths or '..' parts are refused by name, never written anywhere."""

from __future__ import annotations

from diagnostics.services.upload import is_unsafe_member_path
from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    make_zip,
    stored_files,
    upload,
)
from tests.imagefactory import png_bytes


class ZipSlipTests(UploadTestCase):
    def test_unsafe_entries_are_refused_and_safe_ones_kept(self) -> None:
        unsafe = [
            "../evil.png",
            "day1/../../evil2.png",
            "/etc/cron.d/evil3.png",
            "C:/Windows/evil4.png",
            "..\\..\\evil5.png",
        ]
        entries = [(name, png_bytes(seed=i)) for i, name in enumerate(unsafe, start=1)]
        entries.append(("fine/ok.png", png_bytes(seed=99)))
        self.post_new_case([upload("slip.zip", make_zip(entries), "application/zip")])
        case = self.only_case()
        self.assertEqual(list(case.images.values_list("original_filename", flat=True)), ["slip.zip › fine/ok.png"])
        self.assertEqual(len(self.rejected_by_code(case)["unsafe_path"]), len(unsafe))
        for item in case.batches.get().rejected:
            self.assertIn("zip-slip", item["reason"])
        # Only the one accepted image was written, inside the case's folder.
        files = stored_files()
        self.assertEqual(len(files), 1)
        self.assertIn(f"cases/{case.pk}/originals/", str(files[0]))

    def test_path_rule(self) -> None:
        for name in ["a/../b.png", "/a.png", "\\\\server\\share\\a.png", "D:a.png", "..", "x/..\\y.png", "a\x00.png"]:
            self.assertTrue(is_unsafe_member_path(name), name)
        for name in ["a.png", "dir/a.png", "a..b.png", "..hidden.png", "dir/.../a.png"]:
            self.assertFalse(is_unsafe_member_path(name), name)
