"""load_image takes a path, bytes or a binary file object; sha256_bytes identifies content."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from ml.imageio import (
    ImageInfo,
    inspect_image,
    load_image,
    load_image_and_info,
    sha256_bytes,
)
from tests.ml.imagefiles import colour_blocks, write_png


def test_path_bytes_and_file_object_agree(tmp_path: Path) -> None:
    source = colour_blocks()
    path = write_png(tmp_path / "smear.png", source)
    from_path = load_image(path)
    from_str = load_image(str(path))
    from_bytes = load_image(path.read_bytes(), filename="smear.png")
    with path.open("rb") as handle:
        from_handle = load_image(handle)
    for array in (from_path, from_str, from_bytes, from_handle):
        np.testing.assert_array_equal(array, source)


def test_file_object_name_is_used_for_the_extension_check(tmp_path: Path) -> None:
    path = write_png(tmp_path / "smear.jpg", colour_blocks())
    with path.open("rb") as handle:
        try:
            load_image(handle)
        except Exception as error:  # noqa: BLE001 - checked just below
            assert getattr(error, "code", None) == "wrong_extension"
        else:
            raise AssertionError("a PNG named .jpg was accepted")


def test_explicit_filename_overrides_the_path_name(tmp_path: Path) -> None:
    path = write_png(tmp_path / "upload-1234", colour_blocks())  # storage name without extension
    assert load_image(path, filename="smear.png").shape == (48, 64, 3)


def test_inspect_image_reports_metadata(tmp_path: Path) -> None:
    path = write_png(tmp_path / "smear.png", colour_blocks(40, 70))
    assert inspect_image(path) == ImageInfo(width=70, height=40, format="PNG", mode="RGB")
    array, info = load_image_and_info(io.BytesIO(path.read_bytes()))
    assert array.shape == (info.height, info.width, 3)


def test_sha256_bytes_is_hashlib_sha256() -> None:
    data = b"marrow" * 1000
    assert sha256_bytes(data) == hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) != sha256_bytes(data + b"!")
