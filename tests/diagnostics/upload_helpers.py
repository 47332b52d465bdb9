"""Shared pieces of the upload tests: real files, real zips, and form posts."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnostics.models import Case, Specimen
from tests.base import BaseTestCase
from tests.imagefactory import png_bytes


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def png_upload(name: str, seed: int, size: tuple[int, int] = (64, 64)) -> SimpleUploadedFile:
    return upload(name, png_bytes(seed=seed, size=size), "image/png")


def jpeg_bytes(seed: int = 0, size: tuple[int, int] = (64, 64)) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A real zip archive; names are written as given (``../x.png`` included: writestr keeps them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries:
            if isinstance(name, str):
                info = zipfile.ZipInfo(name)
                info.compress_type = compression
            else:
                info = name
            archive.writestr(info, data)
    return buffer.getvalue()


def stored_files() -> list[Path]:
    """Every file under MEDIA_ROOT (the test class's temporary media folder)."""
    root = Path(settings.MEDIA_ROOT)
    return sorted(Path(dirpath) / name for dirpath, _, names in os.walk(root) for name in names)


def case_fields(**overrides) -> dict:
    fields = {
        "accession_number": "BM-2026-00042",
        "patient_pseudonym": "P-7F3A",
        "specimen": Specimen.BONE_MARROW,
        "stain": "Wright-Giemsa",
        "clinical_note": "Pancytopenia, query ALL.",
    }
    fields.update(overrides)
    return fields


class UploadTestCase(BaseTestCase):
    """Logged in as lab A's technician; posts go through the real views."""

    def setUp(self) -> None:
        super().setUp()
        # The media folder lives per test class; each test starts with it empty.
        for leftover in stored_files():
            leftover.unlink()
        self.client.force_login(self.technician)

    def post_new_case(self, files: list, *, follow: bool = False, **fields):
        data = case_fields(**fields)
        data["lab"] = self.lab.pk
        data["files"] = files
        return self.client.post(reverse("case_new"), data, follow=follow)

    def post_add_images(self, case: Case, files: list, *, follow: bool = False):
        return self.client.post(reverse("case_add_images", args=[case.pk]), {"files": files}, follow=follow)

    def only_case(self) -> Case:
        cases = list(Case.objects.filter(lab=self.lab))
        self.assertEqual(len(cases), 1, cases)
        return cases[0]

    def rejected_by_code(self, case: Case) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for batch in case.batches.all():
            for item in batch.rejected:
                found.setdefault(item["code"], []).append(item["filename"])
        return found
