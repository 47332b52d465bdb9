"""A small class-conditional DCGAN (64×64) for topping up minority classes, as in the paper.

Generator: noise ⊕ class embedding -> four transposed convolutions -> 64×64 RGB (tanh).
Discriminator: image ⊕ one-hot class planes -> four strided convolutions -> one score; the
DCGAN recipe (BatchNorm, LeakyReLU, Adam 2e-4/β1 0.5, non-saturating loss), plus DiffAugment on
the discriminator's inputs, which is what keeps a GAN from collapsing on a few hundred images.
(A spectral-norm + hinge variant was tried first: after 1500 steps on 336 all4class images its
discriminator was still at chance and every sample of a class was the same image.)

The GAN file is a plain ``torch.save`` dict (state dicts, class names, sizes, history) that loads
with ``weights_only=True``. ``gan_ablation`` trains the classifier twice on *one* split, with and
without the GAN top-up, and reports both test results, so whether the GAN helps is measured
rather than assumed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.errors import CheckpointError, DatasetError

# What the measurements say about --balance gan (README, "The cGAN, measured"); copied into the
# card of every model trained with it. Update only from a new `ml gan ablation --seeds` result.
BALANCE_GAN_VERDICT = (
    "not recommended: no multi-seed ablation has shown a gain beyond its seed-to-seed spread "
    "(one seed, 128 px: delta kappa +0.013, within noise; the 3-seed run did not fit the shared CPU)"
)
GAN_FORMAT = "marrowfind-cgan"
GAN_SIZE = 64
NOISE_DIM = 64


class Generator(nn.Module):
    def __init__(self, n_classes: int, nz: int = NOISE_DIM, ngf: int = 32, embed_dim: int = 32):
        super().__init__()
        self.nz = nz
        self.embed = nn.Embedding(n_classes, embed_dim)

        def up(cin: int, cout: int, first: bool = False) -> list[nn.Module]:
            conv = nn.ConvTranspose2d(cin, cout, 4, 1 if first else 2, 0 if first else 1, bias=False)
            return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.net = nn.Sequential(
            *up(nz + embed_dim, ngf * 8, first=True),   # 4×4
            *up(ngf * 8, ngf * 4),                       # 8×8
            *up(ngf * 4, ngf * 2),                       # 16×16
            *up(ngf * 2, ngf),                           # 32×32
            nn.ConvTranspose2d(ngf, 3, 4, 2, 1),         # 64×64
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(x[:, :, None, None])


class Discriminator(nn.Module):
    """DCGAN discriminator: strided convolutions, BatchNorm from the second layer, LeakyReLU."""

    def __init__(self, n_classes: int, ndf: int = 32):
        super().__init__()
        self.n_classes = n_classes

        def down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
            if norm:
                layers.append(nn.BatchNorm2d(cout))
            return [*layers, nn.LeakyReLU(0.2, inplace=True)]

        self.net = nn.Sequential(
            *down(3 + n_classes, ndf, norm=False),   # 32
            *down(ndf, ndf * 2),                     # 16
            *down(ndf * 2, ndf * 4),                 # 8
            *down(ndf * 4, ndf * 8),                 # 4
            nn.Conv2d(ndf * 8, 1, 4, 1, 0),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        planes = nn.functional.one_hot(labels, self.n_classes).to(images.dtype)
        planes = planes[:, :, None, None].expand(-1, -1, images.shape[2], images.shape[3])
        return self.net(torch.cat([images, planes], dim=1)).flatten()


def _init_weights(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): N(0, 0.02) convolutions, N(1, 0.02) BN scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@dataclass
class ConditionalGAN:
    generator: Generator
    class_names: list[str]
    nz: int = NOISE_DIM
    ngf: int = 32
    ndf: int = 32
    discriminator: Discriminator | None = None
    history: list[dict] = field(default_factory=list)
    training: dict = field(default_factory=dict)

    def class_index(self, name: str) -> int:
        if name not in self.class_names:
            raise DatasetError(f"class {name!r} is not one of the GAN's {self.class_names}")
        return self.class_names.index(name)


# --------------------------------------------------------------------------- data

def _to_gan_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 images -> (N, 3, 64, 64) float in [-1, 1] (area-resized like ml.preprocess)."""
    from ml.preprocess import resize_image

    stack = np.stack([resize_image(image, GAN_SIZE) for image in images])
    return torch.from_numpy(stack).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def diff_augment(images: torch.Tensor, translation: float = 0.125, cutout: float = 0.5) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020, "translation,cutout" policy) for the discriminator's inputs.

    Applied to real *and* generated images, differentiably, so the discriminator cannot simply
    memorise a few hundred training images (the usual way a GAN collapses on small data) while
    the generator still learns the un-augmented distribution. Colour augmentation is left out on
    purpose: stain colour is what the generated smears must get right.
    """
    b, _, h, w = images.shape
    shift = (torch.rand(b, 2, device=images.device) * 2 - 1) * 2 * translation
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    images = nn.functional.grid_sample(images, grid, padding_mode="reflection", align_corners=False)
    ch, cw = int(h * cutout), int(w * cutout)
    ys = torch.randint(0, h - ch + 1, (b, 1, 1), device=images.device)
    xs = torch.randint(0, w - cw + 1, (b, 1, 1), device=images.device)
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    keep = ~(((rows >= ys) & (rows < ys + ch)) & ((cols >= xs) & (cols < xs + cw)))
    return images * keep.unsqueeze(1).to(images.dtype)


def _augment(batch: torch.Tensor) -> torch.Tensor:
    """Flips and 90° rotations: label-preserving for smears, and they quadruple a small set."""
    if torch.rand(()) < 0.5:
        batch = batch.flip(-1)
    if torch.rand(()) < 0.5:
        batch = batch.flip(-2)
    return torch.rot90(batch, int(torch.randint(4, ())), dims=(-2, -1))


# --------------------------------------------------------------------------- training

def train_gan_on_items(
    items: Sequence,
    labels: Sequence[int],
    class_names: Sequence[str],
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 2e-4,
    seed: int = 0,
    device: str | None = None,
    ngf: int = 32,
    ndf: int = 32,
    max_steps: int | None = None,
    progress: bool = True,
) -> ConditionalGAN:
    """Train the cGAN on images (paths or arrays) with integer labels; returns it in memory."""
    from tqdm.auto import tqdm

    from ml.datasets import load_rgb
    from ml.device import select_device

    if len(set(labels)) < 1 or len(items) == 0:
        raise DatasetError("no images to train the GAN on")
    torch.manual_seed(seed)
    dev = select_device(device)
    data = _to_gan_tensor([load_rgb(item) for item in items])
    targets = torch.as_tensor(list(labels), dtype=torch.long)
    n_classes = len(class_names)
    gen = Generator(n_classes, NOISE_DIM, ngf).to(dev)
    disc = Discriminator(n_classes, ndf).to(dev)
    gen.apply(_init_weights)
    disc.apply(_init_weights)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    history: list[dict] = []
    step = 0
    started = time.monotonic()
    batch_size = min(batch_size, len(data))
    for epoch in range(epochs):
        order = torch.randperm(len(data))
        d_sum = g_sum = 0.0
        batches = 0
        bar = tqdm(range(0, len(data) - batch_size + 1, batch_size), desc=f"gan {epoch + 1}/{epochs}",
                   leave=False, disable=not progress)
        for start in bar:
            idx = order[start:start + batch_size]
            real = _augment(data[idx]).to(dev)
            y = targets[idx].to(dev)
            z = torch.randn(len(idx), NOISE_DIM, device=dev)
            fake = gen(z, y)
            real_score = disc(diff_augment(real), y)
            fake_score = disc(diff_augment(fake.detach()), y)
            d_loss = bce(real_score, torch.ones_like(real_score)) + bce(fake_score, torch.zeros_like(fake_score))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_score = disc(diff_augment(fake), y)
            g_loss = bce(g_score, torch.ones_like(g_score))  # non-saturating generator loss
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            d_sum += float(d_loss.detach())
            g_sum += float(g_loss.detach())
            batches += 1
            step += 1
            bar.set_postfix(d=f"{d_sum / batches:.3f}", g=f"{g_sum / batches:.3f}")
            if max_steps is not None and step >= max_steps:
                break
        history.append({"epoch": epoch + 1, "d_loss": d_sum / max(batches, 1), "g_loss": g_sum / max(batches, 1),
                        "elapsed_s": round(time.monotonic() - started, 1)})
        if progress:
            print(f"gan epoch {epoch + 1}: d {history[-1]['d_loss']:.3f} g {history[-1]['g_loss']:.3f}",
                  file=sys.stderr)
        if max_steps is not None and step >= max_steps:
            break
    gen.eval()
    counts = np.bincount(np.asarray(labels), minlength=n_classes).tolist()
    return ConditionalGAN(
        generator=gen.cpu(), discriminator=disc.cpu(), class_names=list(class_names), ngf=ngf, ndf=ndf,
        history=history,
        training={"n_images": len(data), "counts": dict(zip(class_names, counts)), "epochs": len(history),
                  "steps": step, "seed": seed, "batch_size": batch_size, "lr": lr},
    )


def train_gan(
    data: str | Path,
    out: str | Path,
    *,
    layout: str = "imagefolder",
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 2e-4,
    seed: int = 0,
    limit_per_class: int | None = None,
    device: str | None = None,
    ngf: int = 32,
    ndf: int = 32,
    max_steps: int | None = None,
    progress: bool = True,
    train_split_only: bool = True,
) -> Path:
    """Train on a data folder and save to ``out``.

    With ``train_split_only`` (default) the GAN sees only the *training* part of the same split
    ``ml train`` makes with this seed (contiguous/patient), so samples used to top up a classifier
    never carry information from its validation or test images.
    """
    from ml.datasets import scan_dataset, split_dataset

    index = scan_dataset(data, layout, limit_per_class=limit_per_class)
    samples = split_dataset(index, "auto", seed=seed).train if train_split_only else index.samples
    lookup = {name: i for i, name in enumerate(index.class_names)}
    gan = train_gan_on_items([s.path for s in samples], [lookup[s.label] for s in samples],
                             index.class_names, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             device=device, ngf=ngf, ndf=ndf, max_steps=max_steps, progress=progress)
    gan.training.update({"data": str(data), "layout": layout, "train_split_only": train_split_only})
    return save_gan(gan, out)


def save_gan(gan: ConditionalGAN, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "format": GAN_FORMAT, "version": 1, "class_names": list(gan.class_names), "nz": gan.nz,
        "ngf": gan.ngf, "ndf": gan.ndf, "size": GAN_SIZE,
        "generator": gan.generator.state_dict(),
        "discriminator": gan.discriminator.state_dict() if gan.discriminator is not None else None,
        "history": gan.history, "training": gan.training,
    }, path)
    return path


def load_gan(path: str | Path) -> ConditionalGAN:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"GAN file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable GAN file: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != GAN_FORMAT:
        raise CheckpointError(f"{path} is not a Marrow-Find cGAN file")
    gen = Generator(len(data["class_names"]), data["nz"], data["ngf"])
    gen.load_state_dict(data["generator"])
    gen.eval()
    return ConditionalGAN(generator=gen, class_names=list(data["class_names"]), nz=data["nz"],
                          ngf=data["ngf"], ndf=data["ndf"], history=list(data.get("history", [])),
                          training=dict(data.get("training", {})))


# --------------------------------------------------------------------------- sampling

@torch.no_grad()
def sample_images(gan: ConditionalGAN, class_name: str, n: int, *, seed: int = 0,
                  size: int | None = None) -> list[np.ndarray]:
    """``n`` generated H×W×3 uint8 images of one class (64×64, or resized to ``size``)."""
    if n <= 0:
        return []
    label = gan.class_index(class_name)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, gan.nz, generator=generator)
    gan.generator.eval()
    out = gan.generator(z, torch.full((n,), label, dtype=torch.long))
    arrays = ((out.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    images = [np.ascontiguousarray(a) for a in arrays]
    if size is not None and size != GAN_SIZE:
        import cv2

        images = [cv2.resize(a, (size, size), interpolation=cv2.INTER_LINEAR) for a in images]
    return images


def sample_grid(gan: ConditionalGAN, class_name: str, n: int = 16, *, seed: int = 0) -> np.ndarray:
    """A square-ish grid image of ``n`` samples of one class, 2-px white gutters."""
    images = sample_images(gan, class_name, n, seed=seed)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    gutter = 2
    grid = np.full((rows * (GAN_SIZE + gutter) + gutter, cols * (GAN_SIZE + gutter) + gutter, 3), 255,
                   dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        y0, x0 = gutter + r * (GAN_SIZE + gutter), gutter + c * (GAN_SIZE + gutter)
        grid[y0:y0 + GAN_SIZE, x0:x0 + GAN_SIZE] = image
    return grid


def save_samples(gan: ConditionalGAN, class_name: str, n: int, out_dir: str | Path, *, seed: int = 0,
                 size: int | None = None, grid: bool = False) -> list[Path]:
    """Write ``n`` samples as ``<class>-gan-0001.png`` ... (and ``grid.png`` on request)."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, image in enumerate(sample_images(gan, class_name, n, seed=seed, size=size), start=1):
        path = out_dir / f"{class_name}-gan-{i:04d}.png"
        Image.fromarray(image).save(path)
        written.append(path)
    if grid:
        Image.fromarray(sample_grid(gan, class_name, min(n, 64), seed=seed)).save(out_dir / "grid.png")
    return written


def write_class_grids(gan: ConditionalGAN | str | Path, out_dir: str | Path, *, n: int = 16,
                      seed: int = 0) -> list[Path]:
    """One sample-grid PNG per class: ``<out_dir>/grid_<class>.png``."""
    from PIL import Image

    if not isinstance(gan, ConditionalGAN):
        gan = load_gan(gan)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in gan.class_names:
        path = out_dir / f"grid_{name}.png"
        Image.fromarray(sample_grid(gan, name, n, seed=seed)).save(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- ablation

def gan_ablation(
    data: str | Path,
    out_dir: str | Path,
    *,
    layout: str = "imagefolder",
    arch: str = "efficientnet_lite0",
    weights: str | None = "imagenet",
    img_size: int | None = None,
    epochs: int = 10,
    gan_epochs: int = 30,
    batch_size: int = 32,
    limit_per_class: int | None = None,
    seed: int = 0,
    baseline_balance: str = "weights",
    gan_model: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    **train_kwargs,
) -> dict:
    """Does the GAN top-up help? Train twice on the *same* split and compare on its test part.

    Returns ``{"split": ..., "baseline": {balance, test metrics}, "gan": {...},
    "delta_accuracy": gan - baseline, "delta_kappa": ..., "helped": bool}``.
    """
    from torch.utils.data import DataLoader

    from ml.augment import eval_transform
    from ml.datasets import samples_to_dataset, scan_dataset, split_dataset
    from ml.device import resolve_precision, select_device
    from ml.metrics import compute_metrics
    from ml.models import imagenet_normalization, input_size_for
    from ml.train import TrainConfig, predict_loader, train_on_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = scan_dataset(data, layout, limit_per_class=limit_per_class)
    split = split_dataset(index, "auto", seed=seed)
    if not split.test or not split.val:
        raise DatasetError("the ablation needs validation and test images; use more data")
    size = img_size or input_size_for(arch)
    results: dict = {"split": split.method, "split_sizes": {"train": len(split.train), "val": len(split.val),
                                                            "test": len(split.test)}}
    for tag, balance in (("baseline", baseline_balance), ("gan", "gan")):
        config = TrainConfig(
            data=Path(data), out=out_dir / f"ablation_{tag}.pt", layout=layout, arch=arch, weights=weights,
            img_size=size, epochs=epochs, batch_size=batch_size, balance=balance, seed=seed,
            limit_per_class=limit_per_class, device=device, progress=progress,
            gan_model=Path(gan_model) if gan_model else None, gan_epochs=gan_epochs, **train_kwargs,
        )
        result = train_on_split(config, index, split)
        from ml.checkpoint import load_checkpoint

        model, _card = load_checkpoint(result.checkpoint)
        dev = select_device(device)
        model.to(dev)
        test_ds = samples_to_dataset(split.test, index.class_names, eval_transform(size, *imagenet_normalization(arch)))
        probs, _, y = predict_loader(model, DataLoader(test_ds, batch_size=64), dev,
                                     resolve_precision(dev, "auto"))
        metrics = compute_metrics(y, probs, index.class_names)
        results[tag] = {"balance": balance, "checkpoint": str(result.checkpoint),
                        "accuracy": metrics["accuracy"], "kappa": metrics["kappa"],
                        "f1_weighted": metrics["f1_weighted"], "f1_macro": metrics["f1_macro"],
                        "per_class_recall": {k: v["recall"] for k, v in metrics["per_class"].items()}}
    results["delta_accuracy"] = results["gan"]["accuracy"] - results["baseline"]["accuracy"]
    results["delta_kappa"] = results["gan"]["kappa"] - results["baseline"]["kappa"]
    results["helped"] = bool(results["delta_kappa"] > 0)
    return results


def summarise_ablation(per_seed: Sequence[dict]) -> dict:
    """Mean ± sd over seeds of each arm and of the gan − baseline deltas, and the verdict.

    ``helped`` is True only when the mean kappa gain exceeds its own standard deviation over the
    seeds (one sd above zero): a gain smaller than the seed-to-seed spread is not called a gain.
    """
    from ml.metrics import mean_sd

    out: dict = {"seeds": [r.get("seed") for r in per_seed], "n_seeds": len(per_seed)}
    for arm in ("baseline", "gan"):
        for key in ("accuracy", "kappa", "f1_macro"):
            mean, sd = mean_sd([r[arm][key] for r in per_seed])
            out[f"{arm}_{key}_mean"], out[f"{arm}_{key}_sd"] = mean, sd
    for key in ("delta_accuracy", "delta_kappa"):
        mean, sd = mean_sd([r[key] for r in per_seed])
        out[f"{key}_mean"], out[f"{key}_sd"] = mean, sd
    out["helped"] = bool(len(per_seed) >= 2 and out["delta_kappa_mean"] > out["delta_kappa_sd"])
    return out


def gan_ablation_seeds(data: str | Path, out_dir: str | Path, *, seeds: Sequence[int] = (0, 1, 2),
                       **kwargs) -> dict:
    """:func:`gan_ablation` once per seed (each seed: its own split rotation, its own cGAN trained on
    that split's training part, both classifier arms), then :func:`summarise_ablation`."""
    if kwargs.get("gan_model") is not None and len(seeds) > 1:
        raise DatasetError("a fixed --gan-model was trained on one split; the multi-seed ablation trains one per seed")
    per_seed = []
    for seed in seeds:
        result = gan_ablation(data, Path(out_dir) / f"seed{seed}", seed=seed, **kwargs)
        result["seed"] = seed
        per_seed.append(result)
    return {"per_seed": per_seed, **summarise_ablation(per_seed)}


# --------------------------------------------------------------------------- measures

def backbone_features(images: Sequence[np.ndarray], *, arch: str = "efficientnet_lite0",
                      weights: str | None = "imagenet", size: int = 128, batch_size: int = 64,
                      model: nn.Module | None = None) -> np.ndarray:
    """(N, D) pooled features of the pretrained classifier backbone (ImageNet weights, no head).

    Every image is first brought to the GAN's 64×64 and then to ``size``, so real and generated
    images are compared at the GAN's resolution, not penalised for it.
    """
    from ml.models import build_model, imagenet_normalization
    from ml.preprocess import resize_image, to_batch

    if model is None:
        model = build_model(arch, ["a", "b"], weights=weights)
    model.eval()
    mean, std = imagenet_normalization(arch)
    small = [resize_image(np.asarray(image), GAN_SIZE) for image in images]
    rows = []
    with torch.inference_mode():
        for start in range(0, len(small), batch_size):
            batch = to_batch(small[start:start + batch_size], size, mean, std)
            rows.append(model.pooled(model.forward_features(batch)).float().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def feature_distances(real: dict[str, Sequence[np.ndarray]], synthetic: dict[str, Sequence[np.ndarray]],
                      *, reference: dict[str, Sequence[np.ndarray]] | None = None,
                      arch: str = "efficientnet_lite0", weights: str | None = "imagenet", seed: int = 0) -> dict:
    """Per class: Fréchet and kernel distances (FID/KID formulas) between real and synthetic images
    on the pretrained backbone's features. With ``reference`` (other real images of the class,
    e.g. the training split against the test split) the same distances real-vs-real are given as
    the floor a perfect generator would reach on these slides."""
    from ml.metrics import frechet_distance, kernel_distance
    from ml.models import build_model

    model = build_model(arch, ["a", "b"], weights=weights)
    out: dict = {}
    for name, real_images in real.items():
        f_real = backbone_features(real_images, arch=arch, model=model)
        f_fake = backbone_features(synthetic[name], arch=arch, model=model)
        row = {"n_real": len(f_real), "n_synthetic": len(f_fake),
               "fid": frechet_distance(f_real, f_fake), "kid": kernel_distance(f_real, f_fake, seed=seed)}
        if reference is not None and name in reference:
            f_ref = backbone_features(reference[name], arch=arch, model=model)
            row["fid_real_vs_real"] = frechet_distance(f_real, f_ref)
            row["kid_real_vs_real"] = kernel_distance(f_real, f_ref, seed=seed)
        out[name] = row
    return out


def classification_accuracy_score(
    synthetic: dict[str, Sequence[np.ndarray]], test_items: Sequence, test_labels: Sequence[int],
    class_names: Sequence[str], *, arch: str = "efficientnet_lite0", weights: str | None = "imagenet",
    img_size: int = GAN_SIZE, epochs: int = 3, batch_size: int = 32, seed: int = 0, device: str | None = None,
    progress: bool = False, val_share: float = 0.2,
) -> dict:
    """Classification accuracy score (Ravuri & Vinyals 2019): train the classifier on *synthetic
    images only* (a held-out share of them for model selection) and test it on real images.

    A generator whose classes are right scores near a real-trained classifier; one that draws the
    slide backgrounds but not the cells scores near chance."""
    from torch.utils.data import DataLoader

    from ml.augment import eval_transform, train_transform
    from ml.datasets import LabelledImages
    from ml.device import resolve_precision, select_device
    from ml.metrics import compute_metrics
    from ml.models import build_model, imagenet_normalization
    from ml.train import TrainConfig, fit, predict_loader

    rng = np.random.default_rng(seed)
    train_x, train_y, val_x, val_y = [], [], [], []
    for index, name in enumerate(class_names):
        images = list(synthetic[name])
        order = rng.permutation(len(images))
        n_val = max(1, round(val_share * len(images)))
        for rank, i in enumerate(order):
            (val_x if rank < n_val else train_x).append(images[i])
            (val_y if rank < n_val else train_y).append(index)
    mean, std = imagenet_normalization(arch)
    model = build_model(arch, list(class_names), weights=weights)
    config = TrainConfig(arch=arch, img_size=img_size, epochs=epochs, batch_size=batch_size, seed=seed,
                         device=device, progress=progress, balance="none", patience=epochs)
    outcome = fit(model, LabelledImages(train_x, train_y, train_transform(img_size, mean, std)),
                  LabelledImages(val_x, val_y, eval_transform(img_size, mean, std)), config,
                  class_names=list(class_names), binary_map=None, pretrained=weights is not None)
    dev = select_device(device)
    test = LabelledImages(list(test_items), list(test_labels), eval_transform(img_size, mean, std))
    probs, _, y = predict_loader(model.to(dev), DataLoader(test, batch_size=64), dev, resolve_precision(dev, "auto"))
    metrics = compute_metrics(y, probs, class_names)
    return {"cas_accuracy": metrics["accuracy"], "cas_kappa": metrics["kappa"],
            "cas_per_class_recall": {k: v["recall"] for k, v in metrics["per_class"].items()},
            "n_synthetic_train": len(train_x), "n_real_test": len(y), "img_size": img_size,
            "epochs_run": len(outcome["history"])}


def gan_measures(gan: ConditionalGAN | str | Path, data: str | Path, *, layout: str = "imagefolder",
                 split_seed: int | None = None, n_per_class: int = 200, arch: str = "efficientnet_lite0",
                 weights: str | None = "imagenet", cas_epochs: int = 3, limit_per_class: int | None = None,
                 seed: int = 0, device: str | None = None, progress: bool = False) -> dict:
    """Both measures of a trained cGAN on the split it was trained on (its training part is what
    it saw; the test part is held out): per-class feature distances (real test vs synthetic, and
    real test vs real train as the floor) and the classification accuracy score."""
    from ml.datasets import load_rgb, scan_dataset, split_dataset

    if not isinstance(gan, ConditionalGAN):
        gan = load_gan(gan)
    split_seed = int(gan.training.get("seed", 0)) if split_seed is None else split_seed
    index = scan_dataset(data, layout, limit_per_class=limit_per_class)
    split = split_dataset(index, "auto", seed=split_seed)
    lookup = {name: i for i, name in enumerate(gan.class_names)}
    synthetic = {name: sample_images(gan, name, n_per_class, seed=seed + 1000 + i)
                 for i, name in enumerate(gan.class_names)}
    real_test = {name: [load_rgb(s.path) for s in split.test if s.label == name] for name in gan.class_names}
    real_train = {name: [load_rgb(s.path) for s in split.train if s.label == name][:n_per_class]
                  for name in gan.class_names}
    distances = feature_distances(real_test, synthetic, reference=real_train, arch=arch, weights=weights,
                                  seed=seed)
    cas = classification_accuracy_score(
        synthetic, [s.path for s in split.test], [lookup[s.label] for s in split.test], gan.class_names,
        arch=arch, weights=weights, epochs=cas_epochs, seed=seed, device=device, progress=progress)
    return {"split": split.method, "split_seed": split_seed, "n_per_class": n_per_class,
            "feature_backbone": f"{arch} ({weights or 'random'} weights), pooled features at 128 px",
            "feature_distance": distances, **cas}
