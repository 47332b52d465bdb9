"""7000×7000 images (49 M pixels, inside the 50 M pixel limit) are checked within
about 8 bytes per pixel at peak over the file's own bytes, measured in a fresh
process (``bench/imageio_memory.py`` measures every kind the same way):

* a 16-bit RGB TIFF used to take about 93 bytes per pixel (float64 and full-size
  temporaries): 4.8 GB;
* a 16-bit RGB PNG about 16 (Pillow decoded the whole file to look for EXIF, then
  OpenCV decoded it again with a full-size temporary); it is now decoded band by band;
* a float32 RGB TIFF is converted strip by strip (its file alone is up to 6 bytes
  per pixel when the floats do not deflate, which the bound does not count: the
  caller holds those bytes anyway)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from bench.imageio_memory import CHILD, REPO_ROOT

SIDE = 7000
BOUND_BYTES_PER_PIXEL = 8.0


def write_compressible_16bit_tiff(path: Path, side: int) -> None:
    """A pale 12-bit-range field with a gradient, deflate-compressed like a camera's export."""
    row = (np.full((1, side, 3), 3000, np.float32) + np.linspace(0, 400, side, dtype=np.float32)[None, :, None]
           + np.arange(3, dtype=np.float32) * 100)
    image = np.empty((side, side, 3), np.uint16)
    image[:] = np.rint(row).astype(np.uint16)
    tifffile.imwrite(path, image, photometric="rgb", compression="zlib", rowsperstrip=256)


def write_compressible_16bit_png(path: Path, side: int) -> None:
    """The same field as a 16-bit RGB PNG (OpenCV writes these; Pillow cannot)."""
    rows = np.linspace(0, 300, side, dtype=np.float32)[:, None, None]
    image = np.empty((side, side, 3), np.uint16)
    np.rint(_field_row(side) + rows, out=image, casting="unsafe")
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    path.write_bytes(encoded.tobytes())


def write_float32_rgb_tiff(path: Path, side: int) -> None:
    """The field as float32 RGB in [0, 1] (multiples of 1/4096, so it deflates quickly)."""
    image = np.empty((side, side, 3), np.float32)
    np.add(_field_row(side), np.linspace(0, 300, side, dtype=np.float32)[:, None, None], out=image)
    np.rint(image, out=image)
    image /= 4096.0
    tifffile.imwrite(path, image, photometric="rgb", compression="zlib", compressionargs={"level": 1}, rowsperstrip=64)


def _field_row(side: int) -> np.ndarray:
    return (np.full((1, side, 3), 3000, np.float32) + np.linspace(0, 400, side, dtype=np.float32)[None, :, None]
            + np.arange(3, dtype=np.float32) * 100)


WRITERS = {
    "tiff_rgb16": (".tif", write_compressible_16bit_tiff),
    "png_rgb16": (".png", write_compressible_16bit_png),
    "tiff_rgb_float32": (".tif", write_float32_rgb_tiff),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "operation"),
    # inspect_image and load_image run the same decode; the TIFF checks both, the others one.
    [("tiff_rgb16", "inspect"), ("tiff_rgb16", "load"), ("png_rgb16", "inspect"), ("tiff_rgb_float32", "inspect")],
)
def test_a_7000_square_image_stays_under_its_memory_bound(tmp_path: Path, kind: str, operation: str) -> None:
    suffix, writer = WRITERS[kind]
    path = tmp_path / f"field{suffix}"
    writer(path, SIDE)
    warm = tmp_path / f"warm{suffix}"
    writer(warm, 64)
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(REPO_ROOT)), str(path), operation, str(warm)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    per_pixel = (measured["peak_growth_bytes"] - path.stat().st_size) / (SIDE * SIDE)
    assert per_pixel <= BOUND_BYTES_PER_PIXEL, f"{kind}: {per_pixel:.2f} bytes per pixel at peak ({measured})"
