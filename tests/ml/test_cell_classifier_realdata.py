"""The differential cell classifier on real cells: PBC classes and C-NMC blasts, scope on real sets.

A small model is fitted once per session (the recipe of ``python -m ml train-cells``
on a subset: frozen efficientnet_lite0 ImageNet features at 96 px, logistic head):
30 PBC cells per class from the training blocks, C-NMC cells of half the patients.
It is then checked on PBC cells of the held-out blocks and on the other patients'
C-NMC cells. About a minute on one core.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def small_cells(real_data: Path):
    import torch

    from ml.celltrain import (
        CellSet,
        base_classifier,
        cnmc_cells,
        fit_head,
        set_head,
    )

    if not (real_data / "pbc_subset").is_dir() or not (real_data / "cnmc_subset").is_dir():
        pytest.skip(f"pbc_subset or cnmc_subset missing under {real_data}")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    clf = base_classifier(input_size=96)
    pbc = _pbc_subset(clf, real_data)
    cnmc = cnmc_cells(clf, real_data / "cnmc_subset")
    patients = sorted(set(cnmc.group))
    held = np.array([patients.index(g) % 2 == 1 for g in cnmc.group])
    train = CellSet.concat([pbc.select(pbc.mask(part="train")), cnmc.select(~held)])
    set_head(clf, *fit_head(train.features, train.labels))
    torch.set_num_threads(previous)
    return clf, pbc.select(pbc.mask(part="test")), cnmc.select(held)


def _pbc_subset(clf, real_data: Path):
    """30 training-block and 8 test-block PBC cells per class (the contiguous split of train-cells)."""
    from ml.celltrain import PBC_CLASS_MAP, CellSet, centre_crop
    from ml.datasets import scan_imagefolder, split_dataset
    from ml.imageio import load_image

    split = split_dataset(scan_imagefolder(real_data / "pbc_subset", verify=False), "contiguous", seed=0)
    chosen = []
    for part, n in (("train", 30), ("test", 8)):
        for name in PBC_CLASS_MAP:
            chosen += [(s, part) for s in split.part(part) if s.label == name][:n]
    feats = clf.features([centre_crop(load_image(s.path)) for s, _ in chosen])
    return CellSet(feats, [PBC_CLASS_MAP[s.label] for s, _ in chosen], ["pbc"] * len(chosen),
                   [p for _, p in chosen], [s.relpath for s, _ in chosen])


def test_held_out_pbc_cells_get_their_class(small_cells):
    clf, pbc_test, _ = small_cells
    proba = clf.probabilities_from_features(pbc_test.features)
    pred = np.array(clf.class_names)[proba.argmax(axis=1)]
    truth = np.array(pbc_test.labels)
    accuracy = float((pred == truth).mean())
    # 8 classes (chance 0.125); this 30-per-class, 96-px model measured 0.61 here, the full
    # train-cells model 0.81 on 303 held-out cells (README)
    assert accuracy >= 0.5, f"held-out PBC accuracy {accuracy:.2f}"
    recalled = [name for name in sorted(set(truth)) if (pred[truth == name] == name).mean() >= 0.5]
    assert len(recalled) >= 5, f"classes with at least half their held-out cells right: {recalled}"


@pytest.mark.xfail(strict=False, reason="known miss: C-NMC blasts vs normal cells are near chance "
                   "(out-of-fold by patient AUC 0.55, README); passes once the cell model separates them")
def test_blasts_of_unseen_patients_score_higher_than_their_normal_cells(small_cells):
    from sklearn.metrics import roc_auc_score

    clf, _, cnmc_test = small_cells
    proba = clf.probabilities_from_features(cnmc_test.features)
    blast = proba[:, clf.class_names.index("blast")]
    y = np.array([label == "blast" for label in cnmc_test.labels], int)
    assert 0 < y.sum() < len(y)
    auc = roc_auc_score(y, blast)
    assert auc >= 0.7, f"C-NMC blast AUC on unseen patients {auc:.2f} (n={len(y)})"


def test_classify_gives_a_differential_with_probabilities(small_cells, real_data: Path):
    from ml.celltrain import centre_crop
    from ml.imageio import load_image

    clf, _, _ = small_cells
    path = max((real_data / "pbc_subset" / "eosinophil").glob("*.jpg"))
    call = clf.classify([centre_crop(load_image(path))])[0]
    assert set(call["probabilities"]) == set(clf.class_names)
    assert abs(sum(call["probabilities"].values()) - 1) < 1e-4
    assert call["label"] == max(call["probabilities"], key=call["probabilities"].get)


def test_real_out_of_scope_images_are_flagged(real_data: Path):
    from ml.imageio import load_image
    from ml.scope import check_scope

    cnmc = sorted((real_data / "cnmc_subset" / "images").glob("*"))[:5]
    if not cnmc:
        pytest.skip("no C-NMC images")
    for path in cnmc:
        check = check_scope(load_image(path))
        assert check.code == "single_cell", (path.name, check)
    masked = sorted((real_data / "all4class_segmented" / "Pre").glob("*.jpg"))[:3]
    for path in masked:
        assert check_scope(load_image(path)).code in ("single_cell", "blank"), path.name
    fields = sorted((real_data / "all4class" / "Pre").glob("*.jpg"))[:5] + sorted((real_data / "cbc" / "Testing" / "Images").glob("*.jpg"))[:5]
    for path in fields:
        assert check_scope(load_image(path)).in_scope, path.name
