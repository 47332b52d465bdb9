"""Robustness perturbations: reproducible, shape-preserving, and actually change the image."""

from __future__ import annotations

import numpy as np
import pytest

from ml.augment import PERTURBATIONS, perturb_all


@pytest.fixture()
def smear() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.full((64, 80, 3), (225, 215, 230), dtype=np.uint8)
    image[20:40, 30:50] = (120, 70, 160)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbation_is_seeded_and_changes_pixels(smear, name):
    first = perturb_all([smear, smear], name, seed=3)
    again = perturb_all([smear, smear], name, seed=3)
    for out in first:
        assert out.shape == smear.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(first[0], again[0])
    assert np.abs(first[0].astype(int) - smear).mean() > 0.5


def test_colour_shift_moves_the_background_colour(smear):
    shifted = perturb_all([smear], "stain_colour", seed=1)[0]
    assert np.abs(shifted[:10, :10].mean((0, 1)) - smear[:10, :10].mean((0, 1))).max() > 3


def test_unknown_perturbation():
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb_all([], "rain")
