"""The background-swap test tells a classifier that reads the background from one that reads the cells.

Two real classifiers (scikit-learn, as in ml.shortcuts) are fitted on generated smears whose class
shows both in the background colour and in the colour of the white cells: one sees only the border,
one only the masked cells. The swap must expose the first and leave the second alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ml.background import (
    BackgroundRandomiser,
    background_swap_set,
    purple_mask,
    remove_cells,
    usable_mask,
)
from ml.evaluate import background_swap_section
from ml.shortcuts import border_colour_features, fit_baseline

BACKGROUNDS = [(235, 215, 220), (200, 220, 240), (230, 235, 190)]
CELLS = [(170, 40, 200), (110, 30, 190), (200, 60, 150)]  # purple: (R + B) / 2 - G > 40


def smear(label: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    image = np.clip(np.array(BACKGROUNDS[label]) + rng.normal(0, 4, (size, size, 3)), 0, 255)
    yy, xx = np.ogrid[:size, :size]
    for _ in range(2):
        cy, cx = rng.integers(16, size - 16, 2)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 7 ** 2] = CELLS[label]
    return image.astype(np.uint8)


def cell_colour(image: np.ndarray) -> np.ndarray:
    mask = purple_mask(image)
    return image[mask].mean(0) / 255.0 if mask.any() else np.zeros(3)


class SklearnPredictor:
    """The one method of ml.predict.Predictor the swap test calls, over a fitted scikit-learn model."""

    def __init__(self, model, features):
        self.model, self.features = model, features

    def predict_proba(self, images):
        return self.model.predict_proba(np.stack([self.features(i) for i in images]))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = [c for c in range(3) for _ in range(12)]
    images = [smear(c, rng) for c in labels]
    return images, labels


class _Sample:
    def __init__(self, i):
        self.relpath = f"x/{i:03d}.png"


def _swap(predictor, images, labels, tmp_path):
    samples = [_Sample(i) for i in range(len(images))]
    return background_swap_section(predictor, images, samples, labels, ["a", "b", "c"], tmp_path / "none")


def test_a_background_reader_follows_the_background(data, tmp_path):
    images, labels = data
    predictor = SklearnPredictor(fit_baseline(images, labels, border_colour_features), border_colour_features)
    assert (predictor.predict_proba(images).argmax(1) == np.array(labels)).mean() == 1.0
    figures = _swap(predictor, images, labels, tmp_path)["report"]
    assert figures["background_swap"]["n"] == len(images)
    assert figures["follows_background"] >= 0.9
    assert figures["accuracy_background_swap"] <= 0.1


def test_a_cell_reader_keeps_its_label_on_any_background(data, tmp_path):
    images, labels = data
    predictor = SklearnPredictor(fit_baseline(images, labels, cell_colour), cell_colour)
    figures = _swap(predictor, images, labels, tmp_path)["report"]
    assert figures["accuracy_background_swap"] >= 0.95
    assert figures["follows_background"] <= 0.05
    assert figures["accuracy_neutral_background"] >= 0.95


def test_swapped_images_keep_the_cells_and_take_the_donor_background(data):
    images, labels = data
    masks = [purple_mask(i) for i in images]
    assert all(usable_mask(m) for m in masks)
    built = background_swap_set(images, masks, labels, seed=1)
    for k, (i, j) in enumerate(zip(built["index"], built["donor"])):
        assert labels[j] != labels[i]
        swapped = built["swapped"][k].astype(int)
        core = ndimage.binary_erosion(masks[i], iterations=3)  # inside the feathered edge
        assert np.abs(swapped[core] - images[i][core]).max() <= 3  # cells unchanged
        outside = ~masks[i] & ~masks[j]
        donor_bg = np.array(BACKGROUNDS[labels[j]])
        assert np.abs(swapped[outside].mean(0) - donor_bg).max() < 6  # the donor's background
    cleaned = remove_cells(images[0], masks[0])
    assert not purple_mask(cleaned).any()  # the donor's own cells are painted out


def test_the_randomiser_moves_cells_onto_other_backgrounds(data):
    images, _labels = data
    masks = [purple_mask(i) for i in images]
    randomiser = BackgroundRandomiser(images, masks, p_donor=0.5, p_synthetic=0.5, seed=0)
    changed = 0
    for _ in range(20):
        out = randomiser(0, images[0])
        core = ndimage.binary_erosion(masks[0], iterations=3)
        assert np.abs(out[core].astype(int) - images[0][core]).max() <= 3
        changed += np.abs(out[~masks[0]].mean(0) - np.array(BACKGROUNDS[0])).max() > 8
    assert changed >= 10  # most draws put the cells on a background not of class "a"
