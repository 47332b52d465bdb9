"""The evaluate report's metrics equal scikit-learn's on the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ml.checkpoint import load_checkpoint
from ml.datasets import Split, load_rgb, scan_imagefolder
from ml.evaluate import compute_metrics, evaluate_checkpoint, expected_calibration_error
from ml.predict import Predictor
from tests.ml._evalkit import save_probe_checkpoint, write_colour_folder


def _ece_reference(y, probs, n_bins=15):
    """Textbook ECE (Guo et al. 2017), written independently of ml.evaluate."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for lo, hi in zip(np.linspace(0, 1, n_bins + 1)[:-1], np.linspace(0, 1, n_bins + 1)[1:]):
        inside = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total


def test_compute_metrics_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(0, 1, (200, 4)) + 2.0 * np.eye(4)[y] * rng.random((200, 1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    m = compute_metrics(y, probs, ["w", "x", "y", "z"])
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    for i, name in enumerate("wxyz"):
        assert m["per_class"][name]["precision"] == pytest.approx(precision_score(y, pred, labels=[i], average="macro"))
        assert m["per_class"][name]["recall"] == pytest.approx(recall_score(y, pred, labels=[i], average="macro"))
    assert m["ece"] == pytest.approx(_ece_reference(y, probs))
    assert 0 < m["ece"] < 1


def test_ece_is_zero_for_perfectly_calibrated_certainty():
    y = np.array([0, 1, 1, 0])
    assert expected_calibration_error(y, np.eye(2)[y]) == 0.0
    assert expected_calibration_error(y, np.eye(2)[1 - y]) == pytest.approx(1.0)


@pytest.mark.parametrize("split", ["test", "all"])
def test_evaluate_report_matches_sklearn_recomputation(tmp_path, split):
    data = write_colour_folder(tmp_path / "data", n_per_class=10)
    ckpt = save_probe_checkpoint(data, tmp_path / "model.pt")

    report = evaluate_checkpoint(ckpt, data, split=split, progress=False, cam_examples=0)
    json.loads(json.dumps(report))  # the report is plain JSON

    model, card = load_checkpoint(ckpt)
    index = scan_imagefolder(data)
    samples = Split.from_dict(card.training["split"], index).test if split == "test" else index.samples
    y = np.array([card.class_names.index(s.label) for s in samples])
    probs = Predictor(model, card).predict_proba([load_rgb(s.path) for s in samples])
    pred = probs.argmax(1)
    assert len(set(pred)) > 1, "the fixture model should not predict one class everywhere"
    assert 0 < accuracy_score(y, pred) < 1 or split == "test"

    assert report["n"] == len(samples)
    assert report["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert report["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert report["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert report["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    assert report["confusion_matrix"] == confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    for i, name in enumerate(card.class_names):
        assert report["per_class"][name]["recall"] == pytest.approx(
            recall_score(y, pred, labels=[i], average="macro", zero_division=0))
    assert report["ece"] == pytest.approx(_ece_reference(y, probs.astype(np.float64)), abs=1e-6)
    for key in ("accuracy_shifted", "shortcut_baseline_accuracy", "corner_patch_accuracy"):
        assert 0.0 <= report[key] <= 1.0
