"""Training loop for Marrow-Find classifiers: honest splits, augmentation, balance, early stopping.

``train(TrainConfig(...))`` is what ``python -m ml train`` runs:

1. index the data (:mod:`ml.datasets`) and split it *by patient* (C-NMC) or into *contiguous
   blocks of file numbers* (Taleqani), because neighbouring Taleqani images come from one slide
   and a random split lets the model recognise the slide instead of the disease;
2. build the model (:func:`ml.models.build_model`), with the ALL-vs-normal head trained jointly
   when the classes map onto it (``SUBTYPE_BINARY_MAP``);
3. train with stain/colour augmentation (:mod:`ml.augment`), the chosen class-balance remedy,
   autocast (bf16 on CPUs that do it natively, fp16/bf16 on CUDA), and early stopping on the
   validation Cohen's kappa (kappa, unlike accuracy, is not flattered by the majority class);
4. save the best epoch as a checkpoint whose card holds the split (file lists), the data summary,
   the per-epoch history and the validation metrics; a ``.state.pt`` file beside it allows
   ``--resume``.

:func:`train_cell_model` trains the blast-or-not cell model from segmented white-cell crops.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from ml.augment import eval_transform, train_transform
from ml.datasets import (
    DatasetIndex,
    LabelledImages,
    Split,
    samples_to_dataset,
    scan_dataset,
    split_dataset,
)
from ml.errors import CheckpointError, DatasetError
from ml.labels import CELL_CLASSES, SUBTYPE_BINARY_MAP, SUBTYPES
from ml.metrics import binary_summary, compute_metrics, kappa_score

BALANCES = ("none", "weights", "sampler", "gan")
BINARY_LOSS_WEIGHT = 0.5  # the subtype head is the main task; the ALL-vs-normal head rides along


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the card, so a run can be repeated)."""

    data: Path | None = None
    out: Path = Path("model.pt")
    layout: str = "imagefolder"
    task: str = "image"
    arch: str = "efficientnet_lite0"
    split: str = "auto"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    img_size: int | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balance: str = "weights"
    gan_model: Path | None = None
    gan_epochs: int = 30
    weights: str | None = "imagenet"
    binary_head: bool = True
    seed: int = 0
    resume: Path | None = None
    patience: int = 5
    workers: int = 0
    limit_per_class: int | None = None
    curve: Path | None = None
    device: str | None = None
    precision: str = "auto"
    progress: bool = True
    demo: bool = False
    class_names: list[str] | None = None
    time_budget_s: float | None = None
    backbone_lr_scale: float = 0.1
    crop_scale: tuple[float, float] = (0.7, 1.0)  # RandomResizedCrop area range: mild, cell size is a cue
    pixels_per_micron: float | None = None  # --task cell: segmentation scale (None = estimate per image)
    save_state: bool = True  # write <out>.state.pt after every epoch (for --resume after a crash)
    data_label: str | None = None  # replaces the data root in the card (e.g. a temporary synthetic set)
    stain_jitter: bool = True
    folds: int | None = None  # k-fold over contiguous blocks: test = block ``fold`` of ``folds``
    fold: int = 0
    background: str = "none"  # "randomise": white cells pasted on other/synthetic backgrounds
    segmented: Path | None = None  # white-cell masks for --background (default <data>_segmented)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        weights = None if str(args.weights).lower() in ("none", "") else args.weights
        return cls(
            data=args.data, out=args.out, layout=args.layout, task=args.task, arch=args.arch,
            split=args.split, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
            img_size=args.img_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, balance=args.balance, gan_model=args.gan_model,
            gan_epochs=args.gan_epochs, time_budget_s=args.time_budget,
            weights=weights, binary_head=not args.no_binary_head, seed=args.seed,
            resume=args.resume, patience=args.patience, workers=args.workers,
            limit_per_class=args.limit_per_class, curve=args.curve, device=args.device,
            precision=args.precision, progress=not args.quiet, pixels_per_micron=args.pixels_per_micron,
            folds=args.folds, fold=args.fold, background=args.background, segmented=args.segmented,
        )

    def to_card(self) -> dict:
        """JSON-friendly copy (paths as strings) for ``card.training['config']``."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class TrainResult:
    checkpoint: Path
    sha256: str
    metrics: dict
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    split_sizes: dict[str, int]
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "sha256": self.sha256,
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "split_sizes": self.split_sizes,
            "val_metrics": {k: v for k, v in self.metrics.items() if not isinstance(v, (dict, list))},
            **self.extra,
        }


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def state_path_for(checkpoint: Path) -> Path:
    """Where the resumable optimiser state of ``checkpoint`` lives (``model.pt`` -> ``model.state.pt``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".state.pt")


# --------------------------------------------------------------------------- core loop

def training_precision(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype for *training* (``None`` = fp32).

    ``auto``: on CUDA, bf16 where supported else fp16 (with a GradScaler); on the CPU, bf16 only
    where the CPU has AMX tiles. CPUs with AVX512-BF16 but no AMX run bf16 *training* slower than
    fp32 (measured here, one thread, batch 16 at 224 px: efficientnet_lite0 0.176 vs 0.092 s/img,
    resnet50 0.363 vs 0.263 s/img), although bf16 *inference* pays off on them (ml.device).
    Any explicit choice (``bf16``, ``fp16``, ``fp32``) is honoured through ml.device's rules.
    """
    from ml.device import resolve_precision

    if precision == "auto" and device.type == "cpu":
        amx = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
        try:
            has_amx = bool(amx()) if amx is not None else False
        except RuntimeError:
            has_amx = False
        return torch.bfloat16 if has_amx else None
    return resolve_precision(device, precision)


def _binary_targets(labels: torch.Tensor, class_names: Sequence[str],
                    binary_map: dict[str, int]) -> torch.Tensor:
    lookup = torch.tensor([binary_map[name] for name in class_names], device=labels.device)
    return lookup[labels]


def build_lr_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                       ) -> tuple[torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """torch's own schedulers, stepped once per batch: linear warm-up (``LinearLR``) over
    ``warmup_steps``, then cosine decay (``CosineAnnealingLR``) to zero at ``total_steps``, chained
    by ``SequentialLR``. Returns (the scheduler to step, its cosine part, which
    :func:`shorten_cosine` re-targets when a time budget cuts the run short)."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    warmup_steps = max(1, int(warmup_steps))
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps)
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=0.0)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps]), cosine


def shorten_cosine(cosine: torch.optim.lr_scheduler.CosineAnnealingLR, total_steps: int,
                   warmup_steps: int) -> None:
    """Make the cosine part end at ``total_steps`` instead (never before the step it has reached).

    ``CosineAnnealingLR.step`` is recursive (each rate derives from the previous one), so a new
    ``T_max`` continues the curve from the current rate and reaches ``eta_min`` at the new end.
    """
    cosine.T_max = max(1, cosine.last_epoch, total_steps - max(1, int(warmup_steps)))


def planned_epochs(epochs_done: int, epoch_seconds: float, seconds_left: float, max_epochs: int) -> int:
    """How many epochs a run will reach: those done plus those that fit in the time left."""
    if epoch_seconds <= 0:
        return max_epochs
    return max(epochs_done, min(max_epochs, epochs_done + int(seconds_left // epoch_seconds)))


@torch.no_grad()
def predict_loader(model: nn.Module, loader: DataLoader, device: torch.device,
                   dtype: torch.dtype | None, *, progress: bool = False,
                   desc: str = "eval") -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(main-head probabilities (N, K), binary-head P(ALL) (N,) or None, labels (N,))."""
    from tqdm.auto import tqdm

    from ml.device import autocast

    model.eval()
    probs, binary, labels = [], [], []
    for images, target in tqdm(loader, desc=desc, leave=False, disable=not progress):
        images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits, binary_logits = model.forward_both(images)
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        if binary_logits is not None:
            binary.append(torch.softmax(binary_logits.float(), dim=1)[:, 1].cpu())
        labels.append(target)
    prob_arr = torch.cat(probs).numpy()
    binary_arr = torch.cat(binary).numpy() if binary else None
    return prob_arr, binary_arr, torch.cat(labels).numpy()


def class_weights(labels: Sequence[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1 (so the loss scale does not move)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(weights / weights[weights > 0].mean(), dtype=torch.float32)


FINE_TUNE_BN_MOMENTUM = 0.1


def adapt_batchnorm_momentum(model: nn.Module, momentum: float = FINE_TUNE_BN_MOMENTUM) -> int:
    """Raise slow BatchNorm running-stat momenta (EfficientNet-Lite's TF port uses 0.01) to 0.1.

    Smear images have very different channel statistics from ImageNet. In training mode BatchNorm
    normalises with batch statistics, in eval mode with its running averages; at momentum 0.01
    those averages are still two-thirds ImageNet after 40 steps, so validation sees differently
    normalised features than training did. Measured on all4class (60 per class, 224 px, 4 epochs,
    efficientnet_lite0 ImageNet, contiguous split): validation accuracy 0.30 after epoch 4 at 0.01
    (a logistic regression on the same frozen features: 0.93), 0.95 at 0.1. Returns how many layers
    were changed.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None \
                and module.momentum < momentum:
            module.momentum = momentum
            changed += 1
    return changed


def balanced_sampler(labels: Sequence[int], n_classes: int,
                     generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draw with replacement so every class is equally likely per draw (epoch length unchanged)."""
    per_class = class_weights(labels, n_classes).numpy()
    sample_w = torch.tensor([per_class[y] for y in labels], dtype=torch.double)
    return WeightedRandomSampler(sample_w, num_samples=len(labels), replacement=True, generator=generator)


def fit(
    model: nn.Module,
    train_ds: LabelledImages,
    val_ds: LabelledImages,
    config: TrainConfig,
    *,
    class_names: Sequence[str],
    binary_map: dict[str, int] | None,
    pretrained: bool,
    resume_state: dict | None = None,
    state_path: Path | None = None,
    extra_state: dict | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> dict:
    """Train ``model`` in place (ending on its best epoch's weights).

    Returns ``{history, best_epoch, stopped_early, val (metrics of the best epoch), device,
    precision, seconds}``.

    The best epoch (highest validation kappa, ties broken by lower validation loss) is the one
    kept. After every epoch the full state is written to ``state_path`` for ``--resume``.
    """
    from sklearn.metrics import accuracy_score, f1_score
    from tqdm.auto import tqdm

    from ml.device import autocast, precision_name, select_device

    generator = seed_everything(config.seed)
    device = select_device(config.device)
    dtype = training_precision(device, config.precision)
    model.to(device).to(memory_format=torch.channels_last)
    adapt_batchnorm_momentum(model)
    n_classes = len(class_names)

    sampler = None
    loss_weights = None
    if config.balance == "sampler":
        sampler = balanced_sampler(train_ds.labels, n_classes, generator)
    elif config.balance == "weights":
        loss_weights = class_weights(train_ds.labels, n_classes).to(device)
    criterion = nn.CrossEntropyLoss(weight=loss_weights)
    binary_criterion = nn.CrossEntropyLoss()

    loader_kw: dict = {"num_workers": config.workers, "persistent_workers": config.workers > 0,
                       "pin_memory": device.type == "cuda"}
    train_loader = DataLoader(train_ds, batch_size=config.batch_size, shuffle=sampler is None,
                              sampler=sampler, drop_last=len(train_ds) > config.batch_size,
                              generator=generator, **loader_kw)
    val_loader = DataLoader(val_ds, batch_size=config.batch_size * 2, shuffle=False, **loader_kw)

    backbone = list(model.features.parameters())
    backbone_ids = {id(p) for p in backbone}
    heads = [p for p in model.parameters() if id(p) not in backbone_ids]
    # Pretrained: the backbone moves slower than the new heads, so ImageNet features are refined
    # rather than overwritten in the first noisy steps.
    backbone_lr = config.lr * (config.backbone_lr_scale if pretrained else 1.0)
    optimizer = torch.optim.AdamW(
        [{"params": backbone, "lr": backbone_lr}, {"params": heads, "lr": config.lr}],
        lr=config.lr, weight_decay=config.weight_decay,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and dtype == torch.float16)

    steps_per_epoch = max(1, len(train_loader))
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(100, max(1, total_steps // 10))
    scheduler, cosine = build_lr_scheduler(optimizer, total_steps, warmup_steps)
    schedule_start = 0  # the global step at which the current scheduler began
    history: list[dict] = []
    best = {"kappa": -math.inf, "val_loss": math.inf, "epoch": 0, "state": None}
    start_epoch, step, bad_epochs = 0, 0, 0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        if "optimizer" in resume_state:  # a state file; a finished checkpoint starts a new optimiser
            optimizer.load_state_dict(resume_state["optimizer"])
        history = list(resume_state["history"])
        start_epoch = int(resume_state["epoch"])
        step = int(resume_state.get("step", start_epoch * steps_per_epoch))
        bad_epochs = int(resume_state["bad_epochs"])
        best = {"kappa": float(resume_state["best_kappa"]), "val_loss": float(resume_state["best_val_loss"]),
                "epoch": int(resume_state["best_epoch"]), "state": resume_state["best_state"]}
        if "scheduler" in resume_state:
            scheduler.load_state_dict(resume_state["scheduler"])
        else:  # a finished checkpoint (or an old state file): a fresh schedule over the epochs left
            for group, base in zip(optimizer.param_groups, (backbone_lr, config.lr)):
                group["lr"] = group["initial_lr"] = base
            left = steps_per_epoch * max(1, config.epochs - start_epoch)
            warmup_steps = min(warmup_steps, max(1, left // 10))
            scheduler, cosine = build_lr_scheduler(optimizer, left, warmup_steps)
            schedule_start = step

    started = time.monotonic()
    stopped_early = False
    say = (lambda msg: print(msg, file=sys.stderr)) if config.progress else (lambda msg: None)
    say(f"training {config.arch} on {device} ({precision_name(dtype)}), {len(train_ds)} train / "
        f"{len(val_ds)} val images, {config.epochs} epochs")
    for epoch in range(start_epoch, config.epochs):
        model.train()
        running, seen = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                   disable=not config.progress)
        for images, labels in bar:
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            labels = labels.to(device, non_blocking=True)
            with autocast(device, dtype):
                logits, binary_logits = model.forward_both(images)
                loss = criterion(logits.float(), labels)
                if binary_logits is not None and binary_map:
                    loss = loss + BINARY_LOSS_WEIGHT * binary_criterion(
                        binary_logits.float(), _binary_targets(labels, class_names, binary_map))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            running += float(loss.detach()) * len(labels)
            seen += len(labels)
            bar.set_postfix(loss=f"{running / max(seen, 1):.4f}")
        train_loss = running / max(seen, 1)

        probs, _, y_val = predict_loader(model, val_loader, device, dtype, progress=config.progress,
                                         desc="validate")
        y_pred = probs.argmax(1)
        val_loss = float(nn.functional.nll_loss(
            torch.log(torch.from_numpy(probs).clamp_min(1e-8)), torch.from_numpy(y_val).long()))
        kappa = kappa_score(y_val, y_pred)
        record = {
            "epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
            "val_accuracy": float(accuracy_score(y_val, y_pred)), "val_kappa": kappa,
            "val_f1_weighted": float(f1_score(y_val, y_pred, average="weighted", zero_division=0)),
            "lr": optimizer.param_groups[-1]["lr"], "elapsed_s": round(time.monotonic() - started, 2),
        }
        history.append(record)
        improved = kappa > best["kappa"] + 1e-6 or (
            abs(kappa - best["kappa"]) <= 1e-6 and val_loss < best["val_loss"])
        if improved:
            best = {"kappa": kappa, "val_loss": val_loss, "epoch": epoch + 1,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            bad_epochs = 0
        else:
            bad_epochs += 1
        say(f"epoch {epoch + 1}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
            f"val acc {record['val_accuracy']:.4f}, val kappa {kappa:.4f}"
            + (" *" if improved else ""))
        if state_path is not None:
            torch.save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": history, "epoch": epoch + 1, "step": step, "bad_epochs": bad_epochs,
                "best_kappa": best["kappa"], "best_val_loss": best["val_loss"],
                "best_epoch": best["epoch"], "best_state": best["state"], **(extra_state or {}),
            }, state_path)
        if on_epoch_end is not None:
            on_epoch_end(record)
        if bad_epochs >= config.patience:
            say(f"early stop: no kappa gain for {config.patience} epochs (best epoch {best['epoch']})")
            stopped_early = True
            break
        if config.time_budget_s is not None:
            elapsed = time.monotonic() - started
            epoch_seconds = elapsed / (epoch + 1 - start_epoch)
            if elapsed + epoch_seconds > config.time_budget_s:
                say(f"time budget of {config.time_budget_s:.0f} s: no room for another "
                    f"{epoch_seconds:.0f} s epoch after epoch {epoch + 1}")
                stopped_early = True
                break
            # Shrink the cosine schedule to the epochs that fit, so the rate has decayed by the
            # last epoch the budget allows instead of being cut off at a high rate.
            fits = steps_per_epoch * planned_epochs(epoch + 1, epoch_seconds,
                                                    config.time_budget_s - elapsed, config.epochs)
            if fits < total_steps:
                total_steps = fits
                shorten_cosine(cosine, total_steps - schedule_start, warmup_steps)

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    if state_path is not None:
        # The run finished (or stopped on purpose): the checkpoint now holds the best weights and
        # --resume continues from it. The state file (4x the model) only survives interruptions.
        Path(state_path).unlink(missing_ok=True)
    probs, binary_probs, y_val = predict_loader(model, val_loader, device, dtype, desc="validate")
    val_metrics = compute_metrics(y_val, probs, class_names)
    if binary_probs is not None and binary_map:
        val_metrics["binary"] = binary_summary(y_val, binary_probs, class_names, binary_map)
    val_metrics["split"] = "val"
    return {"history": history, "best_epoch": best["epoch"], "stopped_early": stopped_early,
            "val": val_metrics, "device": str(device), "precision": precision_name(dtype),
            "seconds": round(time.monotonic() - started, 1)}


def plot_curve(history: list[dict], path: Path, title: str = "") -> Path:
    """Loss and validation accuracy/kappa per epoch, as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.legend()
    ax_score.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="val accuracy")
    ax_score.plot(epochs, [h["val_kappa"] for h in history], marker="o", label="val kappa")
    ax_score.set_xlabel("epoch")
    ax_score.set_ylim(min(0.0, *(h["val_kappa"] for h in history)), 1.0)
    ax_score.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- image task

def _binary_map_for(class_names: Sequence[str], enabled: bool) -> dict[str, int] | None:
    """The ALL-vs-normal head applies when the classes are the Taleqani subtypes."""
    if enabled and set(class_names) == set(SUBTYPES):
        return dict(SUBTYPE_BINARY_MAP)
    return None


def _weights_arg(weights: str | Path | None) -> str | Path | None:
    if weights is None or str(weights).lower() in ("none", ""):
        return None
    return weights


def _load_resume(config: TrainConfig) -> tuple[dict | None, dict | None]:
    """(resume state or None, stored split dict or None) for ``config.resume``.

    Prefers the ``.state.pt`` file written after every epoch (optimiser, history, best weights
    and the split: an interrupted run has no final checkpoint yet). Without it, a finished
    checkpoint is continued from its weights, history and split with a fresh optimiser;
    ``epochs`` is the total, so ``--resume m.pt --epochs 20`` after 10 epochs trains 10 more.
    """
    if config.resume is None:
        return None, None
    resume = Path(config.resume)
    state_file = resume if resume.name.endswith(".state.pt") else state_path_for(resume)
    if state_file.is_file():
        try:
            state = torch.load(state_file, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot resume from {state_file}: {exc}") from exc
        return state, state.get("split")
    if not resume.is_file():
        raise CheckpointError(f"cannot resume: neither {state_file} nor {resume} exists")
    from ml.checkpoint import load_checkpoint

    model, card = load_checkpoint(resume)
    if card.arch != config.arch:
        raise CheckpointError(f"cannot resume a {card.arch} checkpoint as --arch {config.arch}")
    history = list(card.training.get("history", []))
    best = max(history, key=lambda h: h["val_kappa"]) if history else None
    weights = {k: v for k, v in model.state_dict().items()}
    state = {
        "from_checkpoint": True, "model": weights, "history": history, "epoch": len(history),
        "best_state": weights, "best_kappa": best["val_kappa"] if best else -math.inf,
        "best_val_loss": best["val_loss"] if best else math.inf,
        "best_epoch": int(card.training.get("best_epoch", len(history))), "bad_epochs": 0,
    }
    return state, card.training.get("split")


def train(config: TrainConfig, *, on_epoch_end: Callable[[dict], None] | None = None) -> TrainResult:
    """Train an image-level classifier from ``config.data`` and write ``config.out``.

    ``on_epoch_end`` receives each epoch's history record (losses, validation metrics), e.g. to
    report progress from a worker; an exception it raises stops the run like an interruption,
    leaving the ``.state.pt`` file for ``resume``.
    """
    if config.task == "cell":
        return train_cell_model(config)
    if config.balance not in BALANCES:
        raise DatasetError(f"unknown balance {config.balance!r}; choose one of {', '.join(BALANCES)}")
    if config.data is None:
        raise DatasetError("no data folder given")
    resume_state, stored_split = _load_resume(config)
    index = scan_dataset(config.data, config.layout, class_names=config.class_names,
                         limit_per_class=config.limit_per_class)
    if stored_split:
        split = Split.from_dict(stored_split, index)
    else:
        split = split_dataset(index, config.split, val_fraction=config.val_fraction,
                              test_fraction=config.test_fraction, seed=config.seed,
                              folds=config.folds, fold=config.fold)
    if not split.val:
        raise DatasetError("the split left no validation images; use more data or a larger --val-fraction")
    return train_on_split(config, index, split, resume_state, on_epoch_end=on_epoch_end)


def train_on_split(config: TrainConfig, index: DatasetIndex, split: Split,
                    resume_state: dict | None = None, *,
                    on_epoch_end: Callable[[dict], None] | None = None) -> TrainResult:
    from ml.models import build_model, imagenet_normalization, input_size_for

    class_names = list(index.class_names)
    binary_map = _binary_map_for(class_names, config.binary_head)
    img_size = config.img_size or input_size_for(config.arch)
    mean, std = imagenet_normalization(config.arch)
    weights = _weights_arg(config.weights)
    model = build_model(config.arch, class_names, binary_map=binary_map, weights=weights)

    train_ds = samples_to_dataset(split.train, class_names,
                                  train_transform(img_size, mean, std, stain_jitter=config.stain_jitter,
                                                  crop_scale=tuple(config.crop_scale)))
    val_ds = samples_to_dataset(split.val, class_names, eval_transform(img_size, mean, std))
    background_info = None
    if config.background == "randomise":
        background_info = attach_background_randomiser(train_ds, split.train, config)
    elif config.background != "none":
        raise DatasetError(f"unknown background recipe {config.background!r}; choose none or randomise")
    gan_topup: dict[str, int] = {}
    balance = config.balance
    if balance == "gan":
        gan_topup = _gan_topup(train_ds, split, class_names, config)
        balance = "none"
    run_config = TrainConfig(**{**asdict(config), "balance": balance})

    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    outcome = fit(model, train_ds, val_ds, run_config, class_names=class_names, binary_map=binary_map,
                  pretrained=weights is not None, resume_state=resume_state,
                  state_path=state_path_for(out) if config.save_state else None,
                  extra_state={"split": split.to_dict()}, on_epoch_end=on_epoch_end)
    data_summary = index.summary()
    if config.data_label:
        data_summary["root"] = config.data_label
    training = {
        "task": "image",
        "data": data_summary,
        "layout": index.layout,
        "split": split.to_dict(),
        "split_method": split.method,
        "split_sizes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "train_counts": dict(Counter(s.label for s in split.train)),
        "gan_topup": gan_topup,
        **({"balance_gan_verdict": _balance_gan_verdict()} if config.balance == "gan" else {}),
        "background": background_info,
        "config": config.to_card(),
        "history": outcome["history"],
        "best_epoch": outcome["best_epoch"],
        "stopped_early": outcome["stopped_early"],
        "device": outcome["device"],
        "precision": outcome["precision"],
        "seconds": outcome["seconds"],
    }
    return save_trained_model(model, config, class_names, binary_map, img_size, training, outcome, task="image")


def _balance_gan_verdict() -> str:
    from ml.gan import BALANCE_GAN_VERDICT

    return BALANCE_GAN_VERDICT


def attach_background_randomiser(train_ds: LabelledImages, samples: Sequence, config: TrainConfig) -> dict:
    """``--background randomise``: the training images' white cells go on other backgrounds.

    Masks come from the segmented view (``config.segmented`` or ``<data>_segmented``) with the
    colour fallback of :func:`ml.background.cell_mask`; only training images are used, as cell
    sources and as donor backgrounds.
    """
    from ml.background import BackgroundRandomiser, default_segmented_root, load_masks

    root = Path(config.segmented) if config.segmented else (
        default_segmented_root(Path(config.data)) if config.data else None)
    images = [train_ds.image(i) for i in range(len(samples))]
    masks, sources = load_masks(images, [s.relpath for s in samples], root)
    randomiser = BackgroundRandomiser(images, masks, seed=config.seed)
    train_ds.remix = randomiser
    return {"recipe": "randomise", "segmented_root": str(root) if root else None, "mask_sources": sources,
            "usable": int(sum(randomiser.usable)), "donor_backgrounds": len(randomiser.backgrounds),
            "p_donor": randomiser.p_donor, "p_synthetic": randomiser.p_synthetic}


def save_trained_model(model: nn.Module, config: TrainConfig, class_names: Sequence[str],
          binary_map: dict[str, int] | None, img_size: int, training: dict, outcome: dict,
          *, task: str) -> TrainResult:
    from ml.checkpoint import ModelCard, save_checkpoint
    from ml.models import imagenet_normalization

    mean, std = imagenet_normalization(config.arch)
    card = ModelCard(
        arch=config.arch, class_names=list(class_names), binary_map=binary_map, input_size=img_size,
        mean=list(mean), std=list(std), task=task, demo=config.demo,
        training=training, metrics=outcome["val"],
    )
    model.to("cpu").to(memory_format=torch.contiguous_format)
    sha = save_checkpoint(config.out, model, card)
    if config.curve is not None and outcome["history"]:
        plot_curve(outcome["history"], config.curve, title=f"{config.arch} ({task})")
    return TrainResult(
        checkpoint=Path(config.out), sha256=sha, metrics=outcome["val"], history=outcome["history"],
        best_epoch=outcome["best_epoch"], stopped_early=outcome["stopped_early"],
        split_sizes=training["split_sizes"],
    )


def _gan_topup(train_ds: LabelledImages, split: Split, class_names: Sequence[str],
               config: TrainConfig) -> dict[str, int]:
    """Add cGAN samples to the *training* set until every class matches the largest one.

    The GAN is loaded from ``config.gan_model`` or trained here on the training split only, so no
    validation or test image ever shapes a generated one.
    """
    from ml.gan import load_gan, sample_images, train_gan_on_items

    if config.gan_model is not None:
        gan = load_gan(config.gan_model)
        if list(gan.class_names) != list(class_names):
            raise DatasetError(f"the GAN's classes {gan.class_names} differ from the data's {class_names}")
    else:
        gan = train_gan_on_items(train_ds.items, train_ds.labels, class_names, seed=config.seed,
                                 epochs=config.gan_epochs, device=config.device, progress=config.progress)
    counts = Counter(train_ds.labels)
    target = max(counts.values())
    topup: dict[str, int] = {}
    for index, name in enumerate(class_names):
        missing = target - counts.get(index, 0)
        if missing <= 0:
            continue
        images = sample_images(gan, name, missing, seed=config.seed + index)
        train_ds.items.extend(images)
        train_ds.labels.extend([index] * len(images))
        topup[name] = len(images)
    return topup


# --------------------------------------------------------------------------- cell task

def crop_white_cells(image: np.ndarray, *, pad: int = 8,
                     pixels_per_micron: float | None = None) -> list[np.ndarray]:
    """White-cell crops of one smear image via ml.segment (the crops the blast model sees at runtime)."""
    from ml.segment import SegmentParams, crop_cells, segment

    result = segment(image, SegmentParams(pixels_per_micron=pixels_per_micron))
    return crop_cells(image, result, kind="wbc", pad=pad)


def _largest_crop_or_whole(image: np.ndarray) -> np.ndarray:
    """For single-cell images (PBC, C-NMC): the largest segmented white cell, else the whole image."""
    crops = crop_white_cells(image)
    if not crops:
        return image
    return max(crops, key=lambda c: c.shape[0] * c.shape[1])


def cell_crops_from_smears(samples: Sequence, blast_classes: Sequence[str], *, progress: bool = True,
                           pixels_per_micron: float | None = None,
                           desc: str = "crop cells") -> tuple[list, list, dict]:
    """Segment each smear image; every white-cell crop takes its image's label (blast or not).

    Returns (crops, labels as CELL_CLASSES indices, {relpath: n_crops}).
    """
    from tqdm.auto import tqdm

    from ml.datasets import load_rgb

    crops: list[np.ndarray] = []
    labels: list[int] = []
    per_image: dict[str, int] = {}
    for sample in tqdm(samples, desc=desc, leave=False, disable=not progress):
        image = load_rgb(sample.path)
        found = crop_white_cells(image, pixels_per_micron=pixels_per_micron)
        per_image[sample.relpath] = len(found)
        label = 1 if sample.label in blast_classes else 0
        crops.extend(found)
        labels.extend([label] * len(found))
    return crops, labels, per_image


def _normal_cells(pbc_dir: Path, *, limit_per_class: int | None, seed: int,
                  progress: bool) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """pbc_subset normal cells (every class) as not_blast crops, split randomly 70/15/15.

    PBC file names carry no patient or slide, so a random split is all that can be done.
    """
    from tqdm.auto import tqdm

    from ml.datasets import load_rgb, scan_imagefolder

    index = scan_imagefolder(pbc_dir, limit_per_class=limit_per_class)
    split = split_dataset(index, "random", seed=seed)
    parts = []
    for part in (split.train, split.val, split.test):
        parts.append([_largest_crop_or_whole(load_rgb(s.path))
                      for s in tqdm(part, desc="crop normal cells", leave=False, disable=not progress)])
    return parts[0], parts[1], parts[2]


def train_cell_model(config: TrainConfig, *, pbc_dir: Path | None = None,
                     cnmc_dir: Path | None = None) -> TrainResult:
    """Blast-or-not model from white-cell crops of an all4class-style imagefolder.

    Crops come from ml.segment, so training sees what inference will see. Each crop takes its
    image's class: Early/Pre/Pro -> blast, Benign -> not_blast (weak labels: a malignant smear can
    hold normal cells too; that is the cost of having no per-cell annotation). ``pbc_dir`` adds
    normal blood cells of every PBC class as not_blast. The split is made on *images* before
    cropping, so crops of one image never straddle train and validation. Where ``cnmc_dir`` (or
    ``<data>/../cnmc_subset``) exists, the model is checked on its real single cells and the result
    goes into the card (``metrics['cnmc_check']``).
    """
    from ml.models import build_model, imagenet_normalization

    if config.data is None:
        raise DatasetError("no data folder given")
    index = scan_dataset(config.data, config.layout, class_names=config.class_names,
                         limit_per_class=config.limit_per_class)
    blast_classes = [name for name in index.class_names if name != "Benign"] \
        if config.layout == "imagefolder" else ["all"]
    split = split_dataset(index, config.split, val_fraction=config.val_fraction,
                          test_fraction=config.test_fraction, seed=config.seed)
    if config.layout == "cnmc":  # already single cells: use the images as they are
        from ml.datasets import load_rgb

        def to_cells(part):
            return ([load_rgb(s.path) for s in part], [1 if s.label == "all" else 0 for s in part])
        train_x, train_y = to_cells(split.train)
        val_x, val_y = to_cells(split.val)
        crops_per_image: dict[str, int] = {}
    else:
        kw = {"progress": config.progress, "pixels_per_micron": config.pixels_per_micron}
        train_x, train_y, c1 = cell_crops_from_smears(split.train, blast_classes, **kw)
        val_x, val_y, c2 = cell_crops_from_smears(split.val, blast_classes, **kw)
        crops_per_image = {**c1, **c2}
    normal_counts = {}
    if pbc_dir is not None:
        pbc_train, pbc_val, _ = _normal_cells(Path(pbc_dir), limit_per_class=config.limit_per_class,
                                              seed=config.seed, progress=config.progress)
        train_x += pbc_train
        train_y += [0] * len(pbc_train)
        val_x += pbc_val
        val_y += [0] * len(pbc_val)
        normal_counts = {"pbc_train": len(pbc_train), "pbc_val": len(pbc_val)}
    for name, ys in (("train", train_y), ("validation", val_y)):
        if len(set(ys)) < 2:
            raise DatasetError(f"the {name} crops hold only one class ({CELL_CLASSES[ys[0]] if ys else 'none'}); "
                               "the segmentation found too few white cells or the data lacks a class")

    img_size = config.img_size or 96
    mean, std = imagenet_normalization(config.arch)
    weights = _weights_arg(config.weights)
    model = build_model(config.arch, CELL_CLASSES, binary_map=None, weights=weights)
    train_ds = LabelledImages(train_x, train_y, train_transform(img_size, mean, std, crop_scale=(0.7, 1.0),
                                                                stain_jitter=config.stain_jitter))
    val_ds = LabelledImages(val_x, val_y, eval_transform(img_size, mean, std))
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    outcome = fit(model, train_ds, val_ds, config, class_names=CELL_CLASSES, binary_map=None,
                  pretrained=weights is not None,
                  state_path=state_path_for(out) if config.save_state else None)
    cnmc = Path(cnmc_dir) if cnmc_dir else Path(config.data).parent / "cnmc_subset"
    if cnmc.is_dir() and config.layout != "cnmc":
        outcome["val"]["cnmc_check"] = check_on_cnmc(model, cnmc, img_size, config)
    training = {
        "task": "cell",
        "data": index.summary(),
        "layout": index.layout,
        "split": split.to_dict(),
        "split_method": split.method,
        "split_sizes": {"train": len(train_x), "val": len(val_x), "test_images": len(split.test)},
        "crops_per_image": crops_per_image,
        "blast_classes": blast_classes,
        "normal_cells": normal_counts,
        "train_counts": dict(zip(CELL_CLASSES, np.bincount(train_y, minlength=2).tolist())),
        "config": config.to_card(),
        "history": outcome["history"],
        "best_epoch": outcome["best_epoch"],
        "device": outcome["device"],
        "precision": outcome["precision"],
        "seconds": outcome["seconds"],
    }
    return save_trained_model(model, config, CELL_CLASSES, None, img_size, training, outcome, task="cell")


def check_on_cnmc(model: nn.Module, cnmc_dir: Path, img_size: int, config: TrainConfig) -> dict:
    """Accuracy of a cell model on the real C-NMC single cells (all = blast, hem = normal)."""
    from ml.datasets import scan_cnmc
    from ml.device import resolve_precision, select_device
    from ml.models import imagenet_normalization

    index = scan_cnmc(cnmc_dir)
    ds = LabelledImages([s.path for s in index.samples],
                        [1 if s.label == "all" else 0 for s in index.samples],
                        eval_transform(img_size, *imagenet_normalization(config.arch)))
    device = select_device(config.device)
    model.to(device)
    probs, _, y = predict_loader(model, DataLoader(ds, batch_size=64), device,
                                 resolve_precision(device, config.precision))
    metrics = compute_metrics(y, probs, CELL_CLASSES)
    return {"n": len(y), "accuracy": metrics["accuracy"], "kappa": metrics["kappa"],
            "f1_weighted": metrics["f1_weighted"], "roc_auc": metrics.get("roc_auc")}

