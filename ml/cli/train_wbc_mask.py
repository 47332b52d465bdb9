"""``python -m ml train-wbc-mask --out MASK.pt``: the learned white-cell mask (:mod:`ml.wbcmask`).

Trains the compact U-Net on ``all4class`` fields against the data set's own
segmented view (``all4class_segmented``), picks the threshold on the validation
part and writes it with the figures into the checkpoint's card. The last line
printed is the card as JSON. Score it on the test part with
``python bench/counting.py --what taleqani --wbc-mask MASK.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train-wbc-mask", help="train the learned white-cell mask on all4class + its segmented view",
        description="Train the compact U-Net white-cell mask (weak labels: all4class_segmented).",
    )
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $MARROWFIND_DATA_DIR)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (keep it out of git)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=16, help="channels at the top level of the U-Net")
    parser.add_argument("--every", type=int, default=1, help="use every Nth train image (1 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from ml.datapaths import shared_data_dir
    from ml.wbcmask import MaskTrainConfig, train_from_taleqani

    torch.set_num_threads(max(1, args.threads))
    config = MaskTrainConfig(epochs=args.epochs, batch_size=args.batch_size, width=args.width, seed=args.seed)
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    card = train_from_taleqani(args.data or shared_data_dir(), args.out, config, every=args.every, progress=say)
    print(json.dumps({k: v for k, v in card.items() if k != "history"}))
    return 0
