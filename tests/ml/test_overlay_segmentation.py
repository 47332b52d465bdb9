"""segmentation_overlay draws each cell's contour (by kind, blasts highlighted) and its number, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from ml.overlay import BLAST_COLOUR, KIND_COLOURS, segmentation_overlay
from ml.segment import SegmentParams, classify_blasts, segment
from ml.synthetic import make_smear


@pytest.fixture(scope="module")
def smear_and_result():
    smear = make_smear(4, "Pre", (224, 224), n_wbc=2)
    return smear, segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))


def test_shape_dtype_and_input_untouched(smear_and_result) -> None:
    smear, result = smear_and_result
    before = smear.image.copy()
    out = segmentation_overlay(smear.image, result)
    assert out.shape == smear.image.shape and out.dtype == np.uint8
    assert np.array_equal(smear.image, before)


def test_drawing_is_at_the_cells_only(smear_and_result) -> None:
    smear, result = smear_and_result
    out = segmentation_overlay(smear.image, result)
    changed = np.any(out != smear.image, axis=-1)
    near_cells = ndi.binary_dilation(result.labels > 0, iterations=4)
    assert changed.any()
    assert not changed[~near_cells].any()
    for cell in result.cells:  # every cell got its contour (or number) drawn
        assert changed[result.labels == cell.index].any() or changed[ndi.binary_dilation(result.labels == cell.index, iterations=2)].any()


def test_numbers_are_drawn_at_the_centroids(smear_and_result) -> None:
    smear, result = smear_and_result
    with_numbers = segmentation_overlay(smear.image, result, numbers=True)
    contours_only = segmentation_overlay(smear.image, result, numbers=False)
    differs = np.any(with_numbers != contours_only, axis=-1)
    for cell in result.cells:
        r, c = (round(v) for v in cell.centroid)
        window = differs[max(0, r - 8) : r + 8, max(0, c - 10) : c + 10]
        assert window.any(), f"no number drawn near cell {cell.index}"


def test_contour_colours_follow_kind_and_blasts(smear_and_result) -> None:
    smear, result = smear_and_result
    out = segmentation_overlay(smear.image, result, numbers=False)
    colours = {tuple(px) for px in out.reshape(-1, 3)}
    assert KIND_COLOURS["rbc"] in colours and KIND_COLOURS["wbc"] in colours
    assert BLAST_COLOUR not in colours
    everything_blast = classify_blasts(smear.image, result, lambda crops: np.tile([0.0, 1.0], (len(crops), 1)))
    blast_out = segmentation_overlay(smear.image, everything_blast, numbers=False)
    assert BLAST_COLOUR in {tuple(px) for px in blast_out.reshape(-1, 3)}


def test_labels_of_another_size_are_an_error(smear_and_result) -> None:
    smear, result = smear_and_result
    with pytest.raises(ValueError):
        segmentation_overlay(smear.image[:100], result)
