"""Small real data sets and checkpoints for the training/evaluation tests (no mocks).

Images are written as real PNG files; models are real MarrowClassifiers saved through
ml.checkpoint, so every test goes through the same code paths as the command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ml.checkpoint import ModelCard, save_checkpoint
from ml.datasets import scan_imagefolder, split_dataset
from ml.models import build_model

# Background colour per class: a deliberate shortcut the audit must find.
CLASS_COLOURS = {"a": (230, 200, 210), "b": (200, 220, 235), "c": (235, 235, 190)}


def write_colour_folder(root: Path, n_per_class: int = 10, size: int = 40, seed: int = 0,
                        colours: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """root/<class>/<class>-NNN.png: a noisy background of the class colour with a dark blob."""
    rng = np.random.default_rng(seed)
    for name, colour in (colours or CLASS_COLOURS).items():
        for i in range(1, n_per_class + 1):
            image = np.clip(np.array(colour) + rng.normal(0, 12, (size, size, 3)), 0, 255)
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            yy, xx = np.ogrid[:size, :size]
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] = (110, 60, 150)
            path = root / name / f"{name}-{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.astype(np.uint8)).save(path)
    return root


def save_probe_checkpoint(data: Path, out: Path, *, input_size: int = 32, seed: int = 0) -> Path:
    """A resnet18 checkpoint for the folder's classes, with the folder's contiguous split stored.

    The backbone stays random; the head is a logistic regression fitted (scikit-learn) on the
    pooled features of the training images and half the test images, with a third of their
    labels scrambled, so the predictions vary between images and are right on some and wrong on
    others: the metric checks are not vacuous.
    """
    from sklearn.linear_model import LogisticRegression

    from ml.datasets import load_rgb
    from ml.preprocess import to_batch

    torch.manual_seed(seed)
    index = scan_imagefolder(data)
    split = split_dataset(index, "contiguous", val_fraction=0.2, test_fraction=0.3, seed=seed)
    model = build_model("resnet18", index.class_names, weights=None).eval()
    card = ModelCard.for_model(model, input_size=input_size,
                               training={"layout": "imagefolder", "split": split.to_dict()})
    fit_on = split.train + split.test[::2]
    batch = to_batch([load_rgb(s.path) for s in fit_on], input_size, card.mean, card.std)
    with torch.no_grad():
        feats = model.pooled(model.forward_features(batch)).numpy()
    labels = np.array([index.class_names.index(s.label) for s in fit_on])
    rng = np.random.default_rng(seed)
    scrambled = rng.random(len(labels)) < 0.35
    labels[scrambled] = rng.integers(0, len(index.class_names), scrambled.sum())
    probe = LogisticRegression(C=0.05, max_iter=500).fit(feats, labels)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(probe.coef_).float())
        model.classifier.bias.copy_(torch.from_numpy(probe.intercept_).float())
    save_checkpoint(out, model, card)
    return out
