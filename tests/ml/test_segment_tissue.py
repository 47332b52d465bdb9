"""Tissue mode counts haematoxylin-stained nuclei on an eosin background, touching ones included."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ml.segment import SegmentParams, segment

PPM = 2.3  # the nuclei drawn are 12-20 px across: 7 µm on average


def he_field(seed: int, n_nuclei: int, size: int = 300) -> tuple[np.ndarray, int]:
    """Pink eosin tissue with dark purple nuclei (some pale and large, a few touching)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size, 3), np.float32)
    image[:] = (225, 160, 200)
    image += cv2.GaussianBlur(rng.normal(0, 12, (size, size, 1)).astype(np.float32), (0, 0), 3)[..., None]
    centres: list[tuple[float, float, float]] = []
    while len(centres) < n_nuclei:
        r = rng.uniform(6, 10)
        y, x = rng.uniform(r + 2, size - r - 2, 2)
        if all(math.hypot(y - cy, x - cx) > 0.95 * (r + cr) for cy, cx, cr in centres):
            centres.append((y, x, r))
    for y, x, r in centres:
        dark = rng.uniform(0.65, 1.0)  # paler open-chromatin nuclei to dense ones
        colour = (225 - 150 * dark, 160 - 130 * dark, 200 - 60 * dark)
        cv2.ellipse(image, (int(x), int(y)), (int(r), int(r * rng.uniform(0.8, 1.0))), float(rng.uniform(0, 180)),
                    0, 360, colour, -1, cv2.LINE_AA)
    image = cv2.GaussianBlur(image, (0, 0), 1.0) + rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), n_nuclei


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nuclei_count_within_ten_percent(seed: int) -> None:
    image, truth = he_field(seed, 60)
    result = segment(image, SegmentParams(mode="tissue", pixels_per_micron=PPM))
    assert set(result.counts) == {"nucleus"}
    assert abs(result.counts["nucleus"] - truth) <= 0.1 * truth
    assert all(cell.kind == "nucleus" for cell in result.cells)
    assert result.blasts is None


def test_tissue_mode_estimates_its_scale() -> None:
    image, truth = he_field(3, 50)
    result = segment(image, SegmentParams(mode="tissue"))
    assert result.scale_estimated
    assert abs(result.counts["nucleus"] - truth) <= 0.15 * truth
