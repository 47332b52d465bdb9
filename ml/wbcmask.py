"""A learned white-cell mask for dense smear fields (a compact U-Net), weakly supervised
by the Taleqani data set's own segmented view.

On dense ALL fields (touching blasts, little background) the colour rules of
:mod:`ml.segment` merge or miss white cells. ``all4class_segmented`` holds every
``all4class`` field with background and red cells blacked out by the data set's
authors; :func:`ml.segment.white_cells_from_masked_view` turns it into a white-cell
mask. This module learns that mask from the raw field, so it can be applied to
fields that have no segmented view (uploads); :func:`ml.segment.segment` then splits
the mask into cells with the same distance-transform watershed as the reference.

The reference is approximate (pale slides are partly blacked out, see DATA.md):
images whose reference mask is nearly empty are left out of training, and the
figures in ``bench/counting.py`` are against this weak reference, not a
pathologist's outlines.

Everything here is plain PyTorch / NumPy; the functions are pure (arrays and
tensors in, arrays and tensors out) except :func:`train_wbc_mask`, which trains.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: The field side the net sees; all4class fields are 224 px. Other frames are resized to it.
INPUT_SIDE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class CompactUNet(nn.Module):
    """A four-level U-Net (Ronneberger et al. 2015) with ``width`` channels at the top.

    About 0.47 M parameters at ``width=16``: runs at a few ms per 224-px field on a CPU.
    Output: one logit per pixel (white cell or not).
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.width = width
        self.enc = nn.ModuleList([_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in (8 * w, 4 * w, 2 * w)])
        self.dec = nn.ModuleList([_block(8 * w, 4 * w), _block(4 * w, 2 * w), _block(2 * w, w)])
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def to_input(rgb: np.ndarray) -> torch.Tensor:
    """An RGB uint8 H×W×3 field as the net's 1×3×224×224 normalised input."""
    t = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0).unsqueeze(0)
    if t.shape[-2:] != (INPUT_SIDE, INPUT_SIDE):
        t = F.interpolate(t, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (t - mean) / std


@torch.inference_mode()
def predict_wbc_probability(model: CompactUNet, rgb: np.ndarray) -> np.ndarray:
    """Per-pixel white-cell probability (float32 H×W, the image's own size)."""
    model.eval()
    device = next(model.parameters()).device
    logits = model(to_input(rgb).to(device))
    h, w = rgb.shape[:2]
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[0, 0].float().cpu().numpy()


@dataclass(frozen=True)
class WbcMask:
    """A loaded white-cell mask model with the threshold its card chose (what the pipeline holds)."""

    model: CompactUNet
    threshold: float
    card: dict

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        return predict_wbc_probability(self.model, rgb)


def load_wbc_mask_model(path: str | Path) -> WbcMask:
    model, card = load_wbc_mask(path)
    return WbcMask(model=model, threshold=float(card.get("threshold", 0.5)), card=card)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class MaskTrainConfig:
    epochs: int = 8
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    seed: int = 0
    colour_jitter: float = 0.08  # per-channel gain/offset range (stain variation)


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (the usual pairing for thin foreground masks)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    dice = (2 * inter + 1.0) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1.0)
    return bce + (1.0 - dice).mean()


def mask_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & ref).sum()) / total


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, quarter turns and a per-channel gain/offset (same geometry for image and mask)."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x, y = torch.rot90(x, k, dims=(2, 3)), torch.rot90(y, k, dims=(2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        x, y = x.flip(3), y.flip(3)
    if jitter > 0:
        n = x.shape[0]
        gain = 1 + (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1) * jitter * 3
        offset = (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1) * jitter * 3
        x = x * gain + offset
    return x, y


def train_wbc_mask(
    images: np.ndarray,
    masks: np.ndarray,
    config: MaskTrainConfig = MaskTrainConfig(),
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CompactUNet, list[dict]]:
    """Train a :class:`CompactUNet` on N×224×224×3 uint8 fields and their N×224×224 bool masks.

    Returns the model (eval mode, on the CPU) and one history row per epoch
    (train loss, and the pooled validation Dice when ``val`` is given).
    """
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = CompactUNet(config.width).to(device)
    x_all = torch.cat([to_input(im) for im in images])
    y_all = torch.from_numpy(np.asarray(masks, np.float32)).unsqueeze(1)
    steps = config.epochs * math.ceil(len(x_all) / config.batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x_all), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            x, y = _augment(x_all[idx], y_all[idx], gen, config.colour_jitter)
            loss = dice_bce_loss(model(x.to(device)), y.to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        row = {"epoch": epoch, "train_loss": round(total / seen, 4), "seconds": round(time.perf_counter() - start, 1)}
        if val is not None:
            model.cpu()
            row["val_dice"] = round(pooled_dice(model, *val), 4)
            model.to(device)
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return model.cpu().eval(), history


def pooled_dice(model: CompactUNet, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], threshold: float = 0.5) -> float:
    inter = total = 0
    for rgb, ref in zip(images, masks):
        pred = predict_wbc_probability(model, rgb) >= threshold
        inter += int((pred & ref).sum())
        total += int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * inter / total


# --------------------------------------------------------------------------- checkpoint

CHECKPOINT_KIND = "marrowfind-wbc-mask"


def save_wbc_mask(model: CompactUNet, path: str | Path, card: dict) -> Path:
    """A checkpoint with the weights and a model card (data, split, figures)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": CHECKPOINT_KIND, "width": model.width, "state_dict": model.state_dict(), "card": card}, path)
    return path


def load_wbc_mask(path: str | Path) -> tuple[CompactUNet, dict]:
    """The model (eval mode, CPU) and its card; a clear error for a file that is not one."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not a white-cell mask checkpoint (kind {CHECKPOINT_KIND!r})")
    model = CompactUNet(int(data["width"]))
    model.load_state_dict(data["state_dict"])
    return model.eval(), dict(data.get("card") or {})



# --------------------------------------------------------------------------- the Taleqani weak labels


def taleqani_samples(data: Path, part: str, seed: int = 0) -> list:
    """``all4class`` samples of one part (train / val / test / trainval) of the project's contiguous split."""
    from ml.datasets import scan_imagefolder, split_dataset

    split = split_dataset(scan_imagefolder(Path(data) / "all4class", verify=False), "contiguous", seed=seed)
    return split.train + split.val if part == "trainval" else split.part(part)


@dataclass(frozen=True)
class MaskPairs:
    images: np.ndarray  # N×224×224×3 uint8
    masks: np.ndarray  # N×224×224 bool, the reference white-cell mask
    counts: np.ndarray  # N, the reference white-cell count
    excluded: int  # images left out: the reference is (nearly) empty


def load_mask_pairs(data: Path, part: str, *, every: int = 1, min_reference_fraction: float = 0.005) -> MaskPairs:
    """Fields of ``all4class`` and their reference masks from ``all4class_segmented`` (every ``every``-th image)."""
    from PIL import Image

    from ml.segment import white_cells_from_masked_view

    images, masks, counts, excluded = [], [], [], 0
    for sample in taleqani_samples(data, part)[:: max(1, every)]:
        with Image.open(Path(data) / "all4class_segmented" / sample.relpath) as view:
            ref_mask, ref_labels = white_cells_from_masked_view(np.asarray(view.convert("RGB")))
        if ref_mask.mean() < min_reference_fraction:
            excluded += 1
            continue
        with Image.open(sample.path) as field:
            rgb = np.asarray(field.convert("RGB").resize((INPUT_SIDE, INPUT_SIDE)))
        if ref_mask.shape != (INPUT_SIDE, INPUT_SIDE):
            ref_mask = np.asarray(Image.fromarray(ref_mask).resize((INPUT_SIDE, INPUT_SIDE), Image.NEAREST))
        images.append(rgb)
        masks.append(ref_mask)
        counts.append(int(ref_labels.max()))
    if not images:
        raise ValueError(f"no all4class {part} image with a usable segmented view under {data}")
    return MaskPairs(np.stack(images), np.stack(masks), np.asarray(counts), excluded)


def count_figures(probabilities: Sequence[np.ndarray], pairs: MaskPairs, threshold: float) -> dict:
    """Pooled Dice and count error of learned masks cut at ``threshold`` against the reference."""
    from ml.segment import white_cells_from_probability

    inter = total = 0
    predicted = []
    for prob, ref in zip(probabilities, pairs.masks):
        mask, labels = white_cells_from_probability(prob, threshold)
        inter += int((mask & ref).sum())
        total += int(mask.sum()) + int(ref.sum())
        predicted.append(int(labels.max()))
    pred = np.asarray(predicted, float)
    err = np.abs(pred - pairs.counts)
    return {
        "threshold": threshold,
        "images": len(pred),
        "dice": round(2 * inter / max(1, total), 4),
        "count_rel_err": round(float(err.sum() / max(1, pairs.counts.sum())), 4),
        "count_bias": round(float((pred - pairs.counts).sum() / max(1, pairs.counts.sum())), 4),
        "count_mae": round(float(err.mean()), 3),
    }


def train_from_taleqani(
    data: Path,
    out: Path,
    config: MaskTrainConfig = MaskTrainConfig(),
    *,
    every: int = 1,
    thresholds: Sequence[float] = (0.4, 0.5, 0.6, 0.7),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train on the contiguous split's train part, pick the threshold with the lowest
    validation count error, and write the checkpoint with its card. Returns the card."""
    say = progress or (lambda _msg: None)
    train = load_mask_pairs(data, "train", every=every)
    val = load_mask_pairs(data, "val")
    say(f"training on {len(train.images)} all4class fields ({train.excluded} left out: empty reference), "
        f"validating on {len(val.images)}")
    model, history = train_wbc_mask(train.images, train.masks, config, val=(val.images, val.masks),
                                    on_epoch=lambda row: say(str(row)))
    probabilities = [predict_wbc_probability(model, rgb) for rgb in val.images]
    by_threshold = [count_figures(probabilities, val, t) for t in thresholds]
    best = min(by_threshold, key=lambda row: (row["count_rel_err"], -row["dice"]))
    card = {
        "task": "wbc-mask",
        "arch": f"compact-unet-{config.width}",
        "trained_on": "all4class (contiguous split, train part) against all4class_segmented "
                      "(ml.segment.white_cells_from_masked_view): weak labels, the data set's own thresholding",
        "train_images": int(len(train.images)),
        "train_excluded_empty_reference": int(train.excluded),
        "every": int(every),
        "config": asdict(config),
        "history": history,
        "threshold": best["threshold"],
        "val": best,
        "val_by_threshold": by_threshold,
        "demo": False,
    }
    save_wbc_mask(model, out, card)
    return card
