"""Zip bombs: total uncompressed size and per-entry compression ratio are checked from
the headers before anything is unpacked, and enforced again on the bytes while reading."""

from __future__ import annotations

import os
import struct

from django.test import override_settings

from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    make_zip,
    png_upload,
    upload,
)
from tests.imagefactory import png_bytes


class ZipBombTests(UploadTestCase):
    def test_an_entry_compressed_beyond_the_ratio_limit_is_not_unpacked(self) -> None:
        bomb = b"\x00" * (20 * 1024 * 1024)  # 20 MB of zeros deflate to ~20 kB: ratio ~1000:1
        archive = make_zip([("zeros.png", bomb), ("ok.png", png_bytes(seed=1))])
        self.assertLess(len(archive), 200_000)
        self.post_new_case([upload("bomb.zip", archive, "application/zip")])
        case = self.only_case()
        self.assertEqual(list(case.images.values_list("original_filename", flat=True)), ["bomb.zip › ok.png"])
        rejected = case.batches.get().rejected
        self.assertEqual([(r["filename"], r["code"]) for r in rejected], [("bomb.zip › zeros.png", "zip_bomb")])
        self.assertIn("the most allowed is 100:1", rejected[0]["reason"])

    @override_settings(MAX_ZIP_UNCOMPRESSED_MB=1)
    def test_a_zip_whose_total_exceeds_the_limit_is_refused_whole(self) -> None:
        # Four-letter noise compresses about 4:1: a small archive (well under 1 MB, a low
        # ratio per entry) that would still unpack to 1.2 MB in total.
        noise = [bytes(b"ACGT"[b % 4] for b in os.urandom(600 * 1024)) for _ in range(2)]
        archive = make_zip([("a.png", noise[0]), ("b.png", noise[1])])
        self.assertLess(len(archive), 1024 * 1024)
        self.post_new_case([upload("big.zip", archive), png_upload("ok.png", seed=3)])
        case = self.only_case()
        rejected = case.batches.get().rejected
        self.assertEqual([(r["filename"], r["code"]) for r in rejected], [("big.zip", "zip_bomb")])
        self.assertIn("would unpack to 1.2 MB", rejected[0]["reason"])
        self.assertEqual(case.images.count(), 1)

    def test_an_entry_whose_header_understates_its_size_is_stopped(self) -> None:
        real = png_bytes(seed=5, size=(96, 96))
        archive = bytearray(make_zip([("liar.png", real), ("ok.png", png_bytes(seed=6))]))
        # Rewrite the first central-directory record's "uncompressed size" to 100 bytes.
        central = archive.find(b"PK\x01\x02")
        struct.pack_into("<I", archive, central + 24, 100)
        self.post_new_case([upload("liar.zip", bytes(archive))])
        case = self.only_case()
        self.assertEqual(list(case.images.values_list("original_filename", flat=True)), ["liar.zip › ok.png"])
        rejected = case.batches.get().rejected
        self.assertEqual(len(rejected), 1)
        self.assertEqual(rejected[0]["filename"], "liar.zip › liar.png")
        self.assertIn(rejected[0]["code"], {"zip_bomb", "bad_zip_member"})

    @override_settings(MAX_ZIP_UNCOMPRESSED_MB=1)
    def test_the_archive_itself_is_bounded(self) -> None:
        archive = make_zip([("a.png", os.urandom(1100 * 1024))])
        self.post_new_case([upload("huge.zip", archive), png_upload("ok.png", seed=1)])
        codes = self.rejected_by_code(self.only_case())
        self.assertEqual(list(codes), ["zip_too_large"])
