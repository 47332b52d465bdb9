"""EXIF orientation is applied, so a phone photo comes out the way it was taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from ml.imageio import _apply_orientation, inspect_image, load_image
from tests.ml.imagefiles import colour_blocks, write_exif_rotated_jpeg, write_tiff16


def test_orientation_6_jpeg_is_rotated_clockwise(tmp_path: Path) -> None:
    stored = colour_blocks(48, 64)  # red block top-left in the stored pixels
    path = write_exif_rotated_jpeg(tmp_path / "phone.jpg", stored, orientation=6)
    with Image.open(path) as image:
        decoded_as_stored = np.asarray(image.convert("RGB"))

    array = load_image(path)
    assert array.shape == (64, 48, 3)  # width and height swapped
    np.testing.assert_array_equal(array, np.rot90(decoded_as_stored, -1))
    # The red block moved from the top-left to the top-right corner.
    assert array[5, -5, 0] > 180 and array[5, -5, 2] < 80
    assert array[5, 5, 0] < 160
    info = inspect_image(path)
    assert (info.width, info.height) == (48, 64)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_table_matches_pillow(orientation: int) -> None:
    stored = colour_blocks(12, 20)[..., 0]
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(_apply_orientation(stored, orientation), expected)


def test_16bit_tiff_orientation_tag_is_applied(tmp_path: Path) -> None:
    stored = (colour_blocks(30, 40).astype(np.uint16) * 257)
    path = write_tiff16(tmp_path / "rotated.tif", stored, orientation=8)
    array = load_image(path)
    assert array.shape == (40, 30, 3)
    np.testing.assert_array_equal(array, np.rot90(colour_blocks(30, 40), 1))


def test_orientation_of_a_tiff_only_tifffile_can_open(tmp_path: Path) -> None:
    import tifffile

    stored = colour_blocks(30, 40).astype(np.float32) / 255  # float RGB: Pillow cannot open it
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, stored, photometric="rgb", extratags=[(274, "H", 1, 6, False)])
    with pytest.raises(Exception):  # noqa: B017 - any Pillow failure; the point is that it fails
        Image.open(path)
    np.testing.assert_array_equal(load_image(path), np.rot90(colour_blocks(30, 40), -1))
