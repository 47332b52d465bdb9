"""Class-imbalance remedies: inverse-frequency loss weights and a balanced sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.train import balanced_sampler, class_weights


def test_class_weights_are_inverse_frequency_with_mean_one():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    weights = class_weights(labels, 3).numpy()
    assert weights.mean() == pytest.approx(1.0)
    counts = np.array([60, 30, 10])
    np.testing.assert_allclose(weights * counts, (weights * counts)[0])  # each class weighs the same


def test_absent_class_gets_no_weight():
    weights = class_weights([0, 0, 2], 3).numpy()
    assert weights[1] == 0 and weights[0] < weights[2]


def test_sampler_draws_classes_evenly():
    labels = [0] * 90 + [1] * 10
    sampler = balanced_sampler(labels, 2, torch.Generator().manual_seed(0))
    drawn = np.array([labels[i] for _ in range(50) for i in sampler])
    assert len(drawn) == 50 * len(labels)
    assert abs(drawn.mean() - 0.5) < 0.03  # class 1 is 10 % of the data but ~50 % of the draws
