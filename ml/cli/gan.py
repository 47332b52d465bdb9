"""``python -m ml gan train|sample``: the small class-conditional DCGAN (64×64)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "gan",
        help="train or sample the class-conditional GAN",
        description="A small DCGAN conditioned on the class, 64x64, for topping up minority classes.",
    )
    gan_sub = parser.add_subparsers(dest="gan_command", required=True)

    train = gan_sub.add_parser("train", help="train the cGAN on a data folder")
    train.add_argument("--data", type=Path, required=True)
    train.add_argument("--layout", choices=("imagefolder", "cnmc"), default="imagefolder")
    train.add_argument("--out", type=Path, required=True, help="GAN checkpoint to write (GAN.pt)")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-4)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit-per-class", type=int, default=None)
    train.add_argument("--grid-dir", type=Path, default=None,
                       help="write a sample-grid PNG per class here (default: beside --out)")
    train.add_argument("--device", default=None)
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=run_train)

    sample = gan_sub.add_parser("sample", help="write N generated images of one class")
    sample.add_argument("--model", type=Path, required=True)
    sample.add_argument("--class", dest="class_name", required=True)
    sample.add_argument("--n", type=int, default=16)
    sample.add_argument("--out", type=Path, required=True, help="output folder for PNGs")
    sample.add_argument("--size", type=int, default=None, help="resize samples to this side (default 64)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--grid", action="store_true", help="also write grid.png")
    sample.set_defaults(func=run_sample)

    ablation = gan_sub.add_parser(
        "ablation", help="train the classifier twice on one split (--balance weights vs gan), compare on test")
    ablation.add_argument("--data", type=Path, required=True)
    ablation.add_argument("--layout", choices=("imagefolder", "cnmc"), default="imagefolder")
    ablation.add_argument("--out", type=Path, required=True, help="folder for the two checkpoints")
    ablation.add_argument("--arch", default="efficientnet_lite0")
    ablation.add_argument("--weights", default="imagenet", help="imagenet | PATH | none")
    ablation.add_argument("--img-size", type=int, default=None)
    ablation.add_argument("--epochs", type=int, default=10)
    ablation.add_argument("--gan-epochs", type=int, default=30)
    ablation.add_argument("--gan-model", type=Path, default=None, help="use this cGAN instead of training one")
    ablation.add_argument("--batch-size", type=int, default=32)
    ablation.add_argument("--limit-per-class", type=int, default=None)
    ablation.add_argument("--seed", type=int, default=0)
    ablation.add_argument("--seeds", type=int, nargs="+", default=None,
                          help="repeat over these seeds (own split rotation and cGAN each) and report "
                               "mean ± sd; 'helped' only if the mean kappa gain exceeds its sd")
    ablation.add_argument("--device", default=None)
    ablation.add_argument("--json", type=Path, default=None)
    ablation.add_argument("--quiet", action="store_true")
    ablation.set_defaults(func=run_ablation)

    measure = gan_sub.add_parser(
        "measure", help="classification accuracy score and per-class feature distances of a trained cGAN")
    measure.add_argument("--model", type=Path, required=True, help="GAN checkpoint (from gan train)")
    measure.add_argument("--data", type=Path, required=True, help="the data folder it was trained on")
    measure.add_argument("--layout", choices=("imagefolder", "cnmc"), default="imagefolder")
    measure.add_argument("--n-per-class", type=int, default=200, help="synthetic images per class")
    measure.add_argument("--arch", default="efficientnet_lite0", help="feature backbone and CAS classifier")
    measure.add_argument("--cas-epochs", type=int, default=3)
    measure.add_argument("--limit-per-class", type=int, default=None,
                         help="as given to gan train (the split must be the same)")
    measure.add_argument("--seed", type=int, default=0)
    measure.add_argument("--device", default=None)
    measure.add_argument("--json", type=Path, default=None)
    measure.add_argument("--quiet", action="store_true")
    measure.set_defaults(func=run_measure)
    return parser


def run_measure(args: argparse.Namespace) -> int:
    from ml.gan import gan_measures

    result = gan_measures(args.model, args.data, layout=args.layout, n_per_class=args.n_per_class,
                          arch=args.arch, cas_epochs=args.cas_epochs, limit_per_class=args.limit_per_class,
                          seed=args.seed, device=args.device, progress=not args.quiet)
    _write(result, args.json)
    return 0


def _write(result: dict, path: Path | None) -> None:
    text = json.dumps(result)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)


def run_train(args: argparse.Namespace) -> int:
    from ml.gan import train_gan, write_class_grids

    path = train_gan(
        args.data,
        args.out,
        layout=args.layout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        limit_per_class=args.limit_per_class,
        device=args.device,
        progress=not args.quiet,
    )
    grid_dir = args.grid_dir or args.out.with_suffix("").parent / (args.out.stem + "_grids")
    grids = write_class_grids(path, grid_dir, seed=args.seed)
    print(json.dumps({"gan": str(path), "grids": [str(g) for g in grids]}))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from ml.gan import load_gan, save_samples

    gan = load_gan(args.model)
    written = save_samples(gan, args.class_name, args.n, args.out, seed=args.seed,
                           size=args.size, grid=args.grid)
    print(json.dumps({"class": args.class_name, "n": len(written), "out": str(args.out)}))
    return 0


def run_ablation(args: argparse.Namespace) -> int:
    from ml.gan import gan_ablation, gan_ablation_seeds

    weights = None if str(args.weights).lower() == "none" else args.weights
    kwargs = {"layout": args.layout, "arch": args.arch, "weights": weights, "img_size": args.img_size,
              "epochs": args.epochs, "gan_epochs": args.gan_epochs, "gan_model": args.gan_model,
              "batch_size": args.batch_size, "limit_per_class": args.limit_per_class, "device": args.device,
              "progress": not args.quiet}
    if args.seeds:
        result = gan_ablation_seeds(args.data, args.out, seeds=args.seeds, **kwargs)
    else:
        result = gan_ablation(args.data, args.out, seed=args.seed, **kwargs)
    _write(result, args.json)
    return 0
