"""Training augmentation (torchvision.transforms.v2) and the perturbations of the robustness check.

Why stain jitter: the Taleqani classes differ in background colour and staining, so a model can
learn the stain instead of the cells. Randomising Haematoxylin/Eosin/DAB densities (HED space,
Tellez et al. 2018) and HSV during training removes that easy cue, and the *same family* of
shifts, applied at evaluation time, measures how much the model still leans on it.

The HED conversion uses scikit-image's stain matrices (``skimage.color.hed_from_rgb`` /
``rgb_from_hed``) applied as torch matrix products, so it runs per batch element at tensor speed
instead of a NumPy round trip.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from skimage import color as skcolor
from torchvision.transforms import v2

from ml.preprocess import IMAGENET_MEAN, IMAGENET_STD, resize_image

_HED_FROM_RGB = torch.tensor(skcolor.hed_from_rgb, dtype=torch.float32)
_RGB_FROM_HED = torch.tensor(skcolor.rgb_from_hed, dtype=torch.float32)
_LOG_ADJUST = float(np.log(1e-6))
# skimage's HED densities are optical densities divided by -log(1e-6) ≈ 13.8, so typical values are
# 0-0.06: a ±30 % scale and ±0.01 shift look like another lab's staining (checked by eye on
# all4class), where ±0.05 turns the image black or yellow.
STAIN_ALPHA = 0.3
STAIN_BETA = 0.01


def rgb_to_hed(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) float RGB in [0, 1] -> (3, H, W) HED stain densities (as skimage.color.rgb2hed)."""
    rgb = image.clamp_min(1e-6)
    od = torch.log(rgb) / _LOG_ADJUST
    stains = torch.einsum("chw,cd->dhw", od, _HED_FROM_RGB.to(image.dtype))
    return stains.clamp_min(0)


def hed_to_rgb(stains: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hed` (as skimage.color.hed2rgb), clipped to [0, 1]."""
    log_rgb = -(stains * -_LOG_ADJUST)
    log_rgb = torch.einsum("chw,cd->dhw", log_rgb, _RGB_FROM_HED.to(stains.dtype))
    return torch.exp(log_rgb).clamp(0, 1)


class HEDJitter(torch.nn.Module):
    """Random per-image scale and shift of each stain channel: ``s' = s·(1+α) + β``."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.01, p: float = 0.8):
        super().__init__()
        self.alpha, self.beta, self.p = alpha, beta, p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not image.is_floating_point():
            raise TypeError("HEDJitter expects a float image in [0, 1] (put it after ToDtype)")
        if torch.rand(()) >= self.p:
            return image
        alpha = 1 + (torch.rand(3, 1, 1) * 2 - 1) * self.alpha
        beta = (torch.rand(3, 1, 1) * 2 - 1) * self.beta
        return hed_to_rgb(rgb_to_hed(image) * alpha + beta)


class RandomRot90(torch.nn.Module):
    """Rotation by a random multiple of 90°: lossless, no filled corners (smears have no 'up')."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.rot90(image, int(torch.randint(4, ())), dims=(-2, -1))


class ResizeLikeInference:
    """uint8 H×W×3 -> size×size via ml.preprocess.resize_image (picklable for DataLoader workers)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return resize_image(image, self.size)


def train_transform(
    img_size: int,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    *,
    stain_jitter: bool = True,
    crop_scale: tuple[float, float] = (0.7, 1.0),
) -> Callable[[np.ndarray], torch.Tensor]:
    """H×W×3 uint8 -> normalised (3, img_size, img_size) float tensor with random augmentation.

    The crop keeps 70-100 % of the area by default: all images of a set are taken at one
    magnification, so absolute cell size is a real cue (blasts are larger) that strong zoom
    augmentation would blur.
    """
    steps: list[Callable] = [
        v2.ToImage(),
        v2.RandomApply([v2.RandomRotation(15)], p=0.3),
        v2.RandomResizedCrop(img_size, scale=crop_scale, ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        RandomRot90(),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if stain_jitter:
        steps += [
            HEDJitter(alpha=STAIN_ALPHA, beta=STAIN_BETA, p=0.8),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.3, hue=0.04),
        ]
    steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


def eval_transform(
    img_size: int, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> Callable[[np.ndarray], torch.Tensor]:
    """Deterministic: the whole image resized exactly as ml.preprocess does for inference, so
    validation metrics during training are the ones a Predictor will reproduce."""
    return v2.Compose([
        ResizeLikeInference(img_size),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ])


# --------------------------------------------------------------------------- perturbations

def _signed(rng: np.random.Generator, magnitude: float, size=None) -> np.ndarray:
    """Values of |x| in [magnitude/2, magnitude] with random sign: a shift that always bites."""
    value = rng.uniform(magnitude / 2, magnitude, size=size)
    return value * rng.choice([-1.0, 1.0], size=size)


def stain_shift(image: np.ndarray, rng: np.random.Generator, alpha: float = STAIN_ALPHA,
                beta: float = STAIN_BETA) -> np.ndarray:
    """Scale the H, E and D stain densities (skimage rgb2hed/hed2rgb) by 1±alpha, shift by ±beta."""
    hed = skcolor.rgb2hed(image)
    hed = hed * (1 + _signed(rng, alpha, 3)) + _signed(rng, beta, 3)
    out = skcolor.hed2rgb(hed)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def colour_shift(image: np.ndarray, rng: np.random.Generator, hue: float = 0.04,
                 saturation: float = 0.25, value: float = 0.15) -> np.ndarray:
    """HSV shift: hue rotation, saturation and brightness scaling, each by a random amount."""
    hsv = skcolor.rgb2hsv(image)
    hsv[..., 0] = (hsv[..., 0] + _signed(rng, hue)) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * (1 + _signed(rng, saturation)), 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] * (1 + _signed(rng, value)), 0, 1)
    return np.clip(skcolor.hsv2rgb(hsv) * 255 + 0.5, 0, 255).astype(np.uint8)


def stain_colour_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Both shifts: another lab's staining and another camera's white balance."""
    return colour_shift(stain_shift(image, rng), rng)


def gaussian_blur(image: np.ndarray, rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    """Slight defocus."""
    import cv2

    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)


def jpeg_recompress(image: np.ndarray, rng: np.random.Generator, quality: int = 30) -> np.ndarray:
    """Re-encode as a low-quality JPEG, as a file passed through e-mail or a PACS export might be."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


# name -> f(image, rng) -> image. "stain_colour" is the one reported as accuracy_shifted.
PERTURBATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "stain_colour": stain_colour_shift,
    "stain": stain_shift,
    "colour": colour_shift,
    "blur": gaussian_blur,
    "jpeg": jpeg_recompress,
}


def perturb_all(images: list[np.ndarray], name: str, seed: int = 0) -> list[np.ndarray]:
    """Apply one named perturbation to every image with a seeded generator (reproducible)."""
    try:
        func = PERTURBATIONS[name]
    except KeyError:
        raise ValueError(f"unknown perturbation {name!r}; one of {', '.join(PERTURBATIONS)}") from None
    rng = np.random.default_rng(seed)
    return [func(image, rng) for image in images]
