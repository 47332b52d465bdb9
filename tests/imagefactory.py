"""Real image files for tests, made here so the tests run on any fresh clone."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def png_bytes(seed: int = 0, size: tuple[int, int] = (64, 64)) -> bytes:
    """A small RGB PNG with seeded content (different seeds -> different hashes)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def smear_png_bytes(seed: int = 0, label: str = "Benign", size: tuple[int, int] = (160, 160)) -> bytes:
    """A synthetic Giemsa-like smear (ml.synthetic) encoded as PNG."""
    from ml.synthetic import make_smear

    smear = make_smear(seed, label=label, size=size)
    buffer = io.BytesIO()
    Image.fromarray(smear.image).save(buffer, format="PNG")
    return buffer.getvalue()


def smear_bytes(seed: int, size: tuple[int, int] = (128, 128)) -> bytes:
    """A synthetic smear PNG (ml.synthetic), distinct per seed; small by default: the pipeline tests run on 2 CPU cores."""
    return smear_png_bytes(seed=seed, size=size)


def smear_like(seed: int, size: int = 160) -> np.ndarray:
    """A small RGB picture that looks like a stained smear: red-cell discs and one to three white cells."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), (236, 226, 232), np.uint8)
    for _ in range(14):
        centre = (int(rng.integers(12, size - 12)), int(rng.integers(12, size - 12)))
        cv2.circle(image, centre, 9, (214, 150, 160), -1, lineType=cv2.LINE_AA)
        cv2.circle(image, centre, 3, (226, 186, 192), -1, lineType=cv2.LINE_AA)
    for row, col in ((0.3, 0.3), (0.7, 0.65), (0.3, 0.72))[: 1 + seed % 3]:
        centre = (int(col * size + rng.integers(-6, 7)), int(row * size + rng.integers(-6, 7)))
        cv2.circle(image, centre, 17, (205, 180, 215), -1, lineType=cv2.LINE_AA)
        cv2.circle(image, centre, 12, (95, 45, 140), -1, lineType=cv2.LINE_AA)
    noise = rng.normal(0, 3, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def gaussian_cam(size: int, seed: int) -> np.ndarray:
    """A class-activation-like map: one smooth blob in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
    return np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size * 0.18) ** 2)))
