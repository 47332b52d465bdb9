"""``python -m ml segment IMAGES... [--overlay-dir DIR]``: count cells, JSON lines out.

One JSON object per input image on stdout, in input order::

    {"file": ..., "mode": "smear", "counts": {"wbc": 1, "rbc": 14, "platelet": 1},
     "blasts": null, "blast_percent": null, "pixels_per_micron": 12.1, "scale_estimated": true,
     "overlay": "out/BloodImage_00339_segmentation.png"}

``blasts`` is ``null`` (not determined) unless ``--cell-model`` gives a cell-level
(blast or not) checkpoint; it is never reported as 0 without one. ``--cells`` adds
the per-cell list (index, kind, bbox, area, N:C ratio, circularity...).

A file that cannot be read gives ``{"file": ..., "code": ..., "error": ...}`` and
a one-line message on stderr; the run goes on and the exit code is 1 when any
image failed. A progress bar goes to stderr on long runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Show the progress bar from this many images on (short runs stay quiet).
PROGRESS_MIN_IMAGES = 8


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "segment",
        help="segment and count cells (white, red, platelets; nuclei in tissue) with numbered overlays",
        description=(
            "Watershed segmentation and counting of stained smears (or H&E nuclei with --mode tissue). "
            "Prints one JSON line per image. Folders are expanded to the image files they contain."
        ),
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    parser.add_argument("--overlay-dir", type=Path, default=None,
                        help="write a numbered contour overlay PNG per image here")
    parser.add_argument("--pixels-per-micron", type=float, default=None,
                        help="image scale; default: estimated per image from red-cell (or nucleus) size")
    parser.add_argument("--mode", choices=("smear", "tissue"), default="smear",
                        help="smear: Giemsa/Wright blood or marrow smear; tissue: H&E section, counts nuclei")
    parser.add_argument("--cells", action="store_true", help="include the per-cell list in each JSON line")
    parser.add_argument("--cell-model", type=Path, default=None,
                        help="cell-level (blast or not) checkpoint: classify each white cell and count blasts")
    parser.add_argument("--blast-threshold", type=float, default=0.5,
                        help="P(blast) from which a white cell counts as a blast (with --cell-model)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _load(path: Path) -> tuple[Any, dict[str, str] | None]:
    """The image, or ``None`` and an error record (code + human reason)."""
    from ml.errors import ImageLoadError
    from ml.imageio import load_image

    try:
        return load_image(path), None
    except ImageLoadError as exc:
        return None, {"code": exc.code, "error": exc.reason}
    except FileNotFoundError:
        return None, {"code": "not_found", "error": "file not found"}
    except IsADirectoryError:
        return None, {"code": "not_a_file", "error": "is a directory"}
    except OSError as exc:
        return None, {"code": "unreadable", "error": f"cannot read the file ({exc.strerror or exc})"}


def _overlay_path(overlay_dir: Path, source: Path, taken: set[Path]) -> Path:
    """``<overlay_dir>/<stem>_segmentation.png``, numbered when two inputs share a stem."""
    candidate = overlay_dir / f"{source.stem}_segmentation.png"
    number = 2
    while candidate in taken:
        candidate = overlay_dir / f"{source.stem}_segmentation-{number}.png"
        number += 1
    taken.add(candidate)
    return candidate


def _blast_probability_fn(checkpoint: Path) -> Callable:
    """``predict_proba`` for :func:`ml.segment.classify_blasts` from a cell-level checkpoint.

    Columns are reordered to ``[not_blast, blast]`` whatever order the checkpoint
    lists its classes in.
    """
    import numpy as np

    from ml.errors import CheckpointError
    from ml.predict import Predictor

    predictor = Predictor.from_checkpoint(checkpoint)
    names = list(predictor.class_names)
    if "blast" not in names:
        raise CheckpointError(f"{checkpoint}: classes {names} have no 'blast' class; use a cell-level model")
    if getattr(predictor.card, "demo", False):
        print("warning: the cell model is a demo model trained on synthetic images, not for diagnosis",
              file=sys.stderr)
    blast = names.index("blast")

    def predict_proba(crops: list) -> Any:
        proba = np.asarray(predictor.predict_proba(crops), dtype=np.float64)
        if len(proba) == 0:
            return np.zeros((0, 2))
        return np.stack([1.0 - proba[:, blast], proba[:, blast]], axis=1)

    return predict_proba


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ml.cli.predict import expand_inputs
    from ml.segment import SegmentParams, classify_blasts, segment

    if args.pixels_per_micron is not None and args.pixels_per_micron <= 0:
        print("error: --pixels-per-micron must be positive", file=sys.stderr)
        return 2
    if not 0.0 <= args.blast_threshold <= 1.0:
        print("error: --blast-threshold must be in [0, 1]", file=sys.stderr)
        return 2
    params = SegmentParams(pixels_per_micron=args.pixels_per_micron, mode=args.mode)
    blast_fn = _blast_probability_fn(args.cell_model) if args.cell_model is not None else None
    if args.overlay_dir is not None:
        args.overlay_dir.mkdir(parents=True, exist_ok=True)

    files = expand_inputs(args.images)
    if not files:
        print("error: no image files found in the given paths", file=sys.stderr)
        return 1
    failures = 0
    taken: set[Path] = set()
    show_progress = not args.quiet and len(files) >= PROGRESS_MIN_IMAGES
    for path in tqdm(files, unit="img", file=sys.stderr, disable=not show_progress, dynamic_ncols=True):
        image, error = _load(path)
        if error is not None:
            failures += 1
            tqdm.write(f"error: {path}: {error['error']}", file=sys.stderr)
            _emit({"file": str(path), **error})
            continue
        try:
            result = segment(image, params)
            if blast_fn is not None and args.mode == "smear":
                result = classify_blasts(image, result, blast_fn, threshold=args.blast_threshold)
        except ValueError as exc:
            failures += 1
            tqdm.write(f"error: {path}: segmentation failed: {exc}", file=sys.stderr)
            _emit({"file": str(path), "code": "segmentation_error", "error": str(exc)})
            continue
        overlay = None
        if args.overlay_dir is not None:
            from ml.overlay import encode_png, segmentation_overlay

            overlay = _overlay_path(args.overlay_dir, path, taken)
            overlay.write_bytes(encode_png(segmentation_overlay(image, result)))
        _emit({"file": str(path), **result.to_dict(cells=args.cells), "overlay": str(overlay) if overlay else None})
    if failures:
        print(f"{failures} of {len(files)} images failed", file=sys.stderr)
    return 1 if failures else 0
