"""``python -m ml evaluate``: honest metrics, robustness and a shortcut audit for a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint: metrics, robustness under shift, shortcut audit",
        description=(
            "Evaluate a checkpoint on a data folder. With --split test (default) it uses the "
            "test file list stored in the checkpoint, so the figures are on held-out images; "
            "the shortcut baselines are trained on the checkpoint's train split."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint file")
    parser.add_argument("--data", type=Path, required=True, help="data folder")
    parser.add_argument("--layout", choices=("imagefolder", "cnmc"), default=None,
                        help="default: the layout stored in the checkpoint")
    parser.add_argument("--split", choices=("test", "val", "all"), default="test")
    parser.add_argument("--json", type=Path, default=None, help="write the metrics JSON here too")
    parser.add_argument("--plots", type=Path, default=None,
                        help="folder for confusion matrix, ROC curves and Grad-CAM examples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--no-robustness", action="store_true", help="skip the shifted re-evaluations")
    parser.add_argument("--perturbations", nargs="+", default=None,
                        help="robustness perturbations to run (default: all of ml.augment.PERTURBATIONS; "
                             "stain_colour, reported as accuracy_shifted, always runs)")
    parser.add_argument("--no-shortcuts", action="store_true", help="skip the shortcut audit")
    parser.add_argument("--no-background-swap", action="store_true",
                        help="skip the background-swap test (white cells pasted on other backgrounds)")
    parser.add_argument("--segmented", type=Path, default=None,
                        help="segmented-view folder with the white-cell masks (default: <data>_segmented; "
                             "images without a usable mask fall back to a colour mask)")
    parser.add_argument("--cam-examples", type=int, default=8, help="Grad-CAM overlays to draw with --plots")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random perturbations")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ml.evaluate import evaluate_checkpoint, format_report

    report = evaluate_checkpoint(
        args.model,
        args.data,
        layout=args.layout,
        split=args.split,
        plots_dir=args.plots,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        limit_per_class=args.limit_per_class,
        robustness=not args.no_robustness,
        shortcuts=not args.no_shortcuts,
        cam_examples=args.cam_examples,
        seed=args.seed,
        progress=not args.quiet,
        background=not args.no_background_swap,
        segmented=args.segmented,
        perturbations=args.perturbations,
    )
    text = json.dumps(report, indent=2)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    if not args.quiet:
        import sys

        print(format_report(report), file=sys.stderr)
    print(json.dumps(report))
    return 0
