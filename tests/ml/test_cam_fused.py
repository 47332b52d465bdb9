"""The CAM building blocks in ml.cam equal Grad-CAM computed the long way with autograd.

Small hand-built networks keep these fast and independent of ml.models;
agreement with the grad-cam library on the real architectures is in
test_cam_matches_library.py.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from ml.cam import (
    activation_gradient_cam,
    cams_to_image_sizes,
    gap_linear_cam,
    normalize_cams,
    pearson_r,
    upsample_cams,
)


def _tiny_backbone(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()
    ).eval()


def _reference_gradcam(fmap: torch.Tensor, head: nn.Module, classes: torch.Tensor) -> torch.Tensor:
    """Textbook Grad-CAM: full autograd graph, channel weight = spatial mean of d logit / d A."""
    fmap = fmap.detach().clone().requires_grad_(True)
    logits = head(fmap)
    maps = []
    for b in range(fmap.shape[0]):
        (grad,) = torch.autograd.grad(logits[b, classes[b]], fmap, retain_graph=True)
        weights = grad[b].mean(dim=(1, 2))
        maps.append(torch.relu((weights[:, None, None] * fmap[b]).sum(0)))
    return torch.stack(maps).detach()


def test_gap_linear_cam_equals_autograd_gradcam_up_to_scale() -> None:
    backbone = _tiny_backbone(0)
    torch.manual_seed(1)
    linear = nn.Linear(16, 5)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
    images = torch.randn(6, 3, 20, 20)
    with torch.no_grad():
        fmap = backbone(images)
    classes = torch.tensor([0, 1, 2, 3, 4, 2])
    fused = normalize_cams(gap_linear_cam(fmap, linear.weight, classes))
    reference = normalize_cams(_reference_gradcam(fmap, head, classes))
    assert reference.flatten(1).amax(1).gt(0).all(), "reference maps must not be empty for this check"
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-4)


def test_activation_gradient_cam_matches_reference_without_parameter_gradients() -> None:
    backbone = _tiny_backbone(2)
    torch.manual_seed(3)
    head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 10 * 10, 12), nn.ReLU(), nn.Linear(12, 4))
    reference_head = nn.Sequential(*[m for m in head])  # same modules, still trainable
    images = torch.randn(4, 3, 20, 20)
    with torch.no_grad():
        fmap = backbone(images)
    classes = torch.tensor([3, 0, 1, 2])
    reference = normalize_cams(_reference_gradcam(fmap, reference_head, classes))
    for p in head.parameters():
        p.grad = None
    head.requires_grad_(False)

    leaf = fmap.detach().requires_grad_(True)
    logits = head(leaf)
    ours = normalize_cams(activation_gradient_cam(leaf, logits, classes))

    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in head.parameters())


def test_activation_gradient_cam_rejects_a_non_leaf_without_grad() -> None:
    fmap = torch.rand(1, 2, 3, 3)
    with pytest.raises(ValueError, match="require grad"):
        activation_gradient_cam(fmap, torch.rand(1, 4), torch.tensor([0]))


def test_normalize_cams_matches_grad_cam_library_scaling() -> None:
    from pytorch_grad_cam.utils.image import scale_cam_image

    rng = np.random.default_rng(0)
    raw = np.maximum(rng.normal(size=(3, 7, 7)).astype(np.float32), 0)
    raw[2] = 0.0  # an empty map stays empty
    ours = normalize_cams(torch.from_numpy(raw)).numpy()
    np.testing.assert_allclose(ours, scale_cam_image(raw), atol=1e-6)
    assert ours[:2].min() == 0.0 and ours[:2].max() == pytest.approx(1.0, abs=1e-6)
    assert not ours[2].any()


def test_upsample_matches_opencv_bilinear_used_by_the_library() -> None:
    rng = np.random.default_rng(1)
    small = rng.random((2, 7, 5), dtype=np.float32)
    ours = upsample_cams(torch.from_numpy(small), (70, 45)).numpy()
    for index in range(2):
        reference = np.clip(cv2.resize(small[index], (45, 70), interpolation=cv2.INTER_LINEAR), 0, 1)
        np.testing.assert_allclose(ours[index], reference, atol=1e-5)


def test_cams_to_image_sizes_gives_each_image_its_own_size_in_order() -> None:
    cams = normalize_cams(torch.rand(4, 7, 7))
    sizes = [(30, 40), (64, 64), (30, 40), (11, 97)]
    out = cams_to_image_sizes(cams, sizes)
    assert [c.shape for c in out] == sizes
    assert all(c.dtype == np.float32 and c.min() >= 0.0 and c.max() <= 1.0 for c in out)
    # the grouping by size must not reorder: each result is the resize of its own map
    for cam, raw, size in zip(out, cams, sizes):
        np.testing.assert_allclose(cam, upsample_cams(raw[None], size)[0].numpy(), atol=1e-6)


def test_pearson_r_agrees_with_numpy_and_handles_constant_maps() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((2, 16, 16))
    assert pearson_r(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert pearson_r(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson_r(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert pearson_r(np.zeros((4, 4)), a[:4, :4]) == 0.0
