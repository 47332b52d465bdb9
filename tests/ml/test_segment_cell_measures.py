"""Per-cell measures: area in px and µm², circularity and the white cells' N:C ratio are what the shapes say."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ml.segment import SegmentParams, segment
from ml.synthetic import make_smear


def single_shape(draw, size: tuple[int, int] = (140, 140)) -> np.ndarray:
    image = np.full((*size, 3), (230, 228, 220), np.uint8)
    draw(image)
    return cv2.GaussianBlur(image, (0, 0), 0.7)


@pytest.mark.parametrize("ppm", [3.0, 5.0])
def test_disc_area_and_circularity(ppm: float) -> None:
    radius = 3.75 * ppm  # a 7.5 µm red cell
    image = single_shape(lambda im: cv2.circle(im, (70, 70), round(radius), (205, 135, 160), -1, cv2.LINE_AA))
    (cell,) = segment(image, SegmentParams(pixels_per_micron=ppm)).cells
    expected_um2 = math.pi * 3.75**2
    assert cell.kind == "rbc"
    assert cell.area_um2 == pytest.approx(expected_um2, rel=0.12)
    assert cell.area_px == pytest.approx(math.pi * radius**2, rel=0.12)
    assert cell.circularity > 0.85
    assert cell.nc_ratio is None
    assert cell.centroid == pytest.approx((70, 70), abs=1.5)


def test_elongated_cell_is_less_circular_than_a_disc() -> None:
    ppm = 4.0
    disc = single_shape(lambda im: cv2.circle(im, (70, 70), 15, (205, 135, 160), -1, cv2.LINE_AA))
    ellipse = single_shape(lambda im: cv2.ellipse(im, (70, 70), (26, 9), 0, 0, 360, (205, 135, 160), -1, cv2.LINE_AA))
    (round_cell,) = segment(disc, SegmentParams(pixels_per_micron=ppm)).cells
    (long_cell,) = segment(ellipse, SegmentParams(pixels_per_micron=ppm)).cells
    assert long_cell.circularity < round_cell.circularity - 0.1


def test_white_cell_nc_ratio_is_between_nucleus_and_cell_areas() -> None:
    smear = make_smear(3, "Benign", (224, 224), n_wbc=1)
    result = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))
    (wbc,) = [cell for cell in result.cells if cell.kind == "wbc"]
    # ground truth: the white cell's region, its nucleus the dark purple part of it
    truth_id = next(i for i, kind in smear.kinds.items() if kind == "wbc")
    truth_region = smear.cell_labels == truth_id
    blue_minus_green = smear.image[..., 2].astype(int) - smear.image[..., 1].astype(int)
    truth_nc = (truth_region & (blue_minus_green > 60)).sum() / truth_region.sum()
    assert 0.0 < wbc.nc_ratio < 1.0
    assert wbc.nc_ratio == pytest.approx(truth_nc, abs=0.2)


def test_sizes_scale_with_pixels_per_micron() -> None:
    smear = make_smear(8, "Pro", (224, 224))
    small = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))
    large = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron / 2))
    # half the pixels per µm: every area in µm² four times as large (same segmentation apart from µm rules)
    small_wbc = sorted(c.area_um2 for c in small.cells if c.kind == "wbc")
    large_wbc = sorted(c.area_um2 for c in large.cells if c.kind == "wbc")
    assert len(small_wbc) == len(large_wbc) >= 1
    assert np.median(np.array(large_wbc) / np.array(small_wbc)) == pytest.approx(4.0, rel=0.3)
