"""Is this image a stained smear field of the kind the active models were trained on?

:func:`check_scope` answers with a :class:`ScopeCheck`: ``in_scope``, a reason a
person can read, a short ``code`` and the measures behind it. It runs cheap
image checks first, in this order, and stops at the first that fails:

* ``blank``: almost no contrast (a flat colour, an empty or overexposed field);
* ``single_cell``: a large black surround (a pre-cut, segmented single cell or a
  masked image such as the "segmented" Taleqani view);
* ``screenshot``: a few exact colours cover much of the frame (rendered text, UI,
  charts) - camera images of a stained slide never do;
* ``not_smear_stain``: pixel noise with no smooth background (not a microscope field);
* ``out_of_focus``: too little fine detail for the field's contrast;

and then, when ``features`` (pooled backbone features of the image) and a card
whose ``scope["feature_stats"]`` was fitted on the training images are given,
``far_from_training``: the features lie farther from the training distribution
than nearly all training images (a whitened distance in the top principal
components plus the residual off them, see :func:`fit_feature_stats`). H&E
sections and single-cell photographs on a smear background (PBC) are caught
here: colour and focus alone do not separate them from smears. When the card
also holds ``feature_stats["known"]`` (centroids of known out-of-scope kinds),
the reason names the nearest one (``tissue_section``, ``single_cell``); the
decision itself uses the in-scope statistics only.

The thresholds in :data:`DEFAULT_LIMITS` were set on the training parts of
all4class and cbc and on generated non-smear images (``bench/cells.py`` reports
the held-out rates). Pure NumPy/OpenCV; no Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

__all__ = [
    "DEFAULT_LIMITS",
    "SCOPE_CODES",
    "ScopeCheck",
    "check_scope",
    "feature_distance",
    "fit_feature_stats",
    "image_measures",
]

SCOPE_CODES = (
    "ok", "blank", "screenshot", "not_smear_stain", "single_cell", "out_of_focus", "tissue_section",
    "far_from_training",
)

REASONS = {
    "ok": "a stained smear field like the training images",
    "blank": "the image is blank or nearly uniform: no cells to assess",
    "screenshot": "the image looks like a screenshot, chart or rendered text, not a microscope field",
    "not_smear_stain": "the image is mostly pixel noise, not a stained smear field",
    "single_cell": "a large black surround: a pre-cut single cell or a masked image, not a whole smear field",
    "out_of_focus": "the field is badly out of focus",
    "tissue_section": "the field looks like a tissue section (H&E), not a spread blood or marrow smear",
    "far_from_training": "the image is far from anything the models were trained on",
}

# Set on samples of all4class, cbc/Training, the other data sets and generated images
# (grey std / top colours / fine detail: all4class 15.7+ / ≤0.25 / 0.050-0.23, cbc 16.7+ / ≤0.04 /
# 0.044-0.083, PBC ≤0.48 top colours, H&E mbm ≤0.36 fine detail; uniform noise 0.84, rendered
# text 0.97 top colours, Gaussian blur σ 3 px on a 224-px field 0.024 fine detail).
DEFAULT_LIMITS: dict[str, float] = {
    "blank_std": 6.0,  # grey-level standard deviation (0..255) below which a field is blank
    "black_fraction": 0.25,  # share of near-black pixels above which it is a masked cell
    "screenshot_top_colours": 0.6,  # share of pixels in the 8 commonest exact colours
    "noise_max": 0.6,  # fine (σ 1 px) detail / overall contrast above which it is pixel noise
    "focus_min": 0.035,  # the same ratio below which the field is out of focus
}

WORK_SIZE = 256  # measures are taken on the image resized to this short side


@dataclass(frozen=True)
class ScopeCheck:
    in_scope: bool
    reason: str
    code: str
    measures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"in_scope": self.in_scope, "reason": self.reason, "code": self.code,
                "measures": {k: round(float(v), 5) for k, v in self.measures.items()}}


def _work_image(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = WORK_SIZE / min(h, w)
    if abs(scale - 1.0) < 1e-3:
        return rgb
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def image_measures(rgb: np.ndarray) -> dict[str, float]:
    """The cheap measures every check reads (all scale-free, on a 256-px short side)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("check_scope needs an H×W×3 uint8 RGB array")
    small = _work_image(rgb)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    std = float(grey.std())
    # exact-colour histogram on the original pixels (resampling would blend colours)
    flat = rgb.reshape(-1, 3)
    if flat.shape[0] > 200_000:
        flat = flat[:: flat.shape[0] // 200_000 + 1]
    packed = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    _, freq = np.unique(packed, return_counts=True)
    top = float(np.sort(freq)[-8:].sum() / packed.size)
    contrast = max(std, 1.0)
    # fine detail: the σ-1-px high-pass relative to contrast; low when blurred, very high for noise
    fine = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    fine_detail = float(fine.std() / contrast)
    black = float((small.max(axis=2) < 30).mean())
    return {"grey_std": std, "top_colours": top, "fine_detail": fine_detail, "black_fraction": black}


# ----------------------------------------------------------------------------------------- features


def fit_feature_stats(features: np.ndarray, *, components: int = 32, quantile: float = 0.99,
                      source: str = "") -> dict[str, Any]:
    """Summarise training features ``(N, C)`` for :func:`feature_distance` (JSON-compatible).

    Keeps the mean, the top ``components`` principal directions with their
    variances and the mean residual variance off them; ``threshold`` is the
    ``quantile`` of the training images' own distances.
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError("need at least 4 feature vectors (N, C)")
    mean = x.mean(axis=0)
    centred = x - mean
    k = int(min(components, x.shape[0] - 1, x.shape[1]))
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    variances = (s[:k] ** 2) / (x.shape[0] - 1)
    total = float((centred**2).sum() / (x.shape[0] - 1))
    residual = max((total - float(variances.sum())) / max(1, x.shape[1] - k), 1e-8)
    stats = {
        "mean": mean.astype(np.float32).tolist(),
        "components": vt[:k].astype(np.float32).tolist(),
        "variances": np.maximum(variances, 1e-8).astype(np.float32).tolist(),
        "residual_variance": float(residual),
        "n": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "source": source,
    }
    d = feature_distance(stats, x)
    stats["threshold"] = float(np.quantile(d, quantile))
    stats["quantile"] = quantile
    return stats


def feature_distance(stats: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    """Distance of each feature vector from the training distribution (≈1 for a typical one).

    Whitened squared distance in the principal subspace plus the residual energy
    off it over the residual variance, both divided by their degrees of freedom.
    """
    x = np.atleast_2d(np.asarray(features, np.float64))
    mean = np.asarray(stats["mean"], np.float64)
    comps = np.asarray(stats["components"], np.float64)
    var = np.asarray(stats["variances"], np.float64)
    if x.shape[1] != mean.shape[0]:
        raise ValueError(f"features have {x.shape[1]} dims, the card's statistics {mean.shape[0]}")
    c = x - mean
    proj = c @ comps.T
    inside = (proj**2 / var).sum(axis=1) / len(var)
    resid = np.maximum((c**2).sum(axis=1) - (proj**2).sum(axis=1), 0.0)
    outside = resid / float(stats["residual_variance"]) / max(1, mean.shape[0] - len(var))
    return 0.5 * (inside + outside)


def _feature_stats_of(card: Any) -> Mapping[str, Any] | None:
    if card is None:
        return None
    scope = card.get("scope") if isinstance(card, Mapping) else getattr(card, "scope", None)
    if not isinstance(scope, Mapping):
        return None
    stats = scope.get("feature_stats")
    return stats if isinstance(stats, Mapping) and "mean" in stats else None


def _nearest_known(stats: Mapping[str, Any], features: np.ndarray) -> str:
    """The code of the nearest known out-of-scope centroid, or ``far_from_training``."""
    known = stats.get("known")
    if not isinstance(known, Mapping) or not known:
        return "far_from_training"
    x = np.asarray(features, np.float64).ravel()
    mean = np.asarray(stats["mean"], np.float64)
    best, best_d = "far_from_training", float(np.linalg.norm(x - mean))
    for code, centroid in known.items():
        if code not in REASONS:
            continue
        d = float(np.linalg.norm(x - np.asarray(centroid, np.float64)))
        if d < best_d:
            best, best_d = code, d
    return best


# ----------------------------------------------------------------------------------------- check


def _result(code: str, measures: dict[str, float]) -> ScopeCheck:
    return ScopeCheck(in_scope=code == "ok", reason=REASONS[code], code=code, measures=measures)


def check_scope(rgb: np.ndarray, features: np.ndarray | None = None, card: Any = None,
                limits: Mapping[str, float] | None = None) -> ScopeCheck:
    """Say whether ``rgb`` is in scope (see the module doc for the checks and their order).

    ``features``: pooled backbone features of the whole image from the model whose
    ``card`` holds ``scope["feature_stats"]``; without both, only the image checks run.
    ``card.scope["limits"]`` may override :data:`DEFAULT_LIMITS` per model.
    """
    lim = dict(DEFAULT_LIMITS)
    scope = (card.get("scope") if isinstance(card, Mapping) else getattr(card, "scope", None)) if card is not None else None
    if isinstance(scope, Mapping) and isinstance(scope.get("limits"), Mapping):
        lim.update({k: float(v) for k, v in scope["limits"].items() if k in lim})
    if limits:
        lim.update(limits)
    m = image_measures(rgb)
    if m["grey_std"] < lim["blank_std"]:
        return _result("blank", m)
    if m["black_fraction"] > lim["black_fraction"]:
        return _result("single_cell", m)
    if m["top_colours"] > lim["screenshot_top_colours"]:
        return _result("screenshot", m)
    if m["fine_detail"] > lim["noise_max"]:
        return _result("not_smear_stain", m)
    if m["fine_detail"] < lim["focus_min"]:
        return _result("out_of_focus", m)
    stats = _feature_stats_of(card)
    if features is not None and stats is not None:
        distance = float(feature_distance(stats, features)[0])
        m["feature_distance"] = distance
        m["feature_threshold"] = float(stats["threshold"])
        if distance > float(stats["threshold"]):
            return _result(_nearest_known(stats, features), m)
    return _result("ok", m)
