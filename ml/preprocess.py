"""Turn H×W×3 uint8 RGB images into the normalised batch tensor a model expects.

Pure functions, shared by inference, training-time evaluation and the
benchmarks so that every path sees identical pixels.

The whole image is resized ("squashed") to ``size × size`` rather than
centre-cropped: a smear field has cells up to its edges, and a crop would
silently drop some of them from the decision and from the Grad-CAM map. The
map is later resized back to the image's own H×W, so it lines up exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class NormalisationSpec(Protocol):
    """What preprocessing needs from a model card (``ml.checkpoint.ModelCard`` fits)."""

    input_size: int
    mean: Sequence[float]
    std: Sequence[float]


def check_image(image: np.ndarray) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``image`` is an H×W×3 uint8 array (as ``load_image`` returns)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a NumPy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image of shape {image.shape}")


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an H×W×3 uint8 image to ``size × size`` (returns the input when already that size).

    Shrinking uses area averaging (anti-aliased, so thin stain detail is not
    aliased away); enlarging uses bilinear interpolation.
    """
    check_image(image)
    height, width = image.shape[:2]
    if height == size and width == size:
        return image
    shrinking = height * width > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interpolation)


def to_batch(
    images: Sequence[np.ndarray],
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    *,
    device: torch.device | str | None = None,
    channels_last: bool = True,
) -> torch.Tensor:
    """Stack images into a normalised float32 ``(B, 3, size, size)`` tensor.

    The NHWC uint8 stack is permuted (not copied) to NCHW, which is exactly
    the channels_last layout, so with ``channels_last=True`` no layout copy is
    made on the way into a channels_last model. Normalisation happens after
    the move to ``device`` so a GPU does that arithmetic.
    """
    if len(images) == 0:
        raise ValueError("no images to preprocess")
    resized = np.stack([resize_image(image, size) for image in images])
    batch = torch.from_numpy(resized)
    if device is not None:
        batch = batch.to(device, non_blocking=True)
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    batch = (batch - mean_t) / std_t
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return batch.contiguous(memory_format=memory_format)


def batch_from_card(
    images: Sequence[np.ndarray],
    card: NormalisationSpec,
    *,
    device: torch.device | str | None = None,
    channels_last: bool = True,
) -> torch.Tensor:
    """:func:`to_batch` with the input size and normalisation stored in a model card."""
    return to_batch(
        images, int(card.input_size), card.mean, card.std, device=device, channels_last=channels_last
    )
