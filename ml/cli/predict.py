"""``python -m ml predict IMAGES... [--model CKPT] [--cam-dir DIR]``: classify images, JSON lines out.

One JSON object per input image on stdout, in input order. A file that
cannot be read gives an ``{"file": ..., "error": ..., "code": ...}`` line (and
a one-line message on stderr) and the run goes on with the rest; the exit
code is 1 when any image failed. A progress bar goes to stderr on long runs.

The heavy imports (torch, the model code) happen inside :func:`run` so that
``python -m ml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ml.cli._runner import FileFailure, load_or_failure, numbered_output_path, run_over_files

MODEL_ENV = "MARROWFIND_MODEL"

NO_MODEL_MESSAGE = (
    f"no model given: pass --model CKPT or set {MODEL_ENV}=CKPT. "
    "Train one with `python -m ml train --data DIR --out model.pt`, "
    "or make the synthetic demo model (not for diagnosis) with `python -m ml train --demo --out demo.pt`."
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="classify images (subtype, P(ALL), confidence) with optional Grad-CAM overlays",
        description=(
            "Classify microscope images with a Marrow-Find checkpoint and print one JSON line per "
            "image. Folders are expanded to the image files they contain."
        ),
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    parser.add_argument("--model", type=Path, default=None, help=f"checkpoint file (default: ${MODEL_ENV})")
    parser.add_argument("--cam-dir", type=Path, default=None,
                        help="write a Grad-CAM overlay PNG per image here (no CAM is computed without it)")
    parser.add_argument("--cam-method", default="gradcam",
                        help="gradcam (fused, fast) | gradcam++ | scorecam | eigencam")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    parser.add_argument("--threshold", type=float, default=None,
                        help="low-confidence threshold on the top probability (default 0.6)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def resolve_model_path(explicit: Path | None) -> Path:
    """``--model``, else ``$MARROWFIND_MODEL``; a clear error telling how to get a model otherwise."""
    from ml.errors import CheckpointError

    if explicit is not None:
        return explicit
    from_env = os.environ.get(MODEL_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    raise CheckpointError(NO_MODEL_MESSAGE)


def expand_inputs(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders replaced by their image files (sorted, by allowed extension)."""
    from ml.imageio import ALLOWED_EXTENSIONS

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in ALLOWED_EXTENSIONS))
        else:
            files.append(path)
    return files


def _predict_chunk(
    paths: Sequence[Path], predictor: Any, cam_dir: Path | None, taken: set[Path]
) -> list[dict[str, Any] | FileFailure]:
    """Load and predict one chunk (one batched forward pass); one outcome per path, in input order."""
    from ml.labels import display_name

    loaded = [(path, *load_or_failure(path)) for path in paths]
    good = [(path, image) for path, image, failure in loaded if failure is None]
    predictions = predictor.predict([image for _, image in good], with_cam=cam_dir is not None) if good else []
    by_path = {id(path): (image, prediction) for (path, image), prediction in zip(good, predictions)}
    outcomes: list[dict[str, Any] | FileFailure] = []
    for path, _, failure in loaded:
        if failure is not None:
            outcomes.append(failure)
            continue
        image, prediction = by_path[id(path)]
        cam_path = None
        if cam_dir is not None and prediction.cam is not None:
            from ml.overlay import cam_overlay, encode_png

            cam_path = numbered_output_path(cam_dir, path, "cam", taken)
            cam_path.write_bytes(encode_png(cam_overlay(image, prediction.cam)))
        outcomes.append({
            **prediction.to_dict(),
            "display_label": display_name(prediction.label),
            "cam": str(cam_path) if cam_path is not None else None,
        })
    return outcomes


def run(args: argparse.Namespace) -> int:
    from ml.errors import MarrowFindMLError
    from ml.predict import DEFAULT_LOW_CONFIDENCE, Predictor

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    model_path = resolve_model_path(args.model)
    try:
        predictor = Predictor.from_checkpoint(
            model_path,
            device=args.device,
            precision=args.precision,
            cam_method=args.cam_method,
            batch_size=args.batch_size,
            low_confidence_threshold=DEFAULT_LOW_CONFIDENCE if args.threshold is None else args.threshold,
        )
    except MarrowFindMLError:
        raise  # reported by ml.cli.main as one "error: ..." line
    except ValueError as exc:  # a bad --device / --precision / --cam-method / --threshold
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if getattr(predictor.card, "demo", False):
        print("warning: this is a demo model trained on synthetic images, not for diagnosis", file=sys.stderr)
    if args.cam_dir is not None:
        args.cam_dir.mkdir(parents=True, exist_ok=True)

    files = expand_inputs(args.images)
    if not files:
        print("error: no image files found in the given paths", file=sys.stderr)
        return 1
    common = {"model_sha256": predictor.sha256}
    if getattr(predictor.card, "demo", False):
        common["demo_model"] = True
    taken: set[Path] = set()
    return run_over_files(
        files,
        lambda chunk: _predict_chunk(chunk, predictor, args.cam_dir, taken),
        chunk_size=predictor.batch_size,
        quiet=args.quiet,
        common=common,
    )
