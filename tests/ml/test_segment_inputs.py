"""Edge inputs: an empty field gives zero counts; wrong shapes, dtypes and modes are clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.segment import SegmentParams, classify_blasts, segment


@pytest.mark.parametrize("mode", ["smear", "tissue"])
def test_blank_field_has_no_cells(mode: str) -> None:
    rng = np.random.default_rng(0)
    blank = np.clip(rng.normal(228, 1.5, (128, 160, 3)), 0, 255).astype(np.uint8)
    result = segment(blank, SegmentParams(mode=mode))
    assert result.cells == []
    assert all(value == 0 for value in result.counts.values())
    assert result.labels.shape == (128, 160) and not result.labels.any()
    json.dumps(result.to_dict())  # JSON-friendly even when empty


@pytest.mark.parametrize(
    "image",
    [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 4), np.uint8), np.zeros((4, 64, 3), np.uint8),
     np.zeros((64, 64, 3), np.float32)],
    ids=["gray", "rgba", "too_small", "float"],
)
def test_bad_arrays_are_rejected(image: np.ndarray) -> None:
    with pytest.raises(ValueError):
        segment(image)


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        segment(np.full((64, 64, 3), 200, np.uint8), SegmentParams(mode="histology"))


def test_blast_classification_needs_a_smear() -> None:
    image = np.full((64, 64, 3), 200, np.uint8)
    result = segment(image, SegmentParams(mode="tissue"))
    with pytest.raises(ValueError, match="smear"):
        classify_blasts(image, result, lambda crops: np.zeros((len(crops), 2)))
