"""Counting benchmark: ml.segment against the real ground truth.

* ``cbc/<split>``: Giemsa blood smears (640×480) with Pascal VOC boxes named WBC, RBC
  and Platelets; the truth per image is the number of boxes of each name. BCCD is
  known to leave some red cells unboxed, so RBC errors include annotation gaps.
* ``mbm``: H&E bone-marrow tissue (600×600) where ``*_dots_*.png`` marks each
  nucleus centre. The dots are 1-bit images with mostly one-pixel dots and a few
  two-pixel ones; the truth is the number of 4-connected dot components, which
  gives the 5545 centres the data set publishes (counting pixels gives 5553).

Parameters were tuned on ``cbc/Training`` + ``cbc/Validation`` (smear) and on the
mbm slides listed in ``MBM_TUNING_SLIDES`` (tissue); the default figures come from
``cbc/Testing`` and from all of mbm, with mbm also reported without the tuning slides.

Usage::

    python bench/counting.py                      # cbc/Testing + all mbm
    python bench/counting.py --split Training     # tuning split
    python bench/counting.py --limit 5 --set peak_min_height=0.3

The last line printed is one JSON object:
``cbc_wbc_exact`` share of images whose WBC count is exact;
``cbc_rbc_mae`` mean |pred - truth| red cells per image;
``cbc_rbc_rel_err`` mean over images of |pred - truth| / truth (per-image relative error);
``mbm_mae`` mean |pred - truth| nuclei per image; ``mbm_rel_err`` mean per-image |pred - truth| / truth;
``taleqani_wbc_mae`` mean |pred - ref| white cells per all4class test image, ``taleqani_wbc_rel_err``
sum |pred - ref| / sum ref, ``taleqani_wbc_dice`` white-cell mask Dice pooled over the images, against
the data set's own segmented view (``ml.segment.white_cells_from_masked_view``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ml.datapaths import shared_data_dir
from ml.segment import (
    SegmentationResult,
    SegmentParams,
    segment,
    white_cells_from_masked_view,
)

MBM_TUNING_SLIDES = ("BM_GRAZ_HE_0001", "BM_GRAZ_HE_0002")
CBC_SPLITS = ("Training", "Validation", "Testing")


def load_rgb(path: Path) -> np.ndarray:
    """Decode with the project loader (ml.imageio), as the pipeline does."""
    from ml.imageio import load_image

    return load_image(path)


def voc_counts(xml_path: Path) -> dict[str, int]:
    """Number of boxes per object name in a Pascal VOC annotation."""
    counts = {"wbc": 0, "rbc": 0, "platelet": 0}
    names = {"WBC": "wbc", "RBC": "rbc", "Platelets": "platelet"}
    for obj in ET.parse(xml_path).getroot().iter("object"):
        key = names.get((obj.findtext("name") or "").strip())
        if key:
            counts[key] += 1
    return counts


def dot_count(dots_path: Path) -> int:
    """Nucleus centres in an mbm dot map: 4-connected components of the nonzero pixels."""
    dots = np.asarray(Image.open(dots_path)).astype(bool)
    if dots.ndim == 3:
        dots = dots.any(axis=-1)
    return int(ndi.label(dots)[1])


def cbc_pairs(data: Path, splits: list[str]) -> list[tuple[Path, Path]]:
    pairs = []
    for split in splits:
        for image in sorted((data / "cbc" / split / "Images").glob("*.jpg")):
            pairs.append((image, data / "cbc" / split / "Annotations" / (image.stem + ".xml")))
    return pairs


def mbm_pairs(data: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for image in sorted((data / "mbm").glob("*.png")):
        if "_dots_" in image.name:
            continue
        stem, _, number = image.stem.rpartition("_")
        pairs.append((image, image.with_name(f"{stem}_dots_{number}.png")))
    return pairs


def parse_overrides(items: list[str]) -> dict:
    """``name=value`` pairs for SegmentParams, typed like the field defaults."""
    types = {f.name: type(f.default) for f in fields(SegmentParams)}
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"unknown SegmentParams field {name!r}")
        out[name] = None if value == "None" else (float(value) if types[name] in (float, type(None)) else types[name](value))
    return out


def timed_segment(image_path: Path, params: SegmentParams, wbc_mask=None) -> tuple[SegmentationResult, float, float]:
    """Segment one image file; ``(result, wall seconds, CPU seconds)`` of the segmentation
    alone (decoding the file is not timed, so both data sets are timed alike).
    ``wbc_mask``: ``(model, threshold)`` of a learned white-cell mask (ml.wbcmask), timed with it."""
    rgb = load_rgb(image_path)
    t0, c0 = time.perf_counter(), time.process_time()
    if wbc_mask is None:
        result = segment(rgb, params)
    else:
        from ml.wbcmask import predict_wbc_probability

        model, threshold = wbc_mask
        result = segment(rgb, params, wbc_probability=predict_wbc_probability(model, rgb), wbc_threshold=threshold)
    return result, time.perf_counter() - t0, time.process_time() - c0


def run_cbc(pairs, params: SegmentParams, progress: bool, wbc_mask=None) -> dict:
    rows = []
    for image_path, xml_path in tqdm(pairs, desc="cbc", disable=not progress, file=sys.stderr):
        truth = voc_counts(xml_path)
        result, seconds, cpu = timed_segment(image_path, params, wbc_mask)
        rows.append({"file": image_path.name, "truth": truth, "pred": result.counts, "s": seconds, "cpu": cpu})
        tqdm.write(
            f"{image_path.name} wbc {result.counts['wbc']}/{truth['wbc']} rbc {result.counts['rbc']}/{truth['rbc']}"
            f" plt {result.counts['platelet']}/{truth['platelet']} {seconds:.2f}s",
            file=sys.stderr,
        ) if progress else None
    if not rows:
        return {}
    wbc_exact = np.mean([r["pred"]["wbc"] == r["truth"]["wbc"] for r in rows])
    rbc_err = np.array([abs(r["pred"]["rbc"] - r["truth"]["rbc"]) for r in rows], float)
    rbc_truth = np.array([r["truth"]["rbc"] for r in rows], float)
    rbc_signed = np.array([r["pred"]["rbc"] - r["truth"]["rbc"] for r in rows], float)
    valid = rbc_truth > 0
    return {
        "cbc_images": len(rows),
        "cbc_wbc_exact": round(float(wbc_exact), 4),
        "cbc_rbc_mae": round(float(rbc_err.mean()), 3),
        "cbc_rbc_rel_err": round(float((rbc_err[valid] / rbc_truth[valid]).mean()), 4),
        "cbc_rbc_median_rel_err": round(float(np.median(rbc_err[valid] / rbc_truth[valid])), 4),
        "cbc_rbc_total_rel_err": round(float(abs(rbc_signed.sum()) / max(1.0, rbc_truth.sum())), 4),
        "cbc_rbc_bias": round(float(rbc_signed.mean()), 3),
        "cbc_platelet_mae": round(float(np.mean([abs(r["pred"]["platelet"] - r["truth"]["platelet"]) for r in rows])), 3),
        "cbc_s_per_image": round(float(np.mean([r["s"] for r in rows])), 4),
        "cbc_cpu_s_per_image": round(float(np.mean([r["cpu"] for r in rows])), 4),
    }


def run_mbm(pairs, params: SegmentParams, progress: bool) -> dict:
    rows = []
    for image_path, dots_path in tqdm(pairs, desc="mbm", disable=not progress, file=sys.stderr):
        truth = dot_count(dots_path)
        result, seconds, cpu = timed_segment(image_path, params)
        pred = result.counts["nucleus"]
        tuning = image_path.name.startswith(MBM_TUNING_SLIDES)
        rows.append({"file": image_path.name, "truth": truth, "pred": pred, "s": seconds, "cpu": cpu, "tuning": tuning})
        if progress:
            tqdm.write(f"{image_path.name} nuclei {pred}/{truth} {seconds:.2f}s", file=sys.stderr)
    if not rows:
        return {}

    def summary(sel: list[dict], prefix: str) -> dict:
        if not sel:
            return {}
        err = np.array([abs(r["pred"] - r["truth"]) for r in sel], float)
        truth = np.array([r["truth"] for r in sel], float)
        return {
            f"{prefix}_images": len(sel),
            f"{prefix}_mae": round(float(err.mean()), 3),
            f"{prefix}_rel_err": round(float((err / truth).mean()), 4),
            f"{prefix}_bias": round(float(np.mean([r["pred"] - r["truth"] for r in sel])), 3),
        }

    out = summary(rows, "mbm")
    out.update(summary([r for r in rows if not r["tuning"]], "mbm_heldout"))
    out.update(summary([r for r in rows if r["tuning"]], "mbm_tuning"))
    out["mbm_s_per_image"] = round(float(np.mean([r["s"] for r in rows])), 4)
    out["mbm_cpu_s_per_image"] = round(float(np.mean([r["cpu"] for r in rows])), 4)
    return out


def run_taleqani(data: Path, part: str, params: SegmentParams, progress: bool, limit: int = 0,
                 min_reference_fraction: float = 0.005, wbc_mask=None) -> dict:
    """White cells on dense all4class fields against the data set's own segmented view.

    Images whose reference mask covers under ``min_reference_fraction`` of the frame
    are left out and counted (the authors' thresholding blacked out whole pale slides,
    mostly Pro-B; see DATA.md): there the reference says nothing.
    """
    from ml.wbcmask import taleqani_samples

    samples = taleqani_samples(data, part)
    samples = samples[:limit] if limit else samples
    rows, excluded = [], 0
    for sample in tqdm(samples, desc=f"all4class {part}", disable=not progress, file=sys.stderr):
        ref_mask, ref_labels = white_cells_from_masked_view(load_rgb(data / "all4class_segmented" / sample.relpath))
        if ref_mask.mean() < min_reference_fraction:
            excluded += 1
            continue
        result, _, cpu = timed_segment(sample.path, params, wbc_mask)
        wbc = np.isin(result.labels, [c.index for c in result.cells if c.kind == "wbc"])
        rows.append({"ref": int(ref_labels.max()), "pred": result.counts["wbc"], "inter": int((wbc & ref_mask).sum()),
                     "pred_px": int(wbc.sum()), "ref_px": int(ref_mask.sum()), "cpu": cpu, "label": sample.label})
    if not rows:
        return {"taleqani_images": 0, "taleqani_excluded_empty_reference": excluded}
    ref = np.array([r["ref"] for r in rows], float)
    pred = np.array([r["pred"] for r in rows], float)
    err = np.abs(pred - ref)
    per_image_dice = [2 * r["inter"] / max(1, r["pred_px"] + r["ref_px"]) for r in rows]
    out = {
        "taleqani_part": part,
        "taleqani_images": len(rows),
        "taleqani_excluded_empty_reference": excluded,
        "taleqani_wbc_ref_mean": round(float(ref.mean()), 3),
        "taleqani_wbc_pred_mean": round(float(pred.mean()), 3),
        "taleqani_wbc_mae": round(float(err.mean()), 3),
        "taleqani_wbc_rel_err": round(float(err.sum() / max(1.0, ref.sum())), 4),
        "taleqani_wbc_rel_err_mean": round(float(np.mean(err[ref > 0] / ref[ref > 0])), 4),
        "taleqani_wbc_bias": round(float((pred - ref).sum() / max(1.0, ref.sum())), 4),
        "taleqani_wbc_dice": round(float(2 * sum(r["inter"] for r in rows) / max(1, sum(r["pred_px"] + r["ref_px"] for r in rows))), 4),
        "taleqani_wbc_dice_mean": round(float(np.mean(per_image_dice)), 4),
        "taleqani_cpu_s_per_image": round(float(np.mean([r["cpu"] for r in rows])), 4),
    }
    for label in sorted({r["label"] for r in rows}):
        sel = [r for r in rows if r["label"] == label]
        out[f"taleqani_{label}_ref_pred"] = [round(float(np.mean([r["ref"] for r in sel])), 2),
                                             round(float(np.mean([r["pred"] for r in sel])), 2)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", nargs="+", default=["Testing"], choices=CBC_SPLITS,
                        help="cbc split(s) to score (tune on Training/Validation only)")
    parser.add_argument("--what", choices=("all", "both", "cbc", "mbm", "taleqani"), default="all",
                        help="both = cbc + mbm; all = cbc + mbm + taleqani")
    parser.add_argument("--taleqani-part", choices=("test", "val", "train", "trainval"), default="test",
                        help="all4class part of the contiguous split to score (tune on train/val)")
    parser.add_argument("--mbm-subset", choices=("all", "tuning", "heldout"), default="all")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N images of each set")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="SegmentParams overrides")
    parser.add_argument("--wbc-mask", type=Path, default=None, metavar="MASK.pt",
                        help="also score cbc and taleqani with this learned white-cell mask (python -m ml "
                             "train-wbc-mask), printed beside the colour rules' figures with the prefix wbcmask_")
    parser.add_argument("--quiet", action="store_true", help="no progress bar nor per-image lines")
    args = parser.parse_args(argv)

    data = shared_data_dir()
    if not data.is_dir():
        print(f"real data not found at {data} (set MARROWFIND_DATA_DIR)", file=sys.stderr)
        return 2
    overrides = parse_overrides(args.set)
    report: dict = {"overrides": overrides}
    wbc_mask = None
    if args.wbc_mask:
        from ml.wbcmask import load_wbc_mask

        model, card = load_wbc_mask(args.wbc_mask)
        wbc_mask = (model, float(card.get("threshold", 0.5)))
        report["wbcmask_model"] = {"path": str(args.wbc_mask), "threshold": wbc_mask[1], "val": card.get("val")}

    if args.what in ("all", "both", "cbc"):
        pairs = cbc_pairs(data, args.split)
        pairs = pairs[: args.limit] if args.limit else pairs
        report["cbc_split"] = "+".join(args.split)
        report.update(run_cbc(pairs, replace(SegmentParams(mode="smear"), **overrides), not args.quiet))
        if wbc_mask:
            learned = run_cbc(pairs, replace(SegmentParams(mode="smear"), **overrides), not args.quiet, wbc_mask)
            report.update({f"wbcmask_{key}": value for key, value in learned.items()})
    if args.what in ("all", "both", "mbm"):
        pairs = mbm_pairs(data)
        if args.mbm_subset != "all":
            want_tuning = args.mbm_subset == "tuning"
            pairs = [p for p in pairs if p[0].name.startswith(MBM_TUNING_SLIDES) == want_tuning]
        pairs = pairs[: args.limit] if args.limit else pairs
        report["mbm_subset"] = args.mbm_subset
        report["mbm_tuning_slides"] = list(MBM_TUNING_SLIDES)
        report.update(run_mbm(pairs, replace(SegmentParams(mode="tissue"), **overrides), not args.quiet))
    if args.what in ("all", "taleqani"):
        report.update(run_taleqani(data, args.taleqani_part, replace(SegmentParams(mode="smear"), **overrides),
                                   not args.quiet, limit=args.limit))
        if wbc_mask:
            learned = run_taleqani(data, args.taleqani_part, replace(SegmentParams(mode="smear"), **overrides),
                                   not args.quiet, limit=args.limit, wbc_mask=wbc_mask)
            report.update({f"wbcmask_{key}": value for key, value in learned.items()})
        report["taleqani_definitions"] = (
            "all4class contiguous split part vs all4class_segmented; rel_err = sum|pred-ref|/sum ref; "
            "dice pooled over pixels of all images; images with an empty reference left out")
    if "cbc_images" in report:
        report["cbc_rbc_rel_err_definition"] = "mean over images of |pred-gt|/gt (total-relative: cbc_rbc_total_rel_err)"
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
