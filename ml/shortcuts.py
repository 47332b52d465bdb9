"""Shortcut audit: how far do cues that are *not* the cells get you?

In the Taleqani 4-class set the classes differ in background colour (white balance, stain batch)
and in the scale-bar corner stamped bottom-right. A deep model can score highly on those alone,
so the evaluation reports, next to the model's accuracy, the accuracy of two deliberately blind
baselines trained on the same training split:

* **border colour**: a logistic regression on colour histograms of a thin frame of border pixels
  (mostly background and red cells, almost never the white cell in the centre);
* **corner patch**: the same classifier on the bottom-right corner patch alone (downsampled
  pixels plus a histogram), where the scale bar sits.

A model is only trustworthy where it beats both by a wide margin and keeps its accuracy under
stain/colour shift (:mod:`ml.augment` perturbations).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

BORDER_FRACTION = 0.07        # a 16-px frame on a 224-px image
CORNER_FRACTION = (0.15, 0.25)  # bottom-right (height, width) share: the scale bar and its label
HIST_BINS = 8


def _colour_histogram(pixels: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Per-channel RGB and HSV histograms (normalised) plus channel means and std devs."""
    from skimage.color import rgb2hsv

    pixels = pixels.reshape(-1, 3)
    hsv = rgb2hsv(pixels.reshape(-1, 1, 3).astype(np.uint8)).reshape(-1, 3)
    feats = []
    for channel in range(3):
        hist, _ = np.histogram(pixels[:, channel], bins=bins, range=(0, 256))
        feats.append(hist / max(1, len(pixels)))
        hist, _ = np.histogram(hsv[:, channel], bins=bins, range=(0, 1))
        feats.append(hist / max(1, len(pixels)))
    feats.append(pixels.mean(0) / 255.0)
    feats.append(pixels.std(0) / 255.0)
    return np.concatenate(feats).astype(np.float32)


def border_pixels(image: np.ndarray, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """The pixels of a frame ``fraction`` of the shorter side wide around the image."""
    h, w = image.shape[:2]
    band = max(1, round(min(h, w) * fraction))
    mask = np.zeros((h, w), dtype=bool)
    mask[:band, :] = mask[-band:, :] = True
    mask[:, :band] = mask[:, -band:] = True
    return image[mask]


def border_colour_features(image: np.ndarray) -> np.ndarray:
    """Colour histograms of the border frame: background colour, with the scale bar diluted in."""
    return _colour_histogram(border_pixels(image))


def corner_patch(image: np.ndarray, fraction: tuple[float, float] = CORNER_FRACTION) -> np.ndarray:
    """The bottom-right corner, where Taleqani images carry the scale bar."""
    h, w = image.shape[:2]
    return image[h - max(1, round(h * fraction[0])):, w - max(1, round(w * fraction[1])):]


def corner_patch_features(image: np.ndarray) -> np.ndarray:
    """The corner patch downsampled to 8×12 pixels, plus its colour histograms."""
    import cv2

    patch = corner_patch(image)
    small = cv2.resize(np.ascontiguousarray(patch), (12, 8), interpolation=cv2.INTER_AREA)
    return np.concatenate([small.reshape(-1) / 255.0, _colour_histogram(patch)]).astype(np.float32)


FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "border_colour": border_colour_features,
    "corner_patch": corner_patch_features,
}


def fit_baseline(images: Sequence[np.ndarray], labels: Sequence[int],
                 features: Callable[[np.ndarray], np.ndarray]) -> Pipeline:
    """Standardise the features and fit a multinomial logistic regression."""
    x = np.stack([features(image) for image in images])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    model.fit(x, np.asarray(labels))
    return model


def shortcut_audit(
    train_images: Sequence[np.ndarray], train_labels: Sequence[int],
    test_images: Sequence[np.ndarray], test_labels: Sequence[int],
) -> dict[str, float]:
    """Test accuracy of each blind baseline, trained on the training images only.

    Returns ``{"shortcut_baseline_accuracy": border-colour accuracy,
    "corner_patch_accuracy": corner-patch accuracy, "chance_accuracy": majority-class share}``.
    """
    if len(set(train_labels)) < 2:
        raise ValueError("the shortcut baselines need at least two classes in the training images")
    y_test = np.asarray(test_labels)
    out: dict[str, float] = {}
    for name, key in (("border_colour", "shortcut_baseline_accuracy"),
                      ("corner_patch", "corner_patch_accuracy")):
        model = fit_baseline(train_images, train_labels, FEATURES[name])
        x_test = np.stack([FEATURES[name](image) for image in test_images])
        out[key] = float((model.predict(x_test) == y_test).mean())
    counts = np.bincount(y_test)
    out["chance_accuracy"] = float(counts.max() / counts.sum())
    return out
