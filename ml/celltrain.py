"""Training the differential cell classifier (:class:`ml.cells.CellClassifier`) on real cells.

The model is efficientnet_lite0 with its packaged ImageNet weights, frozen, and
a linear head over :data:`ml.labels.CELL_TYPES` fitted by multinomial logistic
regression on the pooled features (a linear probe: minutes on one CPU core, and
deterministic). Training cells:

* ``pbc_subset`` (8 normal classes; ``ig`` -> immature_granulocyte), the whole
  image centre-cropped (each PBC image is one centred cell), split into
  contiguous blocks of file numbers (``ml.datasets.split_dataset``);
* white-cell crops that ``ml.segment`` finds on ``all4class`` *training* images,
  each labelled by its image's class: Early/Pre/Pro -> blast, Benign ->
  hematogone. These are weak labels (a Pre-B field also holds normal cells, a
  Benign field neutrophils or lymphocytes), split by contiguous file blocks, so
  no slide block of the test part is trained on;
* C-NMC single cells (``_all`` -> blast, ``_hem`` -> hematogone), split by patient;
* artefacts: crops of all4class training fields centred away from every white cell
  (red cells, background, debris).

The held-out figures go into the card's ``validation`` (read by :mod:`ml.gates`),
and the whole-image feature statistics of all4class and cbc training fields
into its ``scope`` (read by :mod:`ml.scope`). No Django.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.cells import DEFAULT_CROP_PAD, CellClassifier, cell_crops, square_crop
from ml.labels import CELL_TYPES

PBC_CLASS_MAP = {
    "basophil": "basophil", "eosinophil": "eosinophil", "erythroblast": "erythroblast",
    "ig": "immature_granulocyte", "lymphocyte": "lymphocyte", "monocyte": "monocyte",
    "neutrophil": "neutrophil", "platelet": "platelet",
}
ALL4_CELL_LABEL = {"Benign": "hematogone", "Early": "blast", "Pre": "blast", "Pro": "blast"}
CNMC_CELL_LABEL = {"all": "blast", "hem": "hematogone"}
DEFAULT_INPUT_SIZE = 128
PBC_CENTRE_FRACTION = 0.8  # share of a PBC image the centred cell crop keeps


@dataclass
class CellSet:
    """Crops' features with their labels and where they come from."""

    features: np.ndarray  # (N, C) float32
    labels: list[str]
    source: list[str]  # "pbc", "all4class", "cnmc", "artefact"
    part: list[str]  # "train", "val", "test"
    group: list[str]  # image relpath (all4class/artefact), patient (cnmc), file (pbc)
    extra: dict[str, Any] = field(default_factory=dict)

    def select(self, mask: np.ndarray) -> CellSet:
        idx = np.flatnonzero(mask)
        return CellSet(self.features[idx], [self.labels[i] for i in idx], [self.source[i] for i in idx],
                       [self.part[i] for i in idx], [self.group[i] for i in idx])

    def mask(self, *, source: str | None = None, part: str | None = None) -> np.ndarray:
        ok = np.ones(len(self.labels), bool)
        if source is not None:
            ok &= np.array([s == source for s in self.source])
        if part is not None:
            ok &= np.array([p == part for p in self.part])
        return ok

    @staticmethod
    def concat(sets: Sequence[CellSet]) -> CellSet:
        sets = [s for s in sets if len(s.labels)]

        def joined(name: str) -> list[str]:
            return [item for s in sets for item in getattr(s, name)]

        return CellSet(np.concatenate([s.features for s in sets]), joined("labels"), joined("source"),
                       joined("part"), joined("group"))


def base_classifier(input_size: int = DEFAULT_INPUT_SIZE, weights: str | Path | None = "imagenet") -> CellClassifier:
    """efficientnet_lite0 (ImageNet weights) with an untrained CELL_TYPES head."""
    from ml.checkpoint import ModelCard
    from ml.models import build_model

    model = build_model("efficientnet_lite0", CELL_TYPES, weights=weights)
    card = ModelCard.for_model(model, task="cell", input_size=input_size)
    return CellClassifier(model, card, batch_size=32)


def centre_crop(rgb: np.ndarray, fraction: float = PBC_CENTRE_FRACTION) -> np.ndarray:
    h, w = rgb.shape[:2]
    return square_crop(rgb, (w / 2.0, h / 2.0), fraction * min(h, w), None)


def _parts_of(split) -> dict[str, str]:
    return {**{s.relpath: "train" for s in split.train}, **{s.relpath: "val" for s in split.val},
            **{s.relpath: "test" for s in split.test}}


def pbc_cells(clf: CellClassifier, root: Path, seed: int = 0) -> CellSet:
    from ml.datasets import scan_imagefolder, split_dataset
    from ml.imageio import load_image

    index = scan_imagefolder(root, verify=False)
    parts = _parts_of(split_dataset(index, "contiguous", seed=seed))
    crops = [centre_crop(load_image(s.path)) for s in index.samples]
    feats = clf.features(crops)
    return CellSet(feats, [PBC_CLASS_MAP[s.label] for s in index.samples], ["pbc"] * len(crops),
                   [parts[s.relpath] for s in index.samples], [s.relpath for s in index.samples])


def cnmc_cells(clf: CellClassifier, root: Path) -> CellSet:
    from ml.datasets import scan_cnmc
    from ml.imageio import load_image

    index = scan_cnmc(root, verify=False)
    crops = [centre_crop(load_image(s.path), 0.9) for s in index.samples]
    return CellSet(clf.features(crops), [CNMC_CELL_LABEL[s.label] for s in index.samples], ["cnmc"] * len(crops),
                   ["cv"] * len(crops), [str(s.group) for s in index.samples])


def _artefact_crops(rgb: np.ndarray, seg, rng: np.random.Generator, n: int, side: float) -> list[np.ndarray]:
    """Crops centred on points at least ``side`` away from every white cell."""
    h, w = rgb.shape[:2]
    wbc_centres = np.array([c.centroid for c in seg.cells if c.kind == "wbc"]).reshape(-1, 2)
    out = []
    for _ in range(n * 6):
        if len(out) >= n:
            break
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        if len(wbc_centres) and np.min(np.hypot(wbc_centres[:, 0] - y, wbc_centres[:, 1] - x)) < side:
            continue
        out.append(square_crop(rgb, (x, y), side * rng.uniform(0.7, 1.3), None))
    return out


def all4class_cells(
    clf: CellClassifier, root: Path, *, parts: Sequence[str] = ("train",), every: int = 1, max_cells: int = 20,
    artefacts_per_image: int = 0, seed: int = 0, progress: Callable[[str], None] | None = None,
) -> tuple[CellSet, dict[str, dict]]:
    """White-cell crops of all4class images (weakly labelled by image class) and, per image, the counts."""
    from ml.datasets import scan_imagefolder, split_dataset
    from ml.imageio import load_image
    from ml.segment import segment

    index = scan_imagefolder(root, verify=False)
    split_parts = _parts_of(split_dataset(index, "contiguous", seed=seed))
    rng = np.random.default_rng(seed)
    feats, labels, source, part, group = [], [], [], [], []
    per_image: dict[str, dict] = {}
    chosen = [s for s in index.samples if split_parts[s.relpath] in parts]
    chosen = chosen[::every]
    t0 = time.perf_counter()
    for i, sample in enumerate(chosen):
        rgb = load_image(sample.path)
        seg = segment(rgb)
        crops = cell_crops(rgb, seg, size=int(clf.card.input_size), pad=DEFAULT_CROP_PAD)[:max_cells]
        wbc = [c for c in seg.cells if c.kind == "wbc"][:max_cells]
        per_image[sample.relpath] = {"label": sample.label, "part": split_parts[sample.relpath], "n": len(crops)}
        if crops:
            feats.append(clf.features(crops))
            labels += [ALL4_CELL_LABEL[sample.label]] * len(crops)
            source += ["all4class"] * len(crops)
            part += [split_parts[sample.relpath]] * len(crops)
            group += [sample.relpath] * len(crops)
        if artefacts_per_image:
            side = (2 * math.sqrt(np.median([c.area_px for c in wbc]) / math.pi) * 1.5) if wbc else 40.0
            junk = _artefact_crops(rgb, seg, rng, artefacts_per_image, side)
            if junk:
                feats.append(clf.features(junk))
                labels += ["artefact"] * len(junk)
                source += ["artefact"] * len(junk)
                part += [split_parts[sample.relpath]] * len(junk)
                group += [sample.relpath] * len(junk)
        if progress and (i + 1) % 50 == 0:
            progress(f"all4class {i + 1}/{len(chosen)} images, {time.perf_counter() - t0:.0f} s")
    dim = int(clf.model.feature_channels)
    feats_arr = np.concatenate(feats) if feats else np.zeros((0, dim), np.float32)
    return CellSet(feats_arr, labels, source, part, group), per_image


# ----------------------------------------------------------------------------------------- head


def fit_head(features: np.ndarray, labels: Sequence[str], *, c: float = 0.5, seed: int = 0):
    """Standardised multinomial logistic regression; returns (weight (K, C), bias (K,)) over CELL_TYPES.

    Classes absent from ``labels`` get a bias far below the rest, so they are never predicted.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, np.float64)
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    present = sorted(set(labels), key=CELL_TYPES.index)
    lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
    lr.fit((x - mu) / sd, [present.index(label) for label in labels])
    weight = np.zeros((len(CELL_TYPES), x.shape[1]))
    bias = np.full(len(CELL_TYPES), -30.0)
    coef, intercept = lr.coef_, lr.intercept_
    if len(present) == 2:  # sklearn's binary form: one row for class 1
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    for k, name in enumerate(present):
        j = CELL_TYPES.index(name)
        weight[j] = coef[k] / sd  # fold the standardisation into the linear layer
        bias[j] = intercept[k] - float(np.dot(coef[k], mu / sd))
    return weight.astype(np.float32), bias.astype(np.float32)


def set_head(clf: CellClassifier, weight: np.ndarray, bias: np.ndarray) -> None:
    import torch

    with torch.no_grad():
        clf.model.classifier.weight.copy_(torch.from_numpy(weight))
        clf.model.classifier.bias.copy_(torch.from_numpy(bias))


def softmax_head(weight: np.ndarray, bias: np.ndarray, features: np.ndarray) -> np.ndarray:
    z = np.asarray(features, np.float64) @ weight.T.astype(np.float64) + bias
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------- figures


def bootstrap_auc(y: np.ndarray, score: np.ndarray, groups: Sequence[str], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the ROC AUC, resampling whole groups (patients) with replacement."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    uniq = sorted(set(groups))
    members = {g: np.flatnonzero(np.array(groups) == g) for g in uniq}
    values = []
    for _ in range(n):
        idx = np.concatenate([members[uniq[i]] for i in rng.integers(0, len(uniq), len(uniq))])
        if len(set(y[idx])) < 2:
            continue
        values.append(roc_auc_score(y[idx], score[idx]))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def cnmc_out_of_fold(base: CellSet, cnmc: CellSet, *, folds: int = 5, c: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """C-NMC blast probability of every cell from a head that never saw its patient.

    Patients are dealt into ``folds`` groups; each fold's head is fitted on the
    base training cells plus the other folds' C-NMC cells.
    """
    from sklearn.metrics import roc_auc_score

    patients = sorted(set(cnmc.group))
    rng = np.random.default_rng(seed)
    order = [patients[i] for i in rng.permutation(len(patients))]
    fold_of = {p: i % folds for i, p in enumerate(order)}
    prob = np.zeros(len(cnmc.labels))
    for f in range(folds):
        test = np.array([fold_of[g] == f for g in cnmc.group])
        train = CellSet.concat([base, cnmc.select(~test)])
        w, b = fit_head(train.features, train.labels, c=c, seed=seed)
        prob[test] = softmax_head(w, b, cnmc.features[test])[:, CELL_TYPES.index("blast")]
    y = np.array([label == "blast" for label in cnmc.labels], int)
    pred = prob >= 0.5
    lo, hi = bootstrap_auc(y, prob, cnmc.group, seed=seed)
    return {
        "cnmc_blast_auc": float(roc_auc_score(y, prob)),
        "cnmc_blast_auc_ci95": [lo, hi],
        "cnmc_blast_recall": float(pred[y == 1].mean()),
        "cnmc_hem_specificity": float((~pred[y == 0]).mean()),
        "cnmc_cells": len(y),
        "cnmc_patients": len(patients),
        "cnmc_folds": folds,
        "cnmc_probabilities": prob.tolist(),
    }


def image_blast_fractions(w: np.ndarray, b: np.ndarray, cells: CellSet, per_image: dict[str, dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per all4class image: blasts / nucleated white cells from the head's calls; images without one get 0."""
    from ml.labels import NUCLEATED_WHITE

    labels = np.array(CELL_TYPES)[np.argmax(softmax_head(w, b, cells.features), axis=1)] if len(cells.labels) else np.array([])
    rels = sorted(per_image)
    fractions, truth = [], []
    group = np.array(cells.group)
    for rel in rels:
        mine = labels[group == rel] if len(labels) else np.array([])
        nucleated = int(np.isin(mine, NUCLEATED_WHITE).sum())
        fractions.append((mine == "blast").sum() / nucleated if nucleated else 0.0)
        truth.append(per_image[rel]["label"] != "Benign")
    return rels, np.array(fractions, float), np.array(truth, int)


# ----------------------------------------------------------------------------------------- train


def whole_image_features(clf: CellClassifier, paths: Sequence[Path]) -> np.ndarray:
    from ml.imageio import load_image

    out = []
    for start in range(0, len(paths), 32):
        out.append(clf.features([load_image(p) for p in paths[start : start + 32]]))
    return np.concatenate(out) if out else np.zeros((0, int(clf.model.feature_channels)), np.float32)


def in_scope_training_images(data: Path, seed: int = 0, every: int = 3) -> dict[str, list[Path]]:
    """Whole fields the scope statistics are fitted on: all4class train part and cbc/Training."""
    from ml.datasets import scan_imagefolder, split_dataset

    index = scan_imagefolder(data / "all4class", verify=False)
    split = split_dataset(index, "contiguous", seed=seed)
    cbc = sorted((data / "cbc" / "Training" / "Images").glob("*.jpg"))
    return {"all4class_train": [s.path for s in split.train][::every], "cbc_training": cbc[::2]}


def train_cell_classifier(
    data: str | Path, out: str | Path, *, input_size: int = DEFAULT_INPUT_SIZE, all4_every: int = 6,
    artefacts_per_image: int = 2, c: float = 0.5, seed: int = 0, weights: str | Path | None = "imagenet",
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Fit the head, measure the held-out figures, write the checkpoint; returns the figures."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    from ml.checkpoint import save_checkpoint
    from ml.scope import fit_feature_stats

    data = Path(data)
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    clf = base_classifier(input_size, weights)
    pbc = pbc_cells(clf, data / "pbc_subset", seed=seed)
    say(f"pbc: {len(pbc.labels)} cells, {time.perf_counter() - t0:.0f} s")
    a4, _ = all4class_cells(clf, data / "all4class", parts=("train", "val"), every=all4_every,
                            artefacts_per_image=artefacts_per_image, seed=seed, progress=progress)
    say(f"all4class train/val: {len(a4.labels)} crops, {time.perf_counter() - t0:.0f} s")
    a4_test, per_test = all4class_cells(clf, data / "all4class", parts=("test",), every=1, seed=seed, progress=progress)
    say(f"all4class test: {len(a4_test.labels)} crops of {len(per_test)} images, {time.perf_counter() - t0:.0f} s")
    cnmc = cnmc_cells(clf, data / "cnmc_subset")

    base = CellSet.concat([pbc.select(~pbc.mask(part="test")), a4])
    oof = cnmc_out_of_fold(base, cnmc, c=c, seed=seed)
    train = CellSet.concat([base, cnmc])
    weight, bias = fit_head(train.features, train.labels, c=c, seed=seed)
    set_head(clf, weight, bias)

    pbc_test = pbc.select(pbc.mask(part="test"))
    pbc_pred = np.array(CELL_TYPES)[np.argmax(softmax_head(weight, bias, pbc_test.features), axis=1)]
    rels, fractions, truth = image_blast_fractions(weight, bias, a4_test, per_test)
    validation = {
        "held_out": True,
        "pbc_accuracy": float(accuracy_score(pbc_test.labels, pbc_pred)),
        "pbc_test_cells": len(pbc_test.labels),
        "image_blast_auc": float(roc_auc_score(truth, fractions)),
        "image_blast_images": len(rels),
        "image_blast_fraction_mean": {"ALL": float(fractions[truth == 1].mean()), "Benign": float(fractions[truth == 0].mean())},
        **{k: v for k, v in oof.items() if k != "cnmc_probabilities"},
        "splits": "pbc contiguous file blocks (seed 0); all4class contiguous blocks, test part never trained on; "
                  "cnmc out-of-fold by patient (5 folds)",
        "weak_labels": "all4class crops take their image's class: Early/Pre/Pro -> blast, Benign -> hematogone",
    }
    say(f"figures: pbc {validation['pbc_accuracy']:.3f}, cnmc auc {validation['cnmc_blast_auc']:.3f}, "
        f"image auc {validation['image_blast_auc']:.3f} ({time.perf_counter() - t0:.0f} s)")

    scope_paths = in_scope_training_images(data, seed=seed)
    scope_feats = np.concatenate([whole_image_features(clf, p) for p in scope_paths.values()])
    stats = fit_feature_stats(scope_feats, components=32, quantile=0.99,
                              source=f"{clf.card.arch} ImageNet backbone, whole image at {input_size} px")
    counts = {name: train.labels.count(name) for name in CELL_TYPES}
    clf.card.validation = validation
    clf.card.scope = {
        "kinds": ["Giemsa/Wright-stained peripheral blood or marrow smear fields, 224-px crops to 640×480 frames"],
        "trained_on": {k: len(v) for k, v in scope_paths.items()},
        "feature_stats": stats,
    }
    clf.card.training = {
        "data": {"kind": "real", "root": str(data)},
        "train_counts": counts,
        "sources": {s: train.source.count(s) for s in sorted(set(train.source))},
        "all4class_every": all4_every, "head": f"logistic regression C={c}, class-balanced, frozen backbone",
        "seconds": round(time.perf_counter() - t0, 1), "seed": seed,
        "pbc_split_test": [g for g, p in zip(pbc.group, pbc.part) if p == "test"],
    }
    clf.card.metrics = {"pbc_accuracy": validation["pbc_accuracy"]}
    sha = save_checkpoint(out, clf.model, clf.card)
    say(f"wrote {out} ({sha[:12]}) in {time.perf_counter() - t0:.0f} s")
    return {"checkpoint": str(out), "sha256": sha, **validation, "train_counts": counts,
            "seconds": round(time.perf_counter() - t0, 1)}
