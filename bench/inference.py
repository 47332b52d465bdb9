"""Inference speed: eager vs compiled classify(+Grad-CAM), and the seed-style per-image library path.

Usage::

    .venv/bin/python bench/inference.py --arch resnet50 [--images 64] [--batch-size 32] \
        [--precision auto|fp32|bf16|fp16] [--size 224] [--repeats 3] [--device cpu|cuda] \
        [--compile on|off] [--short-chunk 5] [--compare-padding]

All paths run side by side in one process on the same images, each repeat
running them one after another (so a noisy neighbour hurts all of them alike),
after a warm-up. Every timing includes preprocessing (resize + normalise) and,
for the CAM paths, the map at the image's own size:

* ``classify`` / ``cam``: eager ``Predictor.predict_proba`` / ``predict(with_cam=True)``
  in batches (fused Grad-CAM);
* ``compiled_classify`` / ``compiled_cam``: the same through the compiled module
  (``Predictor(compile="on")``: torch.compile, inductor, freezing), a second
  Predictor on a copy of the same weights;
* ``compiled_short``: a chunk of ``--short-chunk`` images (the last chunk of a
  case) through the compiled module (dynamic batch dimension, the default); with
  ``--compare-padding`` a third Predictor compiled for the one static batch shape,
  short chunks padded to it, runs full and short chunks too;
* ``seed_style``: one image at a time through ``pytorch_grad_cam.GradCAM`` on an
  fp32 copy of the model, its forward output reused for the probabilities
  (the most generous reading of the seed app, which also ran fp32).

``compile_s`` is the first compile in this process (an empty cache folder);
``compile_cached_s`` is the same warm-up in a second, fresh process on that
folder (a worker restart). ``cam_img_s`` is the path ``INFERENCE_COMPILE=auto``
picks on this machine (``auto_compiles`` says which).

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
import tempfile
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
from ml.compiled import should_compile
from ml.datapaths import shared_data_dir
from ml.device import cpu_has_amx, cpu_supports_bf16
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


def cpu_description() -> str:
    """The CPU as this benchmark reports it: model name, torch's vector ISA, native bf16 / AMX."""
    name = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{name}, {os.cpu_count()} cores, torch ISA {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16 {cpu_supports_bf16()}, AMX {cpu_has_amx()}")


def bench_model(args: argparse.Namespace) -> tuple[torch.nn.Module, ModelCard]:
    """The benchmark's model: seeded random weights, so a second process builds the same one."""
    torch.manual_seed(0)
    model = build_model(args.arch, SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights=None)
    mean, std = imagenet_normalization(args.arch)
    card = ModelCard(arch=args.arch, class_names=list(SUBTYPES), binary_map=dict(SUBTYPE_BINARY_MAP),
                     input_size=args.size, mean=list(mean), std=list(std))
    return model, card


def cached_child(args: argparse.Namespace) -> int:
    """The second process start: build the same predictor and time its warm-up on the cache folder."""
    model, card = bench_model(args)
    started = time.perf_counter()
    predictor = Predictor(model, card, device=args.device, precision=args.precision, batch_size=args.batch_size,
                          compile="on", compile_cache_dir=args.cache_dir).warm_up()
    print(json.dumps({"seconds": time.perf_counter() - started, "state": predictor.compile_state}))
    return 0


def second_process_compile_s(argv: list[str] | None, cache_dir: Path) -> float:
    """Run this script again in a fresh process (``--cached-child``) and return its warm-up time."""
    import subprocess

    forwarded = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, str(Path(__file__).resolve()), *forwarded, "--cache-dir", str(cache_dir),
               "--cached-child"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


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
    parser.add_argument("--compile", default="on", choices=("on", "off"),
                        help="also measure the compiled path (default on)")
    parser.add_argument("--short-chunk", type=int, default=5, help="images in the short (padded) chunk")
    parser.add_argument("--compare-padding", action="store_true",
                        help="also compile one static batch shape (short chunks padded) and compare")
    parser.add_argument("--cache-dir", default=None,
                        help="compile cache folder (default: a new temporary one, so compile_s is cold)")
    parser.add_argument("--cached-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if args.cached_child:
        return cached_child(args)
    torch.manual_seed(0)
    images, source = load_bench_images(args.images, args.size)
    seed_images = images[: args.seed_images or len(images)]

    model, card = bench_model(args)
    seed_model = copy.deepcopy(model).eval()
    compiled_model = copy.deepcopy(model)
    padded_model = copy.deepcopy(model) if args.compare_padding else None
    predictor = Predictor(model, card, device=args.device, precision=args.precision,
                          batch_size=args.batch_size)
    auto_compiles = should_compile("auto", predictor.device)
    compiled = None
    compile_s = compile_cached_s = None
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="mf-bench-compile-"))
    if args.compile == "on":
        compiled = Predictor(compiled_model, card, device=args.device, precision=args.precision,
                             batch_size=args.batch_size, compile="on", compile_cache_dir=cache_dir)
        started = time.perf_counter()
        compiled.warm_up()
        compile_s = time.perf_counter() - started
        if not compiled.compiled:
            print(f"compile failed, compiled rows run eager: {compiled.compile_error}", file=sys.stderr)
        compile_cached_s = second_process_compile_s(argv, cache_dir)
    padded = None
    if padded_model is not None:
        padded = Predictor(padded_model, card, device=args.device, precision=args.precision,
                            batch_size=args.batch_size, compile="on", compile_cache_dir=cache_dir,
                            dynamic_batch=False).warm_up()
    seed_model.to(predictor.device)
    seed_run = seed_style_runner(seed_model, card, predictor.device)

    def classify() -> None:
        predictor.predict_proba(images)

    def classify_cam() -> None:
        predictor.predict(images, with_cam=True)

    def seed_style() -> None:
        seed_run(seed_images)

    short = images[: max(1, min(args.short_chunk, args.batch_size))]
    warm = images[: min(len(images), args.batch_size)]
    predictor.predict_proba(warm)
    predictor.predict(warm, with_cam=True)
    seed_run(seed_images[:2])

    paths: dict[str, tuple[Callable[[], object], int]] = {
        "classify": (classify, len(images)), "cam": (classify_cam, len(images)),
        "short": (lambda: predictor.predict(short, with_cam=True), len(short)),
    }
    if compiled is not None:
        compiled.predict(warm, with_cam=True)
        compiled.predict(short, with_cam=True)
        paths["compiled_classify"] = (lambda: compiled.predict_proba(images), len(images))
        paths["compiled_cam"] = (lambda: compiled.predict(images, with_cam=True), len(images))
        paths["compiled_short"] = (lambda: compiled.predict(short, with_cam=True), len(short))
    if padded is not None:
        padded.predict(warm, with_cam=True)
        padded.predict(short, with_cam=True)
        paths["padded_cam"] = (lambda: padded.predict(images, with_cam=True), len(images))
        paths["padded_short"] = (lambda: padded.predict(short, with_cam=True), len(short))
    paths["seed_style"] = (seed_style, len(seed_images))
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
                   else cpu_description())
    print(f"arch {args.arch}, {len(images)} images from {source}, size {args.size}, batch {args.batch_size}, "
          f"precision {predictor.precision}, device {device_name}, threads {threads}, repeats {args.repeats}, "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    if compiled is not None:
        print(f"compiled: {compiled.compile_state} ({compiled.compile_scope}); first compile {compile_s:.1f} s, "
              f"second process start on the cache {compile_cached_s:.1f} s; auto compiles here: {auto_compiles}")
    print(f"{'path':<44}{'img/s (median)':>16}{'all repeats':>30}")
    labels = {"classify": "classify only, eager", "cam": "classify + fused Grad-CAM, eager",
              "short": f"  eager, a chunk of {len(short)}",
              "compiled_classify": "classify only, compiled",
              "compiled_cam": "classify + fused Grad-CAM, compiled",
              "compiled_short": f"  compiled, a chunk of {len(short)}",
              "padded_cam": "classify + CAM, compiled, static batch",
              "padded_short": f"  static batch, a chunk of {len(short)} padded to {args.batch_size}",
              "seed_style": "seed style (GradCAM lib, 1 by 1, fp32)"}
    for name, label in labels.items():
        if name in median:
            print(f"{label:<44}{median[name]:>16.2f}{', '.join(f'{v:.2f}' for v in rates[name]):>30}")
    auto_cam = median["compiled_cam"] if (auto_compiles and "compiled_cam" in median) else median["cam"]
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
        "load_average": round(os.getloadavg()[0], 2),
        "auto_compiles": auto_compiles,
        "classify_img_s": round(median["classify"], 3),
        "eager_cam_img_s": round(median["cam"], 3),
        "cam_img_s": round(auto_cam, 3),
        "seed_style_img_s": round(median["seed_style"], 3),
        "cam_vs_classify": round(median["cam"] / median["classify"], 3),
        "cam_vs_seed_style": round(auto_cam / median["seed_style"], 3),
        "short_chunk": len(short),
        "eager_short_img_s": round(median["short"], 3),
    }
    if compiled is not None:
        result.update({
            "compiled": compiled.compiled,
            "compile_scope": compiled.compile_scope,
            "compiled_classify_img_s": round(median["compiled_classify"], 3),
            "compiled_cam_img_s": round(median["compiled_cam"], 3),
            "compiled_vs_eager": round(median["compiled_cam"] / median["cam"], 3),
            "compiled_short_img_s": round(median["compiled_short"], 3),
            "compile_s": round(compile_s, 2),
            "compile_cached_s": round(compile_cached_s, 2),
        })
    if padded is not None:
        result.update({
            "padded_cam_img_s": round(median["padded_cam"], 3),
            "padded_short_img_s": round(median["padded_short"], 3),
            "padded_compile_s": round(padded.compile_seconds or float("nan"), 2),
        })
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
