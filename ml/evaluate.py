"""Evaluation of a checkpoint: metrics, calibration, robustness under shift and a shortcut audit.

``evaluate_checkpoint`` is what ``python -m ml evaluate`` runs. By default it evaluates on the
*test* file list stored in the checkpoint card (the images the model never saw during training
or model selection) and trains the shortcut baselines on the card's *train* list, so every figure
is on the same honest split. Predictions go through :class:`ml.predict.Predictor`, i.e. exactly
the preprocessing the platform uses.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.errors import DatasetError
from ml.metrics import (  # noqa: F401  (compute_metrics, expected_calibration_error: public API here too)
    ECE_BINS,
    binary_summary,
    compute_metrics,
    expected_calibration_error,
    short_metrics,
)

# C-NMC names for the two classes of a cell-level (blast-or-not) model.
CELL_LABEL_ALIASES = {"hem": "not_blast", "all": "blast"}


# --------------------------------------------------------------------------- data selection

def _select_samples(card, data: Path, layout: str, split: str, limit_per_class: int | None):
    """(index, evaluation samples, training samples or None) honouring the stored split."""
    from ml.datasets import Split, scan_dataset

    class_names = list(card.class_names)
    if layout == "imagefolder":
        index = scan_dataset(data, "imagefolder", class_names=class_names)
    else:
        index = scan_dataset(data, layout)
    stored = (card.training or {}).get("split")
    if split == "all":
        chosen = list(index.samples)
        train = Split.from_dict(stored, index).train if _split_fits(stored, index) else None
    else:
        if not stored:
            raise DatasetError("this checkpoint stores no split; evaluate with --split all")
        if not _split_fits(stored, index):
            raise DatasetError(
                f"the checkpoint's stored {split} files are not under {data}; "
                "evaluate on the folder it was trained on, or use --split all")
        parts = Split.from_dict(stored, index)
        chosen, train = parts.part(split), parts.train
    if limit_per_class is not None:
        from ml.datasets import take_per_class as limit

        chosen = limit(chosen, limit_per_class)
        train = limit(train, limit_per_class * 4) if train is not None else None
    if not chosen:
        raise DatasetError(f"no images to evaluate in the {split} split")
    return index, chosen, train


def _split_fits(stored: dict | None, index) -> bool:
    if not stored:
        return False
    known = {s.relpath for s in index.samples}
    return all(rel in known for part in ("train", "val", "test") for rel in stored.get(part, []))


def _label_indices(samples, class_names: Sequence[str], task: str) -> list[int]:
    lookup = {name: i for i, name in enumerate(class_names)}
    out = []
    for sample in samples:
        name = sample.label
        if name not in lookup and task == "cell":
            name = CELL_LABEL_ALIASES.get(name, name)
        if name not in lookup:
            raise DatasetError(f"data class {sample.label!r} is not one of the model's {list(class_names)}")
        out.append(lookup[name])
    return out


# --------------------------------------------------------------------------- main entry

def evaluate_checkpoint(
    model_path: str | Path,
    data: str | Path,
    *,
    layout: str | None = None,
    split: str = "test",
    plots_dir: str | Path | None = None,
    batch_size: int = 32,
    device: str | None = None,
    precision: str = "auto",
    limit_per_class: int | None = None,
    robustness: bool = True,
    shortcuts: bool = True,
    cam_examples: int = 8,
    seed: int = 0,
    progress: bool = True,
    background: bool = True,
    segmented: str | Path | None = None,
    perturbations: Sequence[str] | None = None,
) -> dict:
    """Evaluate ``model_path`` on ``data`` and return the report dict (see module docstring)."""
    from tqdm.auto import tqdm

    from ml.augment import PERTURBATIONS, perturb_all
    from ml.checkpoint import file_sha256, load_checkpoint
    from ml.datasets import load_rgb
    from ml.predict import Predictor

    model_path, data = Path(model_path), Path(data)
    model, card = load_checkpoint(model_path)
    layout = layout or (card.training or {}).get("layout", "imagefolder")
    _index, samples, train_samples = _select_samples(card, data, layout, split, limit_per_class)
    class_names = list(card.class_names)
    y = _label_indices(samples, class_names, card.task)
    images = [load_rgb(s.path) for s in tqdm(samples, desc="load", leave=False, disable=not progress)]

    predictor = Predictor(model, card, device=device, precision=precision, batch_size=batch_size)
    predictions = predictor.predict(images, with_cam=False)
    probs = np.array([[p.probabilities[name] for name in class_names] for p in predictions])
    report: dict = {
        "model": {"path": str(model_path), "sha256": file_sha256(model_path), "arch": card.arch,
                  "task": card.task, "demo": card.demo, "input_size": card.input_size},
        "data": str(data), "layout": layout, "split": split,
        "class_names": class_names, "device": str(predictor.device), "precision": predictor.precision,
    }
    report.update(compute_metrics(y, probs, class_names))
    if card.binary_map and predictions and predictions[0].all_probability is not None:
        p_all = np.array([p.all_probability for p in predictions])
        report["binary"] = binary_summary(np.asarray(y), p_all, class_names, card.binary_map)
        truth = np.array([card.binary_map[class_names[i]] for i in y])
        from_subtypes = np.array([card.binary_map[class_names[i]] for i in probs.argmax(1)])
        report["binary"]["accuracy_from_subtype_head"] = float((from_subtypes == truth).mean())

    if robustness:
        report["robustness"] = {}
        names = list(perturbations or PERTURBATIONS)
        if "stain_colour" not in names:
            names.insert(0, "stain_colour")  # the one reported as accuracy_shifted
        for name in tqdm(names, desc="robustness", leave=False, disable=not progress):
            shifted = perturb_all(images, name, seed=seed)
            report["robustness"][name] = short_metrics(compute_metrics(y, predictor.predict_proba(shifted),
                                                                class_names))
        report["accuracy_shifted"] = report["robustness"]["stain_colour"]["accuracy"]
        report["accuracy_shifted_perturbation"] = "stain_colour (HED + HSV shift, ml.augment)"

    swap = None
    if background and card.task == "image" and len(set(y)) >= 2:
        swap = background_swap_section(predictor, images, samples, y, class_names, data,
                                       segmented=segmented, seed=seed)
        report.update(swap.pop("report"))

    if shortcuts:
        report.update(_shortcut_section(samples, images, y, train_samples, class_names, card.task, seed))

    if plots_dir is not None:
        report["plots"] = write_plots(Path(plots_dir), y, probs, class_names, images, samples,
                                      predictor, cam_examples=cam_examples)
        if swap is not None:
            report["plots"].append(write_swap_grid(Path(plots_dir) / "background_swap.png", swap, images,
                                                   y, class_names))
    report["card_val_metrics"] = {k: v for k, v in (card.metrics or {}).items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return report


def background_swap_section(predictor, images, samples, y, class_names, data: Path, *,
                            segmented: str | Path | None = None, seed: int = 0) -> dict:
    """Does the label come from the white cells or from the background? (see ml.background)

    Every evaluation image's white cells are pasted onto the background of an evaluation image of
    another class (its own white cells inpainted out) and onto a neutral synthetic background.
    ``accuracy_background_swap``: the true label survives the swap; ``follows_background``: the
    label became the donor's class; ``accuracy_neutral_background``: on the neutral background.
    Returns ``{"report": figures, ...arrays for the plot}``.
    """
    from ml.background import background_swap_set, default_segmented_root, load_masks

    root = Path(segmented) if segmented is not None else default_segmented_root(data)
    masks, sources = load_masks(images, [s.relpath for s in samples], root)
    built = background_swap_set(images, masks, y, seed=seed)
    if not built["index"]:
        return {"report": {"background_swap": {"n": 0, "reason": "no image with a usable white-cell mask"}}}
    y_arr = np.asarray(y)
    truth = y_arr[built["index"]]
    donor_class = y_arr[built["donor"]]
    swapped = predictor.predict_proba(built["swapped"]).argmax(1)
    neutral = predictor.predict_proba(built["neutral"]).argmax(1)
    per_class = {}
    for c, name in enumerate(class_names):
        sel = truth == c
        if sel.any():
            per_class[name] = {"n": int(sel.sum()), "accuracy": float((swapped[sel] == c).mean()),
                               "follows_background": float((swapped[sel] == donor_class[sel]).mean()),
                               "accuracy_neutral": float((neutral[sel] == c).mean())}
    figures = {
        "accuracy_background_swap": float((swapped == truth).mean()),
        "follows_background": float((swapped == donor_class).mean()),
        "accuracy_neutral_background": float((neutral == truth).mean()),
        "background_swap": {
            "n": len(truth), "n_without_mask": built["n_unusable"], "mask_sources": sources,
            "segmented_root": str(root) if root is not None else None, "per_class": per_class,
        },
    }
    return {"report": figures, "built": built, "swapped_pred": swapped, "neutral_pred": neutral}


def write_swap_grid(path: Path, swap: dict, images, y, class_names, *, n: int = 8) -> str:
    """A PNG grid: original | donor | swapped (predicted label) | neutral (predicted label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    built = swap["built"]
    truth = np.asarray(y)[built["index"]]
    rows = _spread(truth, len(class_names), n)
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.6 * len(rows)), squeeze=False)
    for r, k in enumerate(rows):
        i, j = built["index"][k], built["donor"][k]
        panels = [
            (images[i], f"cells: {class_names[y[i]]}"),
            (images[j], f"donor: {class_names[y[j]]}"),
            (built["swapped"][k], f"swapped -> {class_names[swap['swapped_pred'][k]]}"),
            (built["neutral"][k], f"neutral -> {class_names[swap['neutral_pred'][k]]}"),
        ]
        for ax, (image, title) in zip(axes[r], panels):
            ax.imshow(image)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)


def _shortcut_section(samples, images, y, train_samples, class_names, task, seed) -> dict:
    """Blind baselines trained on the card's train split (or cross-validated where there is none)."""
    from ml.datasets import load_rgb
    from ml.shortcuts import shortcut_audit

    if train_samples:
        train_images = [load_rgb(s.path) for s in train_samples]
        train_y = _label_indices(train_samples, class_names, task)
        if len(set(train_y)) >= 2:
            out = shortcut_audit(train_images, train_y, images, y)
            out["shortcut_trained_on"] = f"checkpoint train split ({len(train_images)} images)"
            return out
    # No usable stored train split (e.g. --split all on another data set): 5-fold cross-validation
    # over the evaluation images, folds in file order so neighbours mostly stay together.
    from sklearn.model_selection import KFold

    y_arr = np.asarray(y)
    accs: dict[str, list[float]] = {"shortcut_baseline_accuracy": [], "corner_patch_accuracy": []}
    for train_idx, test_idx in KFold(n_splits=5, shuffle=False).split(images):
        if len(set(y_arr[train_idx])) < 2:
            continue
        fold = shortcut_audit([images[i] for i in train_idx], y_arr[train_idx],
                              [images[i] for i in test_idx], y_arr[test_idx])
        for key, values in accs.items():
            values.append(fold[key] * len(test_idx))
    n = len(y_arr)
    out = {key: (float(sum(vals) / n) if vals else None) for key, vals in accs.items()}
    out["chance_accuracy"] = float(np.bincount(y_arr).max() / n)
    out["shortcut_trained_on"] = "5-fold cross-validation over the evaluation images (no stored split)"
    return out


# --------------------------------------------------------------------------- plots

def write_plots(out_dir: Path, y: Sequence[int], probs: np.ndarray, class_names: Sequence[str],
                images: Sequence[np.ndarray], samples, predictor, *, cam_examples: int = 8) -> list[str]:
    """Confusion matrix, one-vs-rest ROC curves and Grad-CAM overlays (PNG files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    from ml.overlay import cam_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    y = np.asarray(y)
    labels = list(range(len(class_names)))

    fig, ax = plt.subplots(figsize=(5, 5))
    ConfusionMatrixDisplay.from_predictions(y, probs.argmax(1), labels=labels,
                                            display_labels=list(class_names), ax=ax, colorbar=False)
    ax.set_title("confusion matrix")
    fig.tight_layout()
    path = out_dir / "confusion_matrix.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(str(path))

    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = 0
    for i, name in enumerate(class_names):
        if len(class_names) == 2 and i == 0:
            continue  # binary: one curve says it all
        truth = (y == i).astype(int)
        if 0 < truth.sum() < len(truth):
            RocCurveDisplay.from_predictions(truth, probs[:, i], name=name, ax=ax)
            drawn += 1
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_title("ROC (one class vs rest)")
    fig.tight_layout()
    path = out_dir / "roc_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    if drawn:
        written.append(str(path))

    if cam_examples > 0:
        chosen = _spread(y, len(class_names), cam_examples)
        preds = predictor.predict([images[i] for i in chosen], with_cam=True)
        cam_dir = out_dir / "gradcam"
        cam_dir.mkdir(exist_ok=True)
        from PIL import Image

        for i, pred in zip(chosen, preds):
            overlay = cam_overlay(images[i], pred.cam)
            name = f"{Path(samples[i].relpath).stem}_true-{class_names[y[i]]}_pred-{pred.label}.png"
            path = cam_dir / name
            Image.fromarray(np.concatenate([images[i], overlay], axis=1)).save(path)
            written.append(str(path))
    return written


def _spread(y: np.ndarray, n_classes: int, n: int) -> list[int]:
    """Up to n indices, taken round-robin over the classes, so every class gets examples."""
    queues = [list(np.flatnonzero(y == c)) for c in range(n_classes)]
    chosen: list[int] = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(int(queue.pop(0)))
    return chosen


def format_report(report: dict) -> str:
    """A short human-readable summary: the model next to its blind baselines."""
    lines = [
        (f"{report['model']['arch']} ({'DEMO, ' if report['model']['demo'] else ''}{report['model']['task']}) "
        f"on {report['data']} [{report['split']}, n={report['n']}]"),
        f"  accuracy        {report['accuracy']:.4f}",
        f"  f1 weighted     {report['f1_weighted']:.4f}   macro {report['f1_macro']:.4f}",
        f"  kappa           {report['kappa']:.4f}",
        f"  ECE             {report['ece']:.4f}",
    ]
    if "accuracy_shifted" in report:
        lines.append(f"  accuracy under stain/colour shift  {report['accuracy_shifted']:.4f}")
        for name, values in report["robustness"].items():
            lines.append(f"    {name:<13} accuracy {values['accuracy']:.4f}  kappa {values['kappa']:.4f}")
    if "shortcut_baseline_accuracy" in report:
        def fmt(v):
            return "n/a" if v is None else f"{v:.4f}"
        lines.append("  shortcut audit (blind baselines, same split):")
        lines.append(f"    model                         {report['accuracy']:.4f}")
        lines.append(f"    border colour only            {fmt(report['shortcut_baseline_accuracy'])}")
        lines.append(f"    scale-bar corner patch only   {fmt(report['corner_patch_accuracy'])}")
        lines.append(f"    majority class (chance)       {fmt(report['chance_accuracy'])}")
    if "accuracy_background_swap" in report:
        bs = report["background_swap"]
        lines.append(f"  background swap (n={bs['n']}, masks {bs['mask_sources']}):")
        lines.append(f"    accuracy, cells on another class's background  {report['accuracy_background_swap']:.4f}")
        lines.append(f"    label follows the background                   {report['follows_background']:.4f}")
        lines.append(f"    accuracy, cells on a neutral background        {report['accuracy_neutral_background']:.4f}")
    if "binary" in report:
        lines.append(f"  ALL vs normal (binary head) accuracy {report['binary']['accuracy']:.4f}")
    return "\n".join(lines)


def print_report(report: dict) -> None:  # pragma: no cover - thin wrapper
    print(format_report(report), file=sys.stderr)
