"""Segmenting synthetic smears recovers their ground-truth counts (exact white cells, red cells within a tolerance)."""

from __future__ import annotations

import pytest

from ml.labels import SUBTYPES
from ml.segment import SegmentParams, segment
from ml.synthetic import make_smear

CASES = [(seed, label) for seed in (11, 12) for label in SUBTYPES]


def rbc_tolerance(truth: int) -> int:
    """Touching red cells may merge or split: allow 10 % (at least 2) off."""
    return max(2, round(0.10 * truth))


@pytest.mark.parametrize(("seed", "label"), CASES)
def test_counts_with_known_scale(seed: int, label: str) -> None:
    smear = make_smear(seed, label, (256, 256))
    result = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))
    assert result.counts["wbc"] == smear.counts["wbc"]
    assert abs(result.counts["rbc"] - smear.counts["rbc"]) <= rbc_tolerance(smear.counts["rbc"])
    assert result.blasts is None


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_counts_with_estimated_scale(seed: int) -> None:
    smear = make_smear(seed, "Pre", (256, 256))
    result = segment(smear.image)
    assert result.scale_estimated
    assert result.counts["wbc"] == smear.counts["wbc"]
    assert abs(result.counts["rbc"] - smear.counts["rbc"]) <= rbc_tolerance(smear.counts["rbc"])


def test_counts_match_the_cells_and_the_label_image() -> None:
    smear = make_smear(5, "Early", (224, 224))
    result = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))
    assert sum(result.counts.values()) == len(result.cells)
    assert [cell.index for cell in result.cells] == list(range(1, len(result.cells) + 1))
    for cell in result.cells:
        region = result.labels == cell.index
        assert int(region.sum()) == cell.area_px
        r0, c0, r1, c1 = cell.bbox
        assert region[r0:r1, c0:c1].sum() == cell.area_px
    assert set(result.labels.ravel().tolist()) == {0, *range(1, len(result.cells) + 1)}
