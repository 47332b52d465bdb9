"""The learned white-cell mask (ml.wbcmask) and its use by ml.segment.

A U-Net trained for a few epochs on drawn fields (purple discs on a pale
background, the mask = the discs) must find the discs on held-out drawings;
a probability map given to ``segment`` replaces the colour rules' white cells
and is split into one cell per disc, touching discs included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.segment import SegmentParams, segment, white_cells_from_probability
from ml.wbcmask import (
    CompactUNet,
    MaskTrainConfig,
    load_wbc_mask,
    mask_dice,
    predict_wbc_probability,
    save_wbc_mask,
    train_wbc_mask,
)
from tests.imagefactory import smear_like


def _discs(shape, centres, radius) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    mask = np.zeros(shape, bool)
    for r, c in centres:
        mask |= (yy - r) ** 2 + (xx - c) ** 2 <= radius**2
    return mask


def _drawn_field(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = [tuple(rng.integers(30, 194, 2)) for _ in range(int(rng.integers(2, 6)))]
    mask = _discs((224, 224), centres, int(rng.integers(14, 22)))
    rgb = np.full((224, 224, 3), (232, 214, 220), np.float32) + rng.normal(0, 6, (224, 224, 3))
    rgb[mask] = np.array((110, 60, 150)) + rng.normal(0, 8, (int(mask.sum()), 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def test_the_unet_keeps_the_field_size_and_is_compact() -> None:
    model = CompactUNet(16)
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1, 224, 224)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    prob = predict_wbc_probability(model, np.zeros((300, 200, 3), np.uint8))
    assert prob.shape == (300, 200) and prob.dtype == np.float32 and 0 <= prob.min() <= prob.max() <= 1


def test_a_short_training_finds_drawn_cells_on_held_out_fields(tmp_path) -> None:
    train = [_drawn_field(seed) for seed in range(16)]
    held_out = [_drawn_field(seed) for seed in range(100, 106)]
    config = MaskTrainConfig(epochs=4, batch_size=8, lr=1e-2, width=8, colour_jitter=0.0)
    model, history = train_wbc_mask(np.stack([x for x, _ in train]), np.stack([m for _, m in train]), config)
    assert len(history) == 4 and history[-1]["train_loss"] < history[0]["train_loss"]
    dice = [mask_dice(predict_wbc_probability(model, x) >= 0.5, m) for x, m in held_out]
    assert np.mean(dice) > 0.8, dice

    path = save_wbc_mask(model, tmp_path / "mask.pt", {"threshold": 0.5})
    again, card = load_wbc_mask(path)
    assert card == {"threshold": 0.5}
    x = held_out[0][0]
    np.testing.assert_allclose(predict_wbc_probability(again, x), predict_wbc_probability(model, x), atol=1e-6)


def test_a_file_that_is_not_a_mask_checkpoint_is_refused(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"kind": "something-else", "state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a white-cell mask checkpoint"):
        load_wbc_mask(path)


def test_touching_cells_of_a_probability_map_are_split() -> None:
    mask = _discs((224, 224), [(100, 80), (100, 112), (40, 170)], 17)  # two touching, one alone
    _, labels = white_cells_from_probability(mask.astype(np.float32) * 0.9)
    assert labels.max() == 3


def test_segment_takes_its_white_cells_from_the_probability_map() -> None:
    rgb = smear_like(seed=7, size=224)
    plain = segment(rgb, SegmentParams(mode="smear"))
    centres = [(60, 60), (60, 92), (170, 150)]
    prob = _discs((224, 224), centres, 15).astype(np.float32)
    learned = segment(rgb, SegmentParams(mode="smear"), wbc_probability=prob)
    wbc = [cell for cell in learned.cells if cell.kind == "wbc"]
    assert learned.counts["wbc"] == len(wbc) == 3
    for r, c in centres:  # each disc is one white cell's region
        assert learned.labels[r, c] in {cell.index for cell in wbc}
    # red cells stay the colour rules'; none is left under a learned white cell
    assert learned.counts["rbc"] > 0 and learned.counts["rbc"] <= plain.counts["rbc"]
    rbc_ids = [cell.index for cell in learned.cells if cell.kind == "rbc"]
    assert not np.isin(learned.labels[prob > 0], rbc_ids).any()


def test_a_probability_map_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="wbc_probability has shape"):
        segment(smear_like(seed=1, size=160), SegmentParams(mode="smear"), wbc_probability=np.zeros((10, 10), np.float32))


@pytest.mark.realdata
def test_the_taleqani_weak_labels_load(real_data) -> None:
    from ml.wbcmask import load_mask_pairs

    pairs = load_mask_pairs(real_data, "val", every=60)
    assert pairs.images.shape[1:] == (224, 224, 3) and pairs.masks.shape == pairs.images.shape[:3]
    assert pairs.counts.min() >= 1 and pairs.masks.mean() > 0.005
