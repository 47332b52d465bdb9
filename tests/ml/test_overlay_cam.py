"""cam_overlay blends a jet-coloured map on the image: same size and dtype, hot regions red, cold ones blue."""

from __future__ import annotations

import numpy as np
import pytest

from ml.overlay import cam_overlay
from ml.synthetic import make_smear


def left_hot_cam(shape: tuple[int, int]) -> np.ndarray:
    cam = np.zeros(shape, np.float32)
    cam[:, : shape[1] // 2] = 1.0
    return cam


def test_shape_dtype_and_colours() -> None:
    image = make_smear(1, "Pro", (96, 128)).image
    out = cam_overlay(image, left_hot_cam((96, 128)), alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    hot, cold = out[:, :64].astype(int), out[:, 64:].astype(int)
    assert (hot[..., 0] - hot[..., 2]).mean() > (cold[..., 0] - cold[..., 2]).mean() + 100
    assert not np.shares_memory(out, image)


def test_alpha_zero_is_the_image_and_alpha_one_the_colormap() -> None:
    image = make_smear(2, "Benign", (64, 64)).image
    cam = left_hot_cam((64, 64))
    assert np.array_equal(cam_overlay(image, cam, alpha=0.0), image)
    full = cam_overlay(image, cam, alpha=1.0)
    assert np.array_equal(full[0, 0], [128, 0, 0])  # jet at 1.0 is dark red
    assert np.array_equal(full[0, -1], [0, 0, 128])  # jet at 0.0 is dark blue


def test_cam_of_another_size_is_resized() -> None:
    image = make_smear(3, "Early", (120, 160)).image
    out = cam_overlay(image, left_hot_cam((7, 7)))
    assert out.shape == (120, 160, 3)


@pytest.mark.parametrize(("cam", "alpha"), [(np.zeros((4, 4, 3)), 0.4), (np.zeros((4, 4)), 1.5)])
def test_bad_arguments(cam: np.ndarray, alpha: float) -> None:
    with pytest.raises(ValueError):
        cam_overlay(np.zeros((4, 4, 3), np.uint8), cam, alpha=alpha)
