"""Class-activation maps: the fused Grad-CAM used in production and the library methods.

Why a fused path: for a head made of global average pooling and one linear
layer (ResNet, EfficientNet), the gradient of logit ``k`` with respect to the
last feature map ``A`` (``C×h×w``) is ``w[k] / (h·w)`` at every position. The
Grad-CAM channel weights (the spatial mean of that gradient) are therefore
``w[k] / (h·w)``, and after the ReLU and the per-image min-max scaling the map
is exactly ``ReLU(Σ_c w[k, c] · A_c)``. That needs no backward pass at all, so
a CAM costs one small einsum on top of the classification forward pass.

For heads that are not linear in the pooled features (VGG16's MLP), the
gradient is computed, but only with respect to the activations: the backbone
runs without autograd, its output becomes a leaf tensor, and only the head is
differentiated. No parameter gradient is ever computed.

The `grad-cam` library (``pytorch_grad_cam``) stays the reference (tests check
agreement) and provides the other methods by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Methods offered by name. "gradcam" is computed here (fused / activation-gradient);
#: the others are delegated to the grad-cam library.
CAM_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "scorecam", "eigencam")

_EPS = 1e-7  # the same epsilon pytorch_grad_cam.utils.image.scale_cam_image uses


def normalize_cams(cams: torch.Tensor) -> torch.Tensor:
    """Scale each map of a ``(B, h, w)`` batch to [0, 1] by its own min and max.

    The same rule as the grad-cam library (``(x - min) / (max - min + 1e-7)``),
    so maps from either source are directly comparable. A map that is all
    zero (the class has no positive evidence anywhere) stays all zero.
    """
    if cams.ndim != 3:
        raise ValueError(f"expected a (B, h, w) batch of maps, got shape {tuple(cams.shape)}")
    cams = cams.float()
    flat = cams.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1)
    cams = cams - low
    high = cams.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return cams / (high + _EPS)


def gap_linear_cam(fmap: torch.Tensor, weight: torch.Tensor, class_indices: torch.Tensor) -> torch.Tensor:
    """Grad-CAM for a global-average-pool + linear head, without a backward pass.

    ``fmap``: ``(B, C, h, w)`` last conv features; ``weight``: ``(K, C)`` weight
    of the linear layer; ``class_indices``: ``(B,)`` class per image. Returns
    the un-normalised ``(B, h, w)`` map ``ReLU(Σ_c weight[k_b, c] · fmap[b, c])``
    in float32 (the einsum is tiny, so fp32 costs nothing and avoids bf16 rounding).
    """
    if fmap.ndim != 4:
        raise ValueError(f"expected a (B, C, h, w) feature map, got shape {tuple(fmap.shape)}")
    class_weights = weight.float()[class_indices.to(weight.device)]  # (B, C)
    cams = torch.einsum("bc,bchw->bhw", class_weights, fmap.float())
    return F.relu(cams)


def activation_gradient_cam(
    fmap_leaf: torch.Tensor, logits: torch.Tensor, class_indices: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM from the gradient with respect to the activations only.

    ``fmap_leaf`` must be a leaf tensor with ``requires_grad=True`` from which
    ``logits`` were computed (backbone run under ``no_grad``, head run with
    autograd and frozen parameters). The selected logits are summed (images
    are independent, so each image's gradient is its own) and differentiated
    with respect to ``fmap_leaf`` alone. Returns the un-normalised ``(B, h, w)``
    map ``ReLU(Σ_c mean_hw(grad_c) · A_c)`` in float32.
    """
    if not fmap_leaf.requires_grad:
        raise ValueError("fmap_leaf must require grad (call .requires_grad_() on the detached feature map)")
    selected = logits.gather(1, class_indices.view(-1, 1).to(logits.device)).sum()
    (grads,) = torch.autograd.grad(selected, fmap_leaf)
    channel_weights = grads.float().mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    cams = (channel_weights * fmap_leaf.detach().float()).sum(dim=1)
    return F.relu(cams)


def upsample_cams(cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize ``(B, h, w)`` maps in [0, 1] to ``size = (H, W)``.

    ``align_corners=False`` matches OpenCV's ``INTER_LINEAR``, which the
    grad-cam library uses, and bilinear interpolation of values in [0, 1]
    stays in [0, 1] (the clamp only removes float round-off).
    """
    resized = F.interpolate(cams.float().unsqueeze(1), size=size, mode="bilinear", align_corners=False)
    return resized.squeeze(1).clamp_(0.0, 1.0)


def cams_to_image_sizes(cams: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Resize normalised ``(B, h, w)`` maps to each image's ``(H, W)``; float32 NumPy per image.

    Images of equal size are resized together in one call (the common case
    for a batch from one microscope).
    """
    if len(sizes) != cams.shape[0]:
        raise ValueError(f"{cams.shape[0]} maps but {len(sizes)} target sizes")
    out: list[np.ndarray | None] = [None] * len(sizes)
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault((int(size[0]), int(size[1])), []).append(index)
    for size, indices in groups.items():
        resized = upsample_cams(cams[indices], size).cpu().numpy().astype(np.float32, copy=False)
        for row, index in enumerate(indices):
            out[index] = resized[row]
    return [cam for cam in out if cam is not None]


def cam_target_layer(model: nn.Module) -> nn.Module:
    """The layer whose output is the CAM feature map: the last block of ``model.features``.

    For a ``Sequential`` backbone that is its last child (its output *is* the
    feature map); otherwise the whole ``features`` module, whose output is the
    same tensor.
    """
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise TypeError("model has no .features module to take the CAM from")
    if isinstance(features, nn.Sequential) and len(features) > 0:
        return features[-1]
    return features


def _library_classes() -> dict[str, type]:
    # Imported lazily: the library pulls in ttach/tqdm/etc. that the fused path never needs.
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM

    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "eigencam": EigenCAM}


def library_cam(
    model: nn.Module,
    batch: torch.Tensor,
    class_indices: Sequence[int] | torch.Tensor,
    method: str = "gradcam",
    *,
    target_layer: nn.Module | None = None,
) -> np.ndarray:
    """CAMs from the grad-cam library: ``(B, S, S)`` float32 in [0, 1] at the batch's input size.

    ``model(batch)`` must return the main-head logits (``MarrowClassifier.forward``
    does). Runs in whatever precision the caller is in; call it outside
    autocast, because the library converts activations to NumPy, which has
    no bfloat16. When the model's parameters are frozen (as in a Predictor),
    the input is made to require grad so the gradient methods still get a
    graph, and parameter gradients are still never computed.
    """
    classes = _library_classes()
    if method not in classes:
        raise ValueError(f"unknown CAM method {method!r}: choose one of {', '.join(classes)}")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    indices = [int(i) for i in (class_indices.tolist() if torch.is_tensor(class_indices) else class_indices)]
    if len(indices) != batch.shape[0]:
        raise ValueError(f"{batch.shape[0]} images but {len(indices)} class indices")
    layer = target_layer if target_layer is not None else cam_target_layer(model)
    batch = batch.detach()
    if not any(p.requires_grad for p in model.parameters()):
        batch = batch.clone().requires_grad_(True)
    targets = [ClassifierOutputTarget(i) for i in indices]
    with torch.enable_grad(), classes[method](model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=batch, targets=targets)
    return np.asarray(maps, dtype=np.float32)


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (flattened); used to compare CAMs with the library."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.std() == 0.0 or b.std() == 0.0:  # corrcoef is undefined for a constant map
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])
