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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ml.cli._runner import FileFailure, load_or_failure, numbered_output_path, run_over_files


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


def _segment_one(
    path: Path, args: argparse.Namespace, params: Any, blast_fn: Callable | None, taken: set[Path]
) -> dict[str, Any] | FileFailure:
    """Segment (and optionally classify the white cells of) one image; its record or why it failed."""
    from ml.segment import classify_blasts, segment

    image, failure = load_or_failure(path)
    if failure is not None:
        return failure
    try:
        result = segment(image, params)
        if blast_fn is not None and args.mode == "smear":
            result = classify_blasts(image, result, blast_fn, threshold=args.blast_threshold)
    except ValueError as exc:
        return FileFailure("segmentation_error", str(exc), message=f"segmentation failed: {exc}")
    overlay = None
    if args.overlay_dir is not None:
        from ml.overlay import encode_png, segmentation_overlay

        overlay = numbered_output_path(args.overlay_dir, path, "segmentation", taken)
        overlay.write_bytes(encode_png(segmentation_overlay(image, result)))
    return {**result.to_dict(cells=args.cells), "overlay": str(overlay) if overlay else None}


def run(args: argparse.Namespace) -> int:
    from ml.cli.predict import expand_inputs
    from ml.segment import SegmentParams

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
    taken: set[Path] = set()

    def process_chunk(chunk: Sequence[Path]) -> list[dict[str, Any] | FileFailure]:
        return [_segment_one(path, args, params, blast_fn, taken) for path in chunk]

    return run_over_files(files, process_chunk, quiet=args.quiet)
