"""Hostile file names: path parts, control and bidi characters, unicode, very long names."""

from __future__ import annotations

import unicodedata

from diagnostics.services.upload import clean_filename
from tests.diagnostics.upload_helpers import UploadTestCase, make_zip, upload
from tests.imagefactory import png_bytes


class HostileFilenameTests(UploadTestCase):
    def test_names_are_cleaned_for_display_and_never_used_for_storage(self) -> None:
        long_name = "x" * 400 + ".png"
        names = [
            "../../etc/passwd.png",
            "C:\\Windows\\system32\\smear.png",
            "Knochenmark_ü_血液_" + unicodedata.normalize("NFD", "é") + ".png",
            "evil\u202egnp.exe.png",  # right-to-left override
            "new\nline\t.png",
            long_name,
        ]
        files = [upload(name, png_bytes(seed=i)) for i, name in enumerate(names, start=1)]
        self.post_new_case(files)
        case = self.only_case()
        stored = list(case.images.order_by("position"))
        self.assertEqual(len(stored), len(names))
        shown = [image.original_filename for image in stored]
        self.assertEqual(shown[0], "passwd.png")
        self.assertEqual(shown[1], "smear.png")
        self.assertEqual(shown[2], unicodedata.normalize("NFC", "Knochenmark_ü_血液_é.png"))
        self.assertEqual(shown[3], "evilgnp.exe.png")
        self.assertEqual(shown[4], "newline.png")
        self.assertLessEqual(len(shown[5]), 255)
        self.assertTrue(shown[5].endswith(".png"))
        for image in stored:
            self.assertRegex(image.file.name, rf"^labs/{self.lab.pk}/cases/{case.pk}/originals/[0-9a-f]{{32}}\.png$")

    def test_hostile_names_inside_a_zip(self) -> None:
        archive = make_zip([("dir/\u202eevil.png", png_bytes(seed=1)), ("ü/" + "y" * 300 + ".png", png_bytes(seed=2))])
        self.post_new_case([upload("../../" + "z" * 300 + ".zip", archive)])
        case = self.only_case()
        names = list(case.images.order_by("position").values_list("original_filename", flat=True))
        self.assertEqual(len(names), 2)
        for name in names:
            self.assertLessEqual(len(name), 255)
            self.assertNotIn("\u202e", name)
            self.assertNotIn("../", name)

    def test_clean_filename_rules(self) -> None:
        self.assertEqual(clean_filename(None), "unnamed")
        self.assertEqual(clean_filename("   "), "unnamed")
        self.assertEqual(clean_filename("a/b/"), "unnamed")
        self.assertEqual(clean_filename("a\x00b.png"), "ab.png")
        shortened = clean_filename("n" * 300 + ".tiff", max_length=50)
        self.assertEqual(len(shortened), 50)
        self.assertTrue(shortened.endswith("….tiff"))
