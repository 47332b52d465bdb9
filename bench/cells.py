"""Cell-level benchmark: the differential cell classifier, the scope check and their speed.

    python bench/cells.py --model artifacts/cells/cells.pt      # a model from `python -m ml train-cells`
    python bench/cells.py --train artifacts/cells/cells.pt      # train it first (about 15-25 min on 1 core)

Figures (the last line printed is one JSON object):

* ``pbc_accuracy``: held-out PBC cells (contiguous file blocks, the part the head never saw), re-measured here
  from the checkpoint;
* ``cnmc_blast_auc`` / ``cnmc_blast_recall``: every C-NMC cell scored by a head that never saw its patient
  (5 folds by patient, at training time; the card keeps them), with a 95 % patient-bootstrap interval;
* ``image_blast_auc``: the per-image blast fraction (blasts / nucleated white cells, segmentation + classifier)
  separating ALL from Benign images of the all4class contiguous test split (at training time; in the card);
* ``ood_flagged``: share of out-of-scope images :func:`ml.scope.check_scope` flags (MBM H&E sections, C-NMC and
  PBC single cells, generated noise / flat colour / text screenshots), per set too;
* ``in_scope_flagged``: share of all4class test and cbc/Testing fields it flags (should be near 0);
* ``frame_s``: one 640×480 cbc frame, segmentation + cell classification, one thread (median of 10).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ml.cells import CellClassifier, analyse_cells
from ml.datapaths import shared_data_dir
from ml.imageio import load_image
from ml.scope import check_scope
from ml.segment import segment


def generated_out_of_scope(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Non-smear images made here: uniform noise, flat colours, rendered-text screenshots."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    noise = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(10)]
    flat = [np.full((300 + 20 * i, 400, 3), rng.integers(0, 256, 3), np.uint8) for i in range(10)]
    texts = []
    for i in range(10):
        bg = tuple(int(v) for v in rng.integers(200, 256, 3))
        im = Image.new("RGB", (640 + 40 * i, 480), bg)
        draw = ImageDraw.Draw(im)
        for line in range(16):
            draw.text((12, 10 + 28 * line), f"Case {i}-{line}: blast 5.0 %, below the 20 % threshold. Signed.",
                      fill=tuple(int(v) for v in rng.integers(0, 90, 3)))
        texts.append(np.asarray(im))
    return {"noise": noise, "flat_colour": flat, "text_screenshot": texts}


def flag_rate(clf: CellClassifier, images, name: str, codes: dict) -> float:
    flagged = 0
    for item in images:
        rgb = load_image(item) if isinstance(item, Path) else item
        check = check_scope(rgb, features=clf.image_features(rgb), card=clf.card)
        flagged += not check.in_scope
        codes.setdefault(name, {}).setdefault(check.code, 0)
        codes[name][check.code] += 1
    return flagged / max(1, len(images))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint from `python -m ml train-cells`")
    parser.add_argument("--train", type=Path, default=None, help="train a model to this path first")
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    data = shared_data_dir()
    if not data.is_dir():
        print(f"real data not found at {data} (set MARROWFIND_DATA_DIR)", file=sys.stderr)
        return 2
    if args.train:
        from ml.celltrain import train_cell_classifier

        train_cell_classifier(data, args.train, progress=lambda m: print(m, file=sys.stderr, flush=True))
        args.model = args.train
    if args.model is None:
        parser.error("give --model or --train")
    clf = CellClassifier.load(args.model)
    v = clf.card.validation
    report: dict = {"model": str(args.model)}

    # PBC held-out part, re-measured from the checkpoint
    from ml.celltrain import PBC_CLASS_MAP, centre_crop

    pbc_test = [data / "pbc_subset" / rel for rel in clf.card.training.get("pbc_split_test", [])]
    if pbc_test:
        calls = clf.classify([centre_crop(load_image(p)) for p in pbc_test])
        truth = [PBC_CLASS_MAP[p.parent.name] for p in pbc_test]
        report["pbc_accuracy"] = round(float(np.mean([c["label"] == t for c, t in zip(calls, truth)])), 4)
        report["pbc_test_cells"] = len(pbc_test)
    for key in ("cnmc_blast_auc", "cnmc_blast_auc_ci95", "cnmc_blast_recall", "cnmc_hem_specificity", "cnmc_cells",
                "cnmc_patients", "image_blast_auc", "image_blast_images", "image_blast_fraction_mean",
                "pbc_accuracy"):
        if key in v:
            report[f"card_{key}" if key == "pbc_accuracy" else key] = v[key]

    # scope
    codes: dict = {}
    mbm = [p for p in sorted((data / "mbm").glob("*.png")) if "_dots_" not in p.name]
    cnmc = sorted(p for p in (data / "cnmc_subset").rglob("*") if p.suffix.lower() in (".png", ".bmp", ".jpg"))
    ood_sets: dict[str, list] = {"mbm_sections": mbm, "cnmc_single_cells": cnmc, "pbc_single_cells": pbc_test}
    ood_sets.update(generated_out_of_scope())
    rates = {name: flag_rate(clf, items, name, codes) for name, items in ood_sets.items()}
    n_ood = sum(len(items) for items in ood_sets.values())
    report["ood_flagged"] = round(sum(rates[k] * len(ood_sets[k]) for k in rates) / n_ood, 4)
    report["ood_flagged_by_set"] = {k: round(r, 4) for k, r in rates.items()}
    report["ood_images"] = n_ood

    from ml.datasets import scan_imagefolder, split_dataset

    a4_test = [s.path for s in split_dataset(scan_imagefolder(data / "all4class", verify=False), "contiguous", seed=0).test]
    cbc_test = sorted((data / "cbc" / "Testing" / "Images").glob("*.jpg"))
    in_rates = {"all4class_test": flag_rate(clf, a4_test, "all4class_test", codes),
                "cbc_testing": flag_rate(clf, cbc_test, "cbc_testing", codes)}
    n_in = len(a4_test) + len(cbc_test)
    report["in_scope_flagged"] = round((in_rates["all4class_test"] * len(a4_test) + in_rates["cbc_testing"] * len(cbc_test)) / n_in, 4)
    report["in_scope_flagged_by_set"] = {k: round(r, 4) for k, r in in_rates.items()}
    report["in_scope_images"] = n_in
    report["scope_codes"] = codes

    # speed: one 640×480 frame, segmentation + classification, one thread
    times, cpu = [], []
    for path in cbc_test[: args.frames]:
        rgb = load_image(path)
        analyse_cells(rgb, segment(rgb), clf)  # warm
        t0, c0 = time.perf_counter(), time.process_time()
        analyse_cells(rgb, segment(rgb), clf)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    report["frame_s"] = round(float(np.median(times)), 4)
    report["frame_cpu_s"] = round(float(np.median(cpu)), 4)
    report["frame_size"] = "640x480 cbc/Testing, torch 1 thread"
    for key, value in report.items():
        if key != "scope_codes":
            print(f"{key}: {value}", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
