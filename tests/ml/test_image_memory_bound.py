"""A 7000×7000 16-bit RGB TIFF (49 M pixels, inside the 50 M pixel limit) is
checked within about 8 bytes per pixel at peak, measured in a fresh process
(``bench/imageio_memory.py`` measures every kind the same way). It used to
take about 93 bytes per pixel (float64 and full-size temporaries): 4.8 GB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["inspect", "load"])
def test_a_7000_square_16bit_tiff_stays_under_its_memory_bound(tmp_path: Path, operation: str) -> None:
    path = tmp_path / "field.tif"
    write_compressible_16bit_tiff(path, SIDE)
    warm = tmp_path / "warm.tif"
    write_compressible_16bit_tiff(warm, 64)
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(REPO_ROOT)), str(path), operation, str(warm)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    per_pixel = (measured["peak_growth_bytes"] - path.stat().st_size) / (SIDE * SIDE)
    assert per_pixel <= BOUND_BYTES_PER_PIXEL, f"{per_pixel:.2f} bytes per pixel at peak ({measured})"
