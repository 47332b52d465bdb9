"""Demo models trained on synthetic smears, so a fresh install has something to run.

Neither model has seen a real patient image: their cards say ``demo=True`` and the platform
labels every result they produce "demo model, not for diagnosis". Their metrics are measured on a
held-out part of the same synthetic data and say only that the training worked.

* :func:`train_demo_model`: image-level subtype model (``SUBTYPES`` + ALL-vs-normal head).
* :func:`train_demo_cell_model`: blast-or-not model on white-cell crops cut by ``ml.segment``
  from synthetic smears, labelled from the smears' ground truth (``SyntheticSmear.blast_ids``),
  so ``python -m ml segment`` and the workers can report blast counts in the demo.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ml.labels import CELL_CLASSES, SUBTYPES


def train_demo_model(
    out_path: str | Path,
    *,
    seed: int = 0,
    arch: str = "resnet18",
    img_size: int = 96,
    n_per_class: int = 40,
    epochs: int = 10,
    progress: bool = True,
    weights: str | None = None,
    batch_size: int = 8,
) -> Path:
    """Train the demo subtype model on ``n_per_class`` synthetic smears per class; returns its path.

    From scratch by default (``weights=None``) so no download is ever needed. Smears are rendered
    at twice ``img_size`` and resized on the way in, like real uploads. A random 20 % of the images
    (they are independent draws, no slides to keep together) is the validation split whose metrics
    go into the card.
    """
    from ml.synthetic import write_imagefolder
    from ml.train import TrainConfig, train

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="marrowfind-demo-") as tmp:
        data = write_imagefolder(Path(tmp) / "smears", n_per_class, seed=seed,
                                 size=(2 * img_size, 2 * img_size))
        config = TrainConfig(
            data=data, out=out_path, layout="imagefolder", task="image", arch=arch, split="random",
            val_fraction=0.2, test_fraction=0.0, img_size=img_size, epochs=epochs, batch_size=batch_size,
            crop_scale=(0.85, 1.0), save_state=False,
            lr=2e-3, balance="none", weights=weights, binary_head=True, seed=seed,
            patience=max(epochs, 1), progress=progress, demo=True, class_names=list(SUBTYPES),
            data_label=f"synthetic smears (ml.synthetic.write_imagefolder, {n_per_class} per class, seed {seed})",
        )
        train(config)
    return out_path


def synthetic_cell_crops(
    n_smears: int, *, seed: int = 0, size: tuple[int, int] = (192, 192), pad: int = 8,
) -> tuple[list[np.ndarray], list[int], dict[str, int]]:
    """White-cell crops (via ml.segment) from synthetic smears, labelled from ground truth.

    Each segmented white cell is matched to the ground-truth instance it overlaps most; it is a
    blast when that instance is in ``SyntheticSmear.blast_ids``. Segments that match no
    ground-truth white cell are dropped (they are segmentation errors, not cells we can label).
    Returns (crops, labels as CELL_CLASSES indices, counts).
    """
    from ml.segment import SegmentParams, crop_cells, segment
    from ml.synthetic import make_smear

    crops: list[np.ndarray] = []
    labels: list[int] = []
    stats = {"smears": 0, "segmented_wbc": 0, "unmatched": 0}
    for i in range(n_smears):
        label = SUBTYPES[i % len(SUBTYPES)]
        image_seed = int(np.random.SeedSequence([seed, 7, i]).generate_state(1)[0])
        smear = make_smear(image_seed, label, size)
        result = segment(smear.image, SegmentParams(pixels_per_micron=smear.pixels_per_micron))
        wbcs = [cell for cell in result.cells if cell.kind == "wbc"]
        found = crop_cells(smear.image, result, kind="wbc", pad=pad)
        stats["smears"] += 1
        stats["segmented_wbc"] += len(wbcs)
        for cell, crop in zip(wbcs, found):
            truth = smear.cell_labels[result.labels == cell.index]
            truth = truth[truth > 0]
            ids, votes = np.unique(truth, return_counts=True) if truth.size else (np.array([]), np.array([]))
            wbc_votes = [(v, int(k)) for k, v in zip(ids, votes) if smear.kinds.get(int(k)) == "wbc"]
            if not wbc_votes:
                stats["unmatched"] += 1
                continue
            best_id = max(wbc_votes)[1]
            crops.append(crop)
            labels.append(1 if best_id in smear.blast_ids else 0)
    return crops, labels, stats


def train_demo_cell_model(
    out_path: str | Path,
    *,
    seed: int = 0,
    arch: str = "resnet18",
    img_size: int = 64,
    n_smears: int = 80,
    epochs: int = 10,
    progress: bool = True,
    weights: str | None = None,
) -> Path:
    """Train the demo blast-or-not cell model (``task="cell"``, ``CELL_CLASSES``); returns its path.

    Crops come from ``ml.segment`` on synthetic smears (the same crops inference makes), with
    labels from the smears' ground truth; 20 % of the smears (not crops) are held out.
    """
    from ml.augment import eval_transform, train_transform
    from ml.datasets import LabelledImages
    from ml.errors import DatasetError
    from ml.models import build_model, imagenet_normalization
    from ml.train import TrainConfig, fit, save_trained_model

    n_val_smears = max(4, n_smears // 5)
    train_x, train_y, train_stats = synthetic_cell_crops(n_smears - n_val_smears, seed=seed)
    val_x, val_y, val_stats = synthetic_cell_crops(n_val_smears, seed=seed + 10_000)
    for name, ys in (("training", train_y), ("validation", val_y)):
        if len(set(ys)) < 2:
            raise DatasetError(f"the synthetic {name} crops hold only one class; use more smears")
    out_path = Path(out_path)
    config = TrainConfig(
        out=out_path, task="cell", arch=arch, img_size=img_size, epochs=epochs, batch_size=16, lr=2e-3,
        balance="weights", weights=weights, seed=seed, patience=max(epochs, 1), progress=progress, demo=True,
        save_state=False,
    )
    mean, std = imagenet_normalization(arch)
    model = build_model(arch, CELL_CLASSES, binary_map=None, weights=weights)
    train_ds = LabelledImages(train_x, train_y, train_transform(img_size, mean, std, crop_scale=(0.7, 1.0)))
    val_ds = LabelledImages(val_x, val_y, eval_transform(img_size, mean, std))
    outcome = fit(model, train_ds, val_ds, config, class_names=CELL_CLASSES, binary_map=None,
                  pretrained=weights is not None)
    training = {
        "task": "cell",
        "data": {"root": f"synthetic smears (ml.synthetic.make_smear, seed {seed}), white cells cut by ml.segment",
                 "train_smears": n_smears - n_val_smears, "val_smears": n_val_smears,
                 "train_stats": train_stats, "val_stats": val_stats},
        "layout": "synthetic",
        "split": {"method": "by smear", "seed": seed},
        "split_sizes": {"train": len(train_x), "val": len(val_x)},
        "train_counts": dict(zip(CELL_CLASSES, np.bincount(train_y, minlength=2).tolist())),
        "config": config.to_card(),
        "history": outcome["history"],
        "best_epoch": outcome["best_epoch"],
        "device": outcome["device"],
        "precision": outcome["precision"],
        "seconds": outcome["seconds"],
    }
    save_trained_model(model, config, CELL_CLASSES, None, img_size, training, outcome, task="cell")
    return out_path
