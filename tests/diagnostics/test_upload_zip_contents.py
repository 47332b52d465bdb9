"""Zip archives: images inside (folders included) are read; folders, nested zips and OS metadata are skipped with a reason."""

from __future__ import annotations

import zipfile

from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    jpeg_bytes,
    make_zip,
    png_upload,
    upload,
)
from tests.imagefactory import png_bytes


class ZipContentTests(UploadTestCase):
    def test_images_in_a_zip_are_accepted_in_archive_order(self) -> None:
        archive = make_zip(
            [
                ("day1/", b""),
                ("day1/field 1.png", png_bytes(seed=1)),
                ("day1/field 2.jpg", jpeg_bytes(seed=2)),
                ("field 3.png", png_bytes(seed=3)),
                ("inner.zip", make_zip([("x.png", png_bytes(seed=4))])),
                ("__MACOSX/day1/._field 1.png", b"\x00\x05\x16\x07" + b"\x00" * 60),
                (".DS_Store", b"\x00\x00\x00\x01Bud1" + b"\x00" * 40),
                ("notes.txt", b"stain batch 7"),
            ]
        )
        self.post_new_case([png_upload("loose.png", seed=9), upload("slides.zip", archive, "application/zip")])
        case = self.only_case()
        self.assertEqual(
            list(case.images.order_by("position").values_list("position", "original_filename")),
            [(1, "loose.png"), (2, "slides.zip › day1/field 1.png"), (3, "slides.zip › day1/field 2.jpg"), (4, "slides.zip › field 3.png")],
        )
        codes = self.rejected_by_code(case)
        self.assertEqual(codes.pop("directory"), ["slides.zip › day1/"])
        self.assertEqual(codes.pop("nested_zip"), ["slides.zip › inner.zip"])
        self.assertEqual(sorted(codes.pop("system_file")), ["slides.zip › .DS_Store", "slides.zip › __MACOSX/day1/._field 1.png"])
        self.assertEqual(codes.pop("wrong_extension"), ["slides.zip › notes.txt"])
        self.assertEqual(codes, {})
        # Stored files keep only the extension: the name inside the zip never reaches the file system.
        for image in case.images.all():
            self.assertNotIn("field", image.file.name)

    def test_stored_zip_without_compression_works_too(self) -> None:
        archive = make_zip([("a.png", png_bytes(seed=1))], compression=zipfile.ZIP_STORED)
        self.post_new_case([upload("plain.zip", archive)])
        self.assertEqual(self.only_case().images.count(), 1)

    def test_a_file_named_zip_that_is_not_one(self) -> None:
        self.post_new_case([upload("broken.zip", b"PK\x03\x04 this is not really a zip"), png_upload("ok.png", seed=1)])
        case = self.only_case()
        self.assertEqual(self.rejected_by_code(case), {"bad_zip": ["broken.zip"]})

    def test_password_protected_entries_are_refused(self) -> None:
        archive = bytearray(make_zip([("secret.png", png_bytes(seed=1))], compression=zipfile.ZIP_STORED))
        # Set the "encrypted" flag bit in the local and the central header (zipfile cannot write encrypted zips).
        local = archive.find(b"PK\x03\x04")
        central = archive.find(b"PK\x01\x02")
        archive[local + 6] |= 0x1
        archive[central + 8] |= 0x1
        self.post_new_case([upload("locked.zip", bytes(archive)), png_upload("ok.png", seed=2)])
        self.assertEqual(self.rejected_by_code(self.only_case()), {"encrypted": ["locked.zip › secret.png"]})
