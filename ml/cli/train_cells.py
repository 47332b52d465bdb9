"""``python -m ml train-cells --data DIR --out MODEL.pt``: the differential cell classifier.

Fits the CELL_TYPES head (see :mod:`ml.celltrain`) on real cells under ``--data``
(``pbc_subset``, ``all4class``, ``cnmc_subset``, ``cbc`` for the scope statistics),
measures the held-out figures the gates read and writes them into the card.
The last line printed is the summary JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train-cells", help="train the differential cell classifier (blasts, hematogones, 8 normal types, artefacts)",
        description="Train the CELL_TYPES classifier on real cells and record its held-out figures in the card.",
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $MARROWFIND_DATA_DIR)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (keep it out of git)")
    parser.add_argument("--input-size", type=int, default=128, help="crop size fed to the backbone")
    parser.add_argument("--all4class-every", type=int, default=6, help="use every Nth all4class train/val image")
    parser.add_argument("--c", type=float, default=0.5, help="inverse L2 strength of the logistic head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from ml.celltrain import train_cell_classifier
    from ml.datapaths import shared_data_dir

    torch.set_num_threads(max(1, args.threads))
    data = args.data or shared_data_dir()
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = train_cell_classifier(data, args.out, input_size=args.input_size, all4_every=args.all4class_every,
                                    c=args.c, seed=args.seed, progress=say)
    print(json.dumps(summary))
    return 0
