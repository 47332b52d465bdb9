"""Blasts are "not determined" (None) without a cell model, and counted when one classifies the white-cell crops."""

from __future__ import annotations

import numpy as np
import pytest

from ml.segment import SegmentParams, classify_blasts, crop_cells, segment
from ml.synthetic import make_smear


def blast_proba_from_crop_size(crops: list[np.ndarray]) -> np.ndarray:
    """A tiny real cell model: blasts are bigger than mature lymphocytes.

    In ml.synthetic mature lymphocytes are 8-10 µm and blasts 10.5-16.5 µm
    (4 px/µm), so P(blast) rises with the crop's side, centred at 10.25 µm plus
    the 2 × 8 px padding of crop_cells.
    """
    sides = np.array([np.sqrt(crop.shape[0] * crop.shape[1]) for crop in crops], dtype=np.float64)
    p_blast = 1.0 / (1.0 + np.exp(-(sides - (10.25 * 4.0 + 16.0)) / 2.0))
    return np.stack([1.0 - p_blast, p_blast], axis=1)


def segmented(label: str, seed: int):
    smear = make_smear(seed, label, (256, 256), n_wbc=2)
    return smear, segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))


def test_blasts_are_not_determined_without_a_model() -> None:
    _smear, result = segmented("Pro", 1)
    assert result.counts["wbc"] >= 1
    assert result.blasts is None
    assert result.blast_percent is None
    assert result.to_dict()["blasts"] is None
    assert all(cell.is_blast is None and cell.blast_probability is None for cell in result.cells)


@pytest.mark.parametrize(("label", "seed"), [("Benign", 2), ("Benign", 3), ("Pro", 4), ("Pre", 5)])
def test_blasts_are_counted_with_a_model(label: str, seed: int) -> None:
    smear, result = segmented(label, seed)
    classified = classify_blasts(smear.image, result, blast_proba_from_crop_size)
    assert classified.blasts == smear.counts["blast"]  # 0 for Benign is now a real finding, not "unknown"
    assert classified.blasts is not None
    wbc = [cell for cell in classified.cells if cell.kind == "wbc"]
    assert all(cell.blast_probability is not None for cell in wbc)
    assert sum(cell.is_blast for cell in wbc) == classified.blasts
    assert classified.blast_percent == pytest.approx(100.0 * classified.blasts / classified.counts["wbc"])
    # red cells are never classified, and the input result is left as it was
    assert all(cell.is_blast is None for cell in classified.cells if cell.kind != "wbc")
    assert result.blasts is None


def test_threshold_moves_the_decision() -> None:
    smear, result = segmented("Pre", 5)
    everything = classify_blasts(smear.image, result, blast_proba_from_crop_size, threshold=0.0)
    nothing = classify_blasts(smear.image, result, blast_proba_from_crop_size, threshold=1.01)
    assert everything.blasts == result.counts["wbc"]
    assert nothing.blasts == 0


def test_crops_are_the_white_cells_with_padding() -> None:
    smear, result = segmented("Early", 6)
    crops = crop_cells(smear.image, result, kind="wbc", pad=8)
    wbc = [cell for cell in result.cells if cell.kind == "wbc"]
    assert len(crops) == len(wbc)
    h, w = smear.image.shape[:2]
    for crop, cell in zip(crops, wbc):
        r0, c0, r1, c1 = cell.bbox
        assert crop.shape == (min(h, r1 + 8) - max(0, r0 - 8), min(w, c1 + 8) - max(0, c0 - 8), 3)


def test_a_model_returning_the_wrong_shape_is_an_error() -> None:
    smear, result = segmented("Pro", 7)
    with pytest.raises(ValueError, match="shape"):
        classify_blasts(smear.image, result, lambda crops: np.ones((len(crops), 3)) / 3)
