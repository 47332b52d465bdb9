"""Scale: estimated from the image when not given, and counts do not depend on the image resolution."""

from __future__ import annotations

import cv2
import pytest

from ml.segment import SegmentParams, segment
from ml.synthetic import make_smear


@pytest.mark.parametrize(("seed", "ppm"), [(1, 3.0), (2, 4.0), (3, 6.0)])
def test_estimated_scale_is_close_to_the_truth(seed: int, ppm: float) -> None:
    size = (int(64 * ppm), int(64 * ppm))
    smear = make_smear(seed, "Benign", size, pixels_per_micron=ppm)
    result = segment(smear.image)
    assert result.scale_estimated
    assert result.pixels_per_micron == pytest.approx(ppm, rel=0.15)


def test_given_scale_is_used_as_is() -> None:
    smear = make_smear(4, "Pre", (224, 224))
    result = segment(smear.image, SegmentParams(pixels_per_micron=4.0))
    assert not result.scale_estimated
    assert result.pixels_per_micron == 4.0


def test_counts_are_the_same_at_three_times_the_resolution() -> None:
    """A big frame is resampled to the working scale: same cells, three times the pixels per µm."""
    smear = make_smear(9, "Early", (200, 200))
    small = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))
    big_image = cv2.resize(smear.image, (600, 600), interpolation=cv2.INTER_CUBIC)
    big = segment(big_image, SegmentParams(pixels_per_micron=3 * smear.pixels_per_micron))
    assert big.labels.shape == (600, 600)
    assert big.counts["wbc"] == small.counts["wbc"]
    assert abs(big.counts["rbc"] - small.counts["rbc"]) <= 1
    small_wbc = sorted(c.area_um2 for c in small.cells if c.kind == "wbc")
    big_wbc = sorted(c.area_um2 for c in big.cells if c.kind == "wbc")
    assert big_wbc == pytest.approx(small_wbc, rel=0.15)
