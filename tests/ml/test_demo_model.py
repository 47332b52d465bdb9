"""The synthetic demo models train on any fresh clone, say they are demos, and have learnt."""

from __future__ import annotations

import pytest

from ml.checkpoint import load_checkpoint
from ml.demo import synthetic_cell_crops, train_demo_cell_model, train_demo_model
from ml.labels import CELL_CLASSES, SUBTYPE_BINARY_MAP, SUBTYPES
from ml.predict import Predictor
from ml.segment import SegmentParams, classify_blasts, segment
from ml.synthetic import make_smear


@pytest.mark.slow
def test_demo_image_model_trains_and_beats_chance(tmp_path):
    path = train_demo_model(tmp_path / "demo.pt", n_per_class=20, epochs=8, img_size=64, progress=False)
    model, card = load_checkpoint(path)
    assert card.demo is True and card.task == "image"
    assert card.class_names == list(SUBTYPES) and card.binary_map == SUBTYPE_BINARY_MAP
    assert card.training["data"]["root"].startswith("synthetic")
    assert card.metrics["n"] == 16  # 20 % of 20 per class, held out
    assert card.metrics["accuracy"] >= 0.5, card.metrics  # chance is 0.25
    prediction = Predictor(model, card).predict([make_smear(123, "Pro", (128, 128)).image])[0]
    assert prediction.label in SUBTYPES and prediction.all_probability is not None


def test_synthetic_cell_crops_are_labelled_from_ground_truth():
    crops, labels, stats = synthetic_cell_crops(8, seed=3)
    assert stats["smears"] == 8 and len(crops) == len(labels) > 0
    assert set(labels) == {0, 1}  # Benign smears give normal cells, the others blasts
    assert all(c.ndim == 3 and c.shape[2] == 3 for c in crops)


@pytest.mark.slow
def test_demo_cell_model_counts_blasts(tmp_path):
    path = train_demo_cell_model(tmp_path / "cell.pt", progress=False)  # the defaults bin/run uses
    model, card = load_checkpoint(path)
    assert card.demo is True and card.task == "cell" and card.class_names == list(CELL_CLASSES)
    assert card.metrics["kappa"] >= 0.5, card.metrics
    predictor = Predictor(model, card)
    smear = make_smear(99, "Pro", (192, 192), n_wbc=2)
    result = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))
    counted = classify_blasts(smear.image, result, predictor.predict_proba)
    assert counted.blasts is not None and 0 <= counted.blasts <= counted.counts["wbc"]
