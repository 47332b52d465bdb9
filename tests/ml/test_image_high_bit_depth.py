"""16-bit TIFF and PNG are scaled to 8 bits by the smallest bit depth that holds the data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ml.imageio import inspect_image, load_image
from tests.ml.imagefiles import write_png16_rgb, write_tiff16


def _random_rgb16(max_value: int, shape=(30, 40, 3), seed: int = 0) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, max_value + 1, shape, dtype=np.uint16)
    array.flat[0] = max_value  # make sure the peak is present
    return array


def _expected(array: np.ndarray, full_scale: int) -> np.ndarray:
    return np.rint(array.astype(np.float64) * 255.0 / full_scale).astype(np.uint8)


def test_full_range_16bit_rgb_tiff(tmp_path: Path) -> None:
    source = _random_rgb16(65535)
    path = write_tiff16(tmp_path / "camera.tif", source)
    np.testing.assert_array_equal(load_image(path), _expected(source, 65535))
    info = inspect_image(path)
    assert (info.format, info.mode, info.width, info.height) == ("TIFF", "RGB;16", 40, 30)


def test_12bit_data_in_a_16bit_tiff_is_not_darkened(tmp_path: Path) -> None:
    source = _random_rgb16(4095)
    array = load_image(write_tiff16(tmp_path / "camera12.tif", source))
    np.testing.assert_array_equal(array, _expected(source, 4095))
    assert array.max() == 255  # Pillow alone would give at most 4095 >> 8 = 15


def test_16bit_grayscale_tiff(tmp_path: Path) -> None:
    source = _random_rgb16(65535, shape=(24, 32))
    array = load_image(write_tiff16(tmp_path / "gray16.tif", source))
    expected = _expected(source, 65535)
    for channel in range(3):
        np.testing.assert_array_equal(array[..., channel], expected)


def test_planar_16bit_tiff(tmp_path: Path) -> None:
    source = _random_rgb16(65535)
    path = tmp_path / "planar.tif"
    import tifffile

    tifffile.imwrite(path, np.moveaxis(source, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(load_image(path), _expected(source, 65535))


def test_lzw_16bit_tiff_falls_back_to_opencv(tmp_path: Path) -> None:
    # OpenCV writes LZW-compressed TIFF, which tifffile cannot read without imagecodecs.
    source = _random_rgb16(65535)
    path = tmp_path / "lzw16.tif"
    assert cv2.imwrite(str(path), np.ascontiguousarray(source[..., ::-1]))
    with Image.open(path) as image:
        assert image.info.get("compression") == "tiff_lzw"
    np.testing.assert_array_equal(load_image(path), _expected(source, 65535))


def test_16bit_rgb_png(tmp_path: Path) -> None:
    source = _random_rgb16(4095)
    path = write_png16_rgb(tmp_path / "camera16.png", source)
    np.testing.assert_array_equal(load_image(path), _expected(source, 4095))
    assert inspect_image(path).mode == "RGB;16"


def test_16bit_grayscale_png(tmp_path: Path) -> None:
    source = _random_rgb16(65535, shape=(24, 32))
    path = tmp_path / "gray16.png"
    assert cv2.imwrite(str(path), source)
    array = load_image(path)
    np.testing.assert_array_equal(array[..., 1], _expected(source, 65535))


@pytest.mark.parametrize("max_value", [0, 255])
def test_dark_or_8bit_data_in_16_bits_is_scaled_by_255(tmp_path: Path, max_value: int) -> None:
    source = _random_rgb16(max_value)
    array = load_image(write_tiff16(tmp_path / "low.tif", source))
    np.testing.assert_array_equal(array, source.astype(np.uint8))


def test_float_tiff_in_unit_range(tmp_path: Path) -> None:
    import tifffile

    source = np.random.default_rng(2).random((20, 24, 3), dtype=np.float32)
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, source, photometric="rgb")
    np.testing.assert_array_equal(load_image(path), np.rint(source.astype(np.float64) * 255).astype(np.uint8))
