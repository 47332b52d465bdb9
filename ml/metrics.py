"""Classification and distribution metrics: a leaf module (NumPy, SciPy, scikit-learn only).

Training (:mod:`ml.train`), evaluation (:mod:`ml.evaluate`) and the cGAN measures
(:mod:`ml.gan`) all score with these functions, so one figure means the same thing everywhere.
Nothing here imports torch or another ``ml`` module.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

ECE_BINS = 15


def expected_calibration_error(y_true: Sequence[int], probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: the confidence-weighted gap between confidence and accuracy, over equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        return float("nan")
    confidence = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def _safe(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def kappa_score(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int] | None = None) -> float:
    """Cohen's kappa, 0.0 where it is undefined (a single class in truth and prediction)."""
    if len(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist())) <= 1:
        return 0.0
    value = float(cohen_kappa_score(y_true, y_pred, labels=labels))
    return 0.0 if math.isnan(value) else value


def compute_metrics(y_true: Sequence[int], probs: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, weighted/macro F1, Cohen's kappa, per-class precision/recall, ECE, ROC AUC.

    ``probs`` is (N, K) main-head probabilities; the prediction is its argmax. Classes absent from
    ``y_true`` still get a row (support 0) so reports from different splits line up.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(1)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    metrics: dict = {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_weighted": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "kappa": kappa_score(y_true, y_pred, labels),
        "ece": expected_calibration_error(y_true, probs),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    present = sorted(set(y_true.tolist()))
    if len(present) >= 2:
        if len(class_names) == 2:
            metrics["roc_auc"] = float(roc_auc_score(y_true, probs[:, 1]))
        elif len(present) == len(class_names):
            metrics["roc_auc"] = float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro",
                                                     labels=labels))
    return metrics


def short_metrics(metrics: Mapping) -> dict:
    """The headline figures of a :func:`compute_metrics` dict."""
    return {k: metrics[k] for k in ("accuracy", "f1_weighted", "kappa", "ece") if k in metrics}


def binary_summary(y: Sequence[int], p_all: np.ndarray, class_names: Sequence[str],
                   binary_map: Mapping[str, int]) -> dict:
    """Accuracy (and ROC AUC) of an ALL-vs-normal probability against subtype labels."""
    truth = np.array([binary_map[class_names[i]] for i in y])
    p_all = np.asarray(p_all)
    out = {"accuracy": float(accuracy_score(truth, p_all >= 0.5))}
    if len(set(truth.tolist())) == 2:
        out["roc_auc"] = float(roc_auc_score(truth, p_all))
    return out


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the finite values; (None, None) if none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None, None
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return float(np.mean(finite)), sd


# --------------------------------------------------------------------------- distributions

def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

    ``real`` and ``fake`` are (N, D) feature matrices (here: the pretrained classifier backbone's
    pooled features, not Inception's, so values are comparable only within this project).
    """
    from scipy import linalg

    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("the Fréchet distance needs at least two samples on each side")
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular products on few samples: regularised below
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # near-singular product: regularise (as pytorch-fid does)
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)))


def kernel_distance(real: np.ndarray, fake: np.ndarray, *, n_subsets: int = 20,
                    subset_size: int = 100, seed: int = 0) -> float:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial
    kernel ``(x·y / d + 1)³``, averaged over random subsets. Unlike the Fréchet distance it is
    unbiased for small samples, which is what a few dozen images per class give."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d = real.shape[1]
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError("the kernel distance needs at least two samples on each side")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                      + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values))
