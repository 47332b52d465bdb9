"""Inference speed: classify-only vs classify+Grad-CAM vs the seed-style per-image library path.

Usage::

    .venv/bin/python bench/inference.py --arch resnet50 [--images 64] [--batch-size 32] \
        [--precision auto|fp32|bf16|fp16] [--size 224] [--repeats 3] [--device cpu|cuda]

All three paths run side by side in one process on the same images, each
repeat running them one after another (so a noisy neighbour hurts all three
alike), after a warm-up. Every timing includes preprocessing (resize +
normalise) and, for the CAM paths, the map at the image's own size:

* ``classify``: ``Predictor.predict_proba`` in batches (no CAM);
* ``cam``: ``Predictor.predict(with_cam=True)`` in batches (fused Grad-CAM);
* ``seed_style``: one image at a time through ``pytorch_grad_cam.GradCAM`` on an
  fp32 copy of the model, its forward output reused for the probabilities
  (the most generous reading of the seed app, which also ran fp32).

Images: real ones from ``all4class`` (round-robin over the classes) under
``shared_data_dir()``, else seeded synthetic smears. Weights are random
(seeded): speed does not depend on their values. The human table comes
first; the LAST line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ml.cam import cam_target_layer
from ml.checkpoint import ModelCard
from ml.datapaths import shared_data_dir
from ml.device import cpu_supports_bf16
from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES
from ml.models import build_model, imagenet_normalization
from ml.predict import Predictor
from ml.preprocess import to_batch


def load_bench_images(count: int, size: int) -> tuple[list[np.ndarray], str]:
    """``count`` real all4class images (round-robin over classes), else synthetic ones."""
    from ml.imageio import load_image

    root = shared_data_dir() / "all4class"
    if root.is_dir():
        per_class = [sorted(p for p in (root / name).iterdir() if p.is_file()) for name in SUBTYPES
                     if (root / name).is_dir()]
        files = [f for group in zip(*per_class) for f in group][:count] if per_class else []
        if len(files) == count:
            return [load_image(f) for f in files], f"all4class ({root})"
    from ml.synthetic import make_smear

    images = [make_smear(seed=i, label=SUBTYPES[i % len(SUBTYPES)], size=(size, size)).image for i in range(count)]
    return images, "synthetic smears (ml.synthetic)"


def seed_style_runner(
    model: torch.nn.Module, card: ModelCard, device: torch.device
) -> Callable[[list[np.ndarray]], None]:
    """One image at a time through the grad-cam library, fp32, as the Streamlit seed did."""
    from pytorch_grad_cam import GradCAM

    cam = GradCAM(model=model, target_layers=[cam_target_layer(model)])

    def run(images: list[np.ndarray]) -> None:
        for image in images:
            batch = to_batch([image], card.input_size, card.mean, card.std, device=device, channels_last=False)
            grayscale = cam(input_tensor=batch, targets=None)[0]
            F.softmax(cam.outputs.detach().float(), dim=1).cpu().numpy()
            cv2.resize(grayscale, (image.shape[1], image.shape[0]))

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-images", type=int, default=None,
                        help="images for the (slow) seed-style path (default: --images)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs)")
    args = parser.parse_args(argv)

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images, source = load_bench_images(args.images, args.size)
    seed_images = images[: args.seed_images or len(images)]

    model = build_model(args.arch, SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights=None)
    seed_model = copy.deepcopy(model).eval()
    mean, std = imagenet_normalization(args.arch)
    card = ModelCard(arch=args.arch, class_names=list(SUBTYPES), binary_map=dict(SUBTYPE_BINARY_MAP),
                     input_size=args.size, mean=list(mean), std=list(std))
    predictor = Predictor(model, card, device=args.device, precision=args.precision,
                          batch_size=args.batch_size)
    seed_model.to(predictor.device)
    seed_run = seed_style_runner(seed_model, card, predictor.device)

    def classify() -> None:
        predictor.predict_proba(images)

    def classify_cam() -> None:
        predictor.predict(images, with_cam=True)

    def seed_style() -> None:
        seed_run(seed_images)

    warm = images[: min(len(images), args.batch_size)]
    predictor.predict_proba(warm)
    predictor.predict(warm, with_cam=True)
    seed_run(seed_images[:2])

    paths = {"classify": (classify, len(images)), "cam": (classify_cam, len(images)),
             "seed_style": (seed_style, len(seed_images))}
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, (fn, count) in paths.items():
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()
            rates[name].append(count / (time.perf_counter() - start))
    median = {name: statistics.median(values) for name, values in rates.items()}

    device_name = (torch.cuda.get_device_name(predictor.device) if predictor.device.type == "cuda"
                   else f"cpu (native bf16: {cpu_supports_bf16()})")
    print(f"arch {args.arch}, {len(images)} images from {source}, size {args.size}, batch {args.batch_size}, "
          f"precision {predictor.precision}, device {device_name}, threads {threads}, repeats {args.repeats}")
    print(f"{'path':<34}{'img/s (median)':>16}{'all repeats':>30}")
    labels = {"classify": "classify only, batched", "cam": "classify + fused Grad-CAM, batched",
              "seed_style": "seed style (GradCAM lib, 1 by 1, fp32)"}
    for name, label in labels.items():
        print(f"{label:<34}{median[name]:>16.2f}{', '.join(f'{v:.2f}' for v in rates[name]):>30}")
    result = {
        "arch": args.arch,
        "precision": predictor.precision,
        "seed_style_precision": "fp32",
        "device": str(predictor.device),
        "device_name": device_name,
        "threads": threads,
        "images": len(images),
        "seed_style_images": len(seed_images),
        "batch_size": args.batch_size,
        "size": args.size,
        "repeats": args.repeats,
        "data": source,
        "weights": "random (seeded); speed does not depend on them",
        "classify_img_s": round(median["classify"], 3),
        "cam_img_s": round(median["cam"], 3),
        "seed_style_img_s": round(median["seed_style"], 3),
        "cam_vs_classify": round(median["cam"] / median["classify"], 3),
        "cam_vs_seed_style": round(median["cam"] / median["seed_style"], 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
