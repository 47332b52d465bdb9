"""``python -m ml train``: train a subtype (image) or blast-or-not (cell) classifier.

The heavy imports (torch, torchvision) happen inside :func:`run` so that
``python -m ml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LAYOUTS = ("imagefolder", "cnmc")
SPLITS = ("auto", "contiguous", "random", "patient")
BALANCES = ("none", "weights", "sampler", "gan")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a classifier (smear subtypes, C-NMC cells, or the demo models)",
        description=(
            "Train a Marrow-Find classifier and save it as a checkpoint. "
            "Splits are by patient where file names carry one (cnmc), otherwise contiguous "
            "blocks of file numbers per class, so neighbours from one slide never straddle "
            "train and validation. The split is stored in the checkpoint."
        ),
    )
    parser.add_argument("--data", type=Path, help="data folder (imagefolder: one sub-folder per class)")
    parser.add_argument("--layout", choices=LAYOUTS, default="imagefolder")
    parser.add_argument("--task", choices=("image", "cell"), default="image",
                        help="image = whole-image classes; cell = blast-or-not crops "
                             "(with --layout imagefolder on all4class: crops white cells with ml.segment)")
    parser.add_argument("--arch", default="efficientnet_lite0", help="model architecture (see ml.models.ARCHS)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    parser.add_argument("--split", choices=SPLITS, default="auto",
                        help="auto = patient where ids exist, else contiguous (default)")
    parser.add_argument("--folds", type=int, default=None,
                        help="k-fold cross-validation over contiguous blocks of file numbers: the test "
                             "part is block --fold of --folds per class")
    parser.add_argument("--fold", type=int, default=0, help="which fold is the test part (0-based)")
    parser.add_argument("--background", choices=("none", "randomise"), default="none",
                        help="randomise = paste the training images' white cells onto other training "
                             "images' (cells removed) or synthetic backgrounds, so the background stops "
                             "predicting the class")
    parser.add_argument("--segmented", type=Path, default=None,
                        help="segmented-view folder for --background (default: <data>_segmented)")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--img-size", type=int, default=None, help="input side in pixels (default: arch default)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--balance", choices=BALANCES, default="weights")
    parser.add_argument("--gan-model", type=Path, default=None,
                        help="cGAN checkpoint for --balance gan (trained on the train split if omitted)")
    parser.add_argument("--gan-epochs", type=int, default=30, help="epochs of the cGAN trained for --balance gan")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="stop before an epoch that would end past this many seconds; the learning-rate "
                             "schedule shrinks to the epochs that fit (keeps the best epoch)")
    parser.add_argument("--weights", default="imagenet", help="imagenet | PATH to a state dict | none")
    parser.add_argument("--no-binary-head", action="store_true",
                        help="do not train the ALL-vs-normal head (imagefolder with SUBTYPES only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", type=Path, default=None, help="resume from a checkpoint written by --out")
    parser.add_argument("--patience", type=int, default=5, help="early stopping on validation kappa")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--limit-per-class", type=int, default=None, help="use at most N images per class")
    parser.add_argument("--curve", type=Path, default=None, help="write the training curve PNG here")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    parser.add_argument("--pbc", type=Path, default=None,
                        help="--task cell: pbc_subset folder of normal cells added as not_blast")
    parser.add_argument("--pixels-per-micron", type=float, default=None,
                        help="--task cell: segmentation scale of the smears (default: estimated per image)")
    parser.add_argument("--cnmc", type=Path, default=None,
                        help="--task cell: C-NMC folder to check the model on (default: <data>/../cnmc_subset)")
    parser.add_argument("--demo", action="store_true",
                        help="train the synthetic demo models instead (--out = image model; "
                             "the cell model is written beside it as *_cell.pt)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ml.errors import DatasetError

    if args.demo:
        from ml.demo import train_demo_cell_model, train_demo_model

        image_path = train_demo_model(args.out, seed=args.seed, progress=not args.quiet)
        cell_path = train_demo_cell_model(
            args.out.with_name(args.out.stem + "_cell.pt"), seed=args.seed, progress=not args.quiet
        )
        print(json.dumps({"image_model": str(image_path), "cell_model": str(cell_path)}))
        return 0
    if args.data is None:
        raise DatasetError("--data is required (or use --demo)")

    from ml.train import TrainConfig, train, train_cell_model

    config = TrainConfig.from_args(args)
    if args.task == "cell":
        result = train_cell_model(config, pbc_dir=args.pbc, cnmc_dir=args.cnmc)
    else:
        result = train(config)
    print(json.dumps(result.summary(), indent=None), file=sys.stdout)
    return 0
