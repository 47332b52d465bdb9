"""Grayscale, palette, CMYK and transparent images all come out as H×W×3 uint8 RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ml.imageio import inspect_image, load_image
from tests.ml.imagefiles import colour_blocks, write_cmyk_jpeg, write_png


def _assert_rgb(array: np.ndarray, height: int, width: int) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)
    assert array.flags.c_contiguous


def test_grayscale_png_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (20, 1))  # 20 × 64 ramp
    array = load_image(write_png(tmp_path / "gray.png", gray))
    _assert_rgb(array, 20, 64)
    for channel in range(3):
        np.testing.assert_array_equal(array[..., channel], gray)
    assert inspect_image(tmp_path / "gray.png").mode == "L"


def test_palette_png_keeps_its_colours(tmp_path: Path) -> None:
    source = colour_blocks()
    path = tmp_path / "palette.png"
    Image.fromarray(source).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(path)
    array = load_image(path)
    _assert_rgb(array, *source.shape[:2])
    np.testing.assert_array_equal(array, source)  # three colours fit an 8-colour palette exactly
    assert inspect_image(path).mode == "P"


def test_cmyk_jpeg_converts_to_the_original_colours(tmp_path: Path) -> None:
    source = colour_blocks()
    path = write_cmyk_jpeg(tmp_path / "cmyk.jpg", source)
    info = inspect_image(path)
    assert (info.format, info.mode) == ("JPEG", "CMYK")
    array = load_image(path)
    _assert_rgb(array, *source.shape[:2])
    # Block centres, away from JPEG ringing at the edges.
    for row, col in [(8, 10), (40, 56), (24, 32)]:
        np.testing.assert_allclose(array[row, col].astype(int), source[row, col].astype(int), atol=12)


def test_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((32, 48, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 20, 20)
    rgba[:, :16, 3] = 255  # opaque red
    rgba[:, 16:32, 3] = 0  # fully transparent: white, whatever colour is stored
    rgba[:, 32:, 3] = 128  # half transparent red over white
    array = load_image(write_png(tmp_path / "rgba.png", rgba))
    _assert_rgb(array, 32, 48)
    np.testing.assert_array_equal(array[0, 0], (200, 20, 20))
    np.testing.assert_array_equal(array[0, 20], (255, 255, 255))
    expected_half = np.rint(np.array([200, 20, 20]) * 128 / 255 + 255 * (1 - 128 / 255))
    np.testing.assert_allclose(array[0, 40], expected_half, atol=1)


def test_grayscale_with_alpha(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    la = np.zeros((20, 20, 2), dtype=np.uint8)
    la[..., 0] = 40
    la[:, 10:, 1] = 255
    Image.fromarray(la, mode="LA").save(path)
    array = load_image(path)
    np.testing.assert_array_equal(array[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(array[0, 15], (40, 40, 40))
