"""A cheap 5-fold recipe comparison: frozen ImageNet features + logistic regression (not CI).

    python bench/kfold_probe.py --data ../shared/data/all4class --folds 5 --img-size 128

Fine-tuning every fold of every recipe (bench/train_all4class.sh --folds 5) costs ~3 CPU-minutes
per fold on a quiet 2-core machine and far more on a shared one. This script answers the same
question (does the label follow the background? does background randomisation fix it?) for a
*linear probe* on the frozen efficientnet_lite0 ImageNet backbone, so every fold of two recipes
costs a few CPU-minutes in all:

* ``probe``: logistic regression on the pooled features of the training blocks;
* ``probe_randomise``: the same, trained on the originals *plus* one composite per training image
  (its white cells on a background from its own block, cells inpainted out, or synthetic;
  ml.background), so the background stops predicting the class.

The folds are the contiguous blocks of ml.datasets.split_kfold (test = block k, train = every
other block; a probe needs no validation part). Each test image is also scored under stain/colour
shift (ml.augment), with its cells on a background of another class from its block, and on the
neutral background. Prints a fold table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import background as bg
from ml.augment import perturb_all
from ml.datasets import load_rgb, scan_imagefolder, split_kfold
from ml.metrics import kappa_score, mean_sd
from ml.shortcuts import border_colour_features


def features(model, images, size, mean, std, batch=64):
    import torch

    from ml.preprocess import to_batch

    rows = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = to_batch(images[start:start + batch], size, mean, std)
            rows.append(model.pooled(model.forward_features(x)).float().numpy())
    return np.concatenate(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--donors-per-class", type=int, default=15, help="donor backgrounds per class and block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-per-class", type=int, default=None, help="smoke runs only")
    args = parser.parse_args(argv)
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ml.models import build_model, imagenet_normalization

    torch.set_num_threads(1)
    started = time.monotonic()
    index = scan_imagefolder(args.data, verify=False, limit_per_class=args.limit_per_class)
    names = index.class_names
    lookup = {n: i for i, n in enumerate(names)}
    samples = index.samples
    rel_to_i = {s.relpath: i for i, s in enumerate(samples)}
    block = np.zeros(len(samples), dtype=int)
    for k in range(args.folds):
        _, _, test = split_kfold(samples, args.folds, k, val_fraction=0.0)
        block[[rel_to_i[s.relpath] for s in test]] = k
    y = np.array([lookup[s.label] for s in samples])
    images = [load_rgb(s.path) for s in samples]
    masks, sources = bg.load_masks(images, [s.relpath for s in samples], bg.default_segmented_root(args.data))
    usable = np.array([bg.usable_mask(m) for m in masks])
    rng = np.random.default_rng(args.seed)

    swapped, neutral, randomised = list(images), list(images), list(images)
    donor_class = np.full(len(images), -1)
    for k in range(args.folds):
        members = np.flatnonzero(block == k)
        pool = []
        for c in range(len(names)):
            cand = members[(y[members] == c) & usable[members]]
            pool += rng.permutation(cand)[:args.donors_per_class].tolist()
        cleaned = {j: bg.remove_cells(images[j], masks[j]) for j in pool}
        pool = np.array(pool)
        for i in members:
            if not usable[i]:
                continue
            others = pool[y[pool] != y[i]]
            if len(others):
                j = int(rng.choice(others))
                swapped[i] = bg.paste_cells(images[i], masks[i], cleaned[j])
                donor_class[i] = y[j]
            neutral[i] = bg.paste_cells(images[i], masks[i], bg.neutral_background(images[i].shape))
            if rng.random() < 0.6:
                background = cleaned[int(rng.choice(pool))]
            else:
                background = bg.random_background(images[i].shape, rng)
            randomised[i] = bg.paste_cells(images[i], masks[i], background)
    prepared = time.monotonic() - started
    shifted = perturb_all(images, "stain_colour", seed=args.seed)

    model = build_model("efficientnet_lite0", names, weights="imagenet").eval()
    mean, std = imagenet_normalization("efficientnet_lite0")
    feats = {view: features(model, imgs, args.img_size, mean, std)
             for view, imgs in (("orig", images), ("shift", shifted), ("swap", swapped),
                                ("neutral", neutral), ("rand", randomised))}
    border = np.stack([border_colour_features(im) for im in images])

    rows: dict[str, list[dict]] = {"probe": [], "probe_randomise": []}
    benign = lookup.get("Benign", 0)
    for k in range(args.folds):
        train, test = np.flatnonzero(block != k), np.flatnonzero(block == k)
        swap_sel = test[donor_class[test] >= 0]
        neutral_sel = test[usable[test]]
        border_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(border[train], y[train])
        border_acc = float((border_model.predict(border[test]) == y[test]).mean())
        for recipe, recipe_rows in rows.items():
            x_train, y_train = feats["orig"][train], y[train]
            if recipe == "probe_randomise":
                x_train = np.concatenate([x_train, feats["rand"][train]])
                y_train = np.concatenate([y_train, y[train]])
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1, class_weight="balanced"))
            clf.fit(x_train, y_train)
            pred = clf.predict(feats["orig"][test])
            swap_pred = clf.predict(feats["swap"][swap_sel])
            recipe_rows.append({
                "fold": k, "n": len(test), "accuracy": float((pred == y[test]).mean()),
                "kappa": kappa_score(y[test], pred),
                "accuracy_shifted": float((clf.predict(feats["shift"][test]) == y[test]).mean()),
                "accuracy_background_swap": float((swap_pred == y[swap_sel]).mean()),
                "follows_background": float((swap_pred == donor_class[swap_sel]).mean()),
                "accuracy_neutral_background": float((clf.predict(feats["neutral"][neutral_sel])
                                                      == y[neutral_sel]).mean()),
                "benign_recall": float((pred[y[test] == benign] == benign).mean()),
                "shortcut_baseline_accuracy": border_acc, "n_swap": len(swap_sel),
            })
    keys = ["accuracy", "kappa", "accuracy_shifted", "accuracy_background_swap", "follows_background",
            "accuracy_neutral_background", "benign_recall", "shortcut_baseline_accuracy"]
    print(f"{'recipe':<16}{'fold':>5}" + "".join(f"{k[:12]:>13}" for k in keys))
    summary = {}
    for recipe, rs in rows.items():
        for r in rs:
            print(f"{recipe:<16}{r['fold']:>5}" + "".join(f"{r[k]:>13.3f}" for k in keys))
        s = {"folds": len(rs)}
        for key in keys:
            s[f"{key}_mean"], s[f"{key}_sd"] = mean_sd([r[key] for r in rs])
        summary[recipe] = s
    for recipe, s in summary.items():
        print(f"{recipe:<16} mean±sd " + "  ".join(f"{k[:10]} {s[k + '_mean']:.3f}±{s[k + '_sd']:.3f}" for k in keys))
    out = {**summary["probe"], "recipe": "probe", "recipes": summary, "mask_sources": sources,
           "img_size": args.img_size, "seconds": round(time.monotonic() - started, 1),
           "prepare_seconds": round(prepared, 1), "per_fold": rows}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
