"""The watershed splits touching cells that one threshold would merge into one blob."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from ml.segment import SegmentParams, segment

PPM = 4.0  # pixels per micron: a 7.5 µm red cell is 15 px in radius
RADIUS = 15


def pale_field(size: tuple[int, int] = (120, 160)) -> np.ndarray:
    return np.full((*size, 3), (230, 228, 220), np.uint8)


def draw_red_cells(image: np.ndarray, centres: list[tuple[int, int]], radius: int = RADIUS) -> np.ndarray:
    out = image.copy()
    for row, col in centres:
        cv2.circle(out, (col, row), radius, (205, 135, 160), -1, lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(out, (0, 0), 0.8)


@pytest.mark.parametrize("overlap_px", [0, 3, 6])
def test_two_touching_discs_are_two_cells(overlap_px: int) -> None:
    gap = 2 * RADIUS - overlap_px
    image = draw_red_cells(pale_field(), [(60, 80 - gap // 2), (60, 80 + (gap - gap // 2))])
    stained = (image[..., 1] < 200)
    assert ndi.label(stained)[1] == 1, "the two discs must form one connected blob for this test to mean anything"

    result = segment(image, SegmentParams(pixels_per_micron=PPM))

    assert result.counts == {"wbc": 0, "rbc": 2, "platelet": 0}
    left, right = sorted(result.cells, key=lambda cell: cell.centroid[1])
    assert left.centroid[1] < 80 < right.centroid[1]
    # the cut runs between the centres: each part is about one disc
    disc = np.pi * RADIUS**2
    for cell in (left, right):
        assert 0.75 * disc < cell.area_px < 1.25 * disc


def test_one_disc_stays_one_cell() -> None:
    image = draw_red_cells(pale_field(), [(60, 80)])
    result = segment(image, SegmentParams(pixels_per_micron=PPM))
    assert result.counts["rbc"] == 1


def test_a_row_of_touching_discs_is_counted_disc_by_disc() -> None:
    centres = [(60, 24 + 28 * i) for i in range(5)]  # each 28 px apart: 2 px overlap
    image = draw_red_cells(pale_field((120, 170)), centres)
    result = segment(image, SegmentParams(pixels_per_micron=PPM))
    assert result.counts["rbc"] == 5
