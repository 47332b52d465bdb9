"""The shortcut audit finds a background-colour shortcut, and only where there is one."""

from __future__ import annotations

import numpy as np

from ml.datasets import load_rgb, scan_imagefolder, split_dataset
from ml.shortcuts import border_pixels, corner_patch, shortcut_audit
from tests.ml._evalkit import write_colour_folder


def _audit(root):
    index = scan_imagefolder(root)
    split = split_dataset(index, "contiguous", val_fraction=0.0, test_fraction=0.4)
    lookup = {n: i for i, n in enumerate(index.class_names)}

    def xy(samples):
        return [load_rgb(s.path) for s in samples], [lookup[s.label] for s in samples]

    return shortcut_audit(*xy(split.train), *xy(split.test))


def test_colour_coded_classes_are_caught(tmp_path):
    result = _audit(write_colour_folder(tmp_path, n_per_class=12))
    assert result["shortcut_baseline_accuracy"] >= 0.9
    assert result["chance_accuracy"] < 0.4


def test_same_background_gives_about_chance(tmp_path):
    grey = {"a": (210, 210, 210), "b": (210, 210, 210), "c": (210, 210, 210)}
    result = _audit(write_colour_folder(tmp_path, n_per_class=12, colours=grey))
    assert result["shortcut_baseline_accuracy"] <= 0.6


def test_border_and_corner_regions():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[90:, 160:] = 255
    assert border_pixels(image).shape[0] == 100 * 200 - (100 - 14) * (200 - 14)
    patch = corner_patch(image)
    assert patch.shape[:2] == (15, 50)
    assert patch[-1, -1].tolist() == [255, 255, 255]
