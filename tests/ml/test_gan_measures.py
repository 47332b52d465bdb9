"""The cGAN measures react to what they claim to measure (real images stand in for a perfect GAN)."""

from __future__ import annotations

import numpy as np

from ml.datasets import load_rgb, scan_imagefolder
from ml.gan import classification_accuracy_score, feature_distances
from tests.ml._evalkit import write_colour_folder


def _by_class(root):
    index = scan_imagefolder(root)
    return index, {name: [load_rgb(s.path) for s in index.samples if s.label == name] for name in index.class_names}


def test_feature_distance_is_small_for_the_same_class_and_large_for_another(tmp_path):
    _, real = _by_class(write_colour_folder(tmp_path / "a", n_per_class=16, size=32, seed=0))
    _, other = _by_class(write_colour_folder(tmp_path / "b", n_per_class=16, size=32, seed=1))
    wrong = {"a": other["b"], "b": other["c"], "c": other["a"]}  # every class drawn as another one
    right = feature_distances(real, other, arch="resnet18", weights=None)
    swapped = feature_distances(real, wrong, arch="resnet18", weights=None)
    for name in real:
        assert right[name]["fid"] < 0.5 * swapped[name]["fid"], (name, right[name], swapped[name])


def test_classification_accuracy_score_separates_right_from_shuffled_labels(tmp_path):
    index, train = _by_class(write_colour_folder(tmp_path / "train", n_per_class=24, size=32, seed=0))
    test_index, _ = _by_class(write_colour_folder(tmp_path / "test", n_per_class=10, size=32, seed=3))
    names = index.class_names
    lookup = {n: i for i, n in enumerate(names)}
    test_items = [s.path for s in test_index.samples]
    test_y = [lookup[s.label] for s in test_index.samples]
    kw = {"arch": "resnet18", "weights": None, "img_size": 32, "epochs": 4, "batch_size": 16, "seed": 0}
    good = classification_accuracy_score(train, test_items, test_y, names, **kw)
    rotated = {names[i]: train[names[(i + 1) % len(names)]] for i in range(len(names))}
    bad = classification_accuracy_score(rotated, test_items, test_y, names, **kw)
    # From scratch, 4 epochs: right labels gave 0.43-0.60 here, rotated labels 0.0 (the classifier
    # learnt the rotated mapping, so the score tells right classes from wrong ones).
    assert good["cas_accuracy"] - bad["cas_accuracy"] >= 0.3, (good, bad)
    assert bad["cas_accuracy"] < 1 / 3  # below chance: it learnt the wrong classes
    assert good["n_real_test"] == len(test_y) and np.isclose(sum(good["cas_per_class_recall"].values()) / 3,
                                                             good["cas_accuracy"], atol=0.05)
