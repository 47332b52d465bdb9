"""Our Grad-CAM (fused for GAP+linear heads, activation-gradient for VGG) matches the grad-cam library.

The library (pytorch_grad_cam.GradCAM on an untouched, trainable fp32 copy
of the same model, target layer = last block of model.features) is the
reference. Agreement is Pearson r >= 0.99 per image for the predicted class,
in fp32, on real images where the data is present and on generated images
everywhere. Images are given at the model's input size so that both maps
are compared pixel for pixel without an extra resize.
"""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ml.cam import library_cam, pearson_r
from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES
from ml.preprocess import batch_from_card, resize_image

MIN_R = 0.99


def _smooth_images(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Seeded smooth colour fields: structure at several scales, unlike white noise."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
        fine = cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
        images.append(((coarse.astype(np.uint16) + fine) // 2).astype(np.uint8))
    return images


def _real_images(data_dir: Path, size: int) -> list[np.ndarray]:
    """One smear per all4class subtype and two CBC test images, resized to ``size``."""
    from ml.imageio import load_image

    files = [sorted((data_dir / "all4class" / name).glob("*.jpg"))[10] for name in SUBTYPES]
    files += sorted((data_dir / "cbc" / "Testing" / "Images").glob("*.jpg"))[:2]
    return [resize_image(load_image(f), size) for f in files]


def _correlations(arch: str, weights: str | None, images: list[np.ndarray], size: int) -> list[float]:
    from ml.checkpoint import ModelCard
    from ml.errors import WeightsUnavailableError
    from ml.models import build_model, imagenet_normalization
    from ml.predict import Predictor

    torch.manual_seed(0)
    try:
        model = build_model(arch, SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights=weights)
    except WeightsUnavailableError as exc:
        pytest.skip(f"{arch} {weights} weights unavailable: {exc}")
    mean, std = imagenet_normalization(arch)
    card = ModelCard(arch=arch, class_names=list(SUBTYPES), binary_map=dict(SUBTYPE_BINARY_MAP),
                     input_size=size, mean=list(mean), std=list(std))
    reference_model = copy.deepcopy(model).eval()
    predictor = Predictor(model, card, device="cpu", precision="fp32", batch_size=len(images))
    predictions = predictor.predict(images)
    assert not any(p.grad is not None for p in predictor.model.parameters()), "no parameter gradients"

    batch = batch_from_card(images, card, channels_last=False)
    classes = [SUBTYPES.index(p.label) for p in predictions]
    reference = library_cam(reference_model, batch, classes, "gradcam")
    # the library's own prediction must be the class we explain
    with torch.no_grad():
        assert reference_model(batch).argmax(1).tolist() == classes

    # Where the class has no positive evidence anywhere, Grad-CAM is all zero: ours must be too.
    # Those maps say nothing about agreement, so at least two maps per check must have structure.
    informative = [(p.cam, ref) for p, ref in zip(predictions, reference) if ref.std() > 0]
    for p, ref in zip(predictions, reference):
        if ref.std() == 0:
            assert not p.cam.any() and not ref.any()
    assert len(informative) >= 2, "too few non-empty reference maps for a meaningful comparison"
    return [pearson_r(ours, ref) for ours, ref in informative]


def test_fused_cam_matches_library_efficientnet_lite0_imagenet_generated() -> None:
    r = _correlations("efficientnet_lite0", "imagenet", _smooth_images(4, 160), 160)
    assert min(r) >= MIN_R, r


def test_fused_cam_matches_library_resnet50_random_init_generated() -> None:
    r = _correlations("resnet50", None, _smooth_images(3, 128, seed=1), 128)
    assert min(r) >= MIN_R, r


def test_activation_gradient_cam_matches_library_vgg16_generated() -> None:
    r = _correlations("vgg16", None, _smooth_images(3, 96, seed=2), 96)
    assert min(r) >= MIN_R, r


@pytest.mark.realdata
def test_fused_cam_matches_library_efficientnet_lite0_imagenet_real(real_data) -> None:
    r = _correlations("efficientnet_lite0", "imagenet", _real_images(real_data, 224), 224)
    assert min(r) >= MIN_R, r


@pytest.mark.realdata
def test_fused_cam_matches_library_resnet50_real(real_data) -> None:
    r = _correlations("resnet50", None, _real_images(real_data, 160), 160)
    assert min(r) >= MIN_R, r


@pytest.mark.realdata
def test_activation_gradient_cam_matches_library_vgg16_real(real_data) -> None:
    r = _correlations("vgg16", None, _real_images(real_data, 96), 96)
    assert min(r) >= MIN_R, r
