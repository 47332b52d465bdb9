"""encode_png gives PNG bytes that decode to the same RGB (or gray) pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.overlay import encode_png
from ml.synthetic import make_smear


def test_rgb_round_trip() -> None:
    image = make_smear(6, "Pro", (50, 70)).image
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert decoded.shape == (50, 70, 3)
    assert np.array_equal(decoded, image)  # channel order kept: PNG is lossless


def test_gray_round_trip() -> None:
    gray = np.arange(64 * 32, dtype=np.uint32).reshape(64, 32).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(gray)))), gray)


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 4), np.uint8)])
def test_rejects_other_arrays(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_png(bad)
