"""Real image files for tests, made here so the tests run on any fresh clone."""

from __future__ import annotations

import io

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
