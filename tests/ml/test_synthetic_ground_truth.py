"""Synthetic smears are seeded and their ground truth (instance map, kinds, counts) agrees with itself."""

from __future__ import annotations

import numpy as np
import pytest

from ml.labels import SUBTYPES
from ml.synthetic import make_smear


def test_same_seed_same_smear_other_seed_other_smear() -> None:
    first, again, other = make_smear(7, "Pre"), make_smear(7, "Pre"), make_smear(8, "Pre")
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.cell_labels, again.cell_labels)
    assert first.counts == again.counts
    assert not np.array_equal(first.image, other.image)


@pytest.mark.parametrize("label", SUBTYPES)
def test_ground_truth_is_consistent(label: str) -> None:
    smear = make_smear(3, label, (200, 240))
    assert smear.label == label
    assert smear.image.shape == (200, 240, 3) and smear.image.dtype == np.uint8
    assert smear.cell_labels.shape == (200, 240) and smear.cell_labels.dtype == np.int32
    ids = set(np.unique(smear.cell_labels).tolist()) - {0}
    assert ids == set(smear.kinds)
    for kind in ("rbc", "wbc", "platelet"):
        assert smear.counts[kind] == sum(value == kind for value in smear.kinds.values())
    assert smear.counts["wbc"] >= 1 and smear.counts["rbc"] >= 10
    assert smear.blast_ids <= {i for i, kind in smear.kinds.items() if kind == "wbc"}
    assert smear.counts["blast"] == len(smear.blast_ids)
    # Benign smears hold mature lymphocytes only; in the ALL subtypes the white cells are blasts
    assert smear.counts["blast"] == (0 if label == "Benign" else smear.counts["wbc"])


def test_cells_lie_inside_the_frame() -> None:
    smear = make_smear(5, "Pro", (160, 160))
    edge = np.concatenate([smear.cell_labels[0], smear.cell_labels[-1], smear.cell_labels[:, 0], smear.cell_labels[:, -1]])
    assert not edge.any()


def test_some_red_cells_touch() -> None:
    """Touching cells are what the watershed has to split; the generator must make some."""
    from scipy import ndimage as ndi

    touching = 0
    for seed in range(4):
        smear = make_smear(seed, "Benign", (256, 256))
        rbc = np.isin(smear.cell_labels, [i for i, k in smear.kinds.items() if k == "rbc"])
        n_blobs = ndi.label(rbc)[1]
        touching += smear.counts["rbc"] - n_blobs
    assert touching >= 4


def test_requested_white_cells_and_bad_arguments() -> None:
    assert make_smear(1, "Early", (256, 256), n_wbc=2).counts["wbc"] == 2
    with pytest.raises(ValueError):
        make_smear(1, "Leukaemia")
    with pytest.raises(ValueError):
        make_smear(1, "Benign", (16, 16))
