"""Device and precision choice, and that bf16 inference agrees with fp32."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ml.device import (
    cpu_has_amx,
    cpu_supports_bf16,
    precision_name,
    resolve_precision,
    select_device,
)
from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES

CPU = torch.device("cpu")


def test_fp32_is_always_available_and_means_no_autocast() -> None:
    assert resolve_precision(CPU, "fp32") is None
    assert precision_name(None) == "fp32"


def test_auto_on_cpu_picks_bf16_exactly_when_the_cpu_does_it_natively() -> None:
    expected = torch.bfloat16 if (cpu_supports_bf16() and cpu_has_amx()) else None
    assert resolve_precision(CPU, "auto") == expected
    assert resolve_precision("cpu", "bf16") == torch.bfloat16


def test_cpu_bf16_detection_agrees_with_the_cpu_flags() -> None:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        pytest.skip("no /proc/cpuinfo on this system")
    native = " avx512_bf16" in flags or " amx_bf16" in flags
    assert cpu_supports_bf16() == (native and torch.backends.mkldnn.is_available())


def test_fp16_on_cpu_and_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision(CPU, "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision(CPU, "int8")


def test_select_device_uses_cuda_only_when_present() -> None:
    assert select_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu") == CPU
    assert select_device(torch.device("cpu")) == CPU
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_is_half_precision() -> None:
    cuda = torch.device("cuda")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert resolve_precision(cuda, "auto") == expected
    assert resolve_precision(cuda, "fp16") == torch.float16


def _images(real_dir=None, count: int = 6) -> list[np.ndarray]:
    """Real all4class images when given, else seeded smooth colour images (CNN-friendly, not noise)."""
    if real_dir is not None:
        from ml.imageio import load_image

        files = [sorted((real_dir / "all4class" / name).glob("*.jpg"))[5] for name in SUBTYPES]
        return [load_image(f) for f in files]
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        images.append(cv2.resize(small, (128, 128), interpolation=cv2.INTER_CUBIC))
    return images


def _compare_bf16_with_fp32(images: list[np.ndarray]) -> None:
    from ml.checkpoint import ModelCard
    from ml.errors import WeightsUnavailableError
    from ml.models import build_model, imagenet_normalization
    from ml.predict import Predictor

    torch.manual_seed(0)
    try:
        model = build_model("efficientnet_lite0", SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights="imagenet")
    except WeightsUnavailableError as exc:
        pytest.skip(f"efficientnet_lite0 ImageNet weights unavailable: {exc}")
    mean, std = imagenet_normalization("efficientnet_lite0")
    card = ModelCard(arch="efficientnet_lite0", class_names=list(SUBTYPES), binary_map=dict(SUBTYPE_BINARY_MAP),
                     input_size=128, mean=list(mean), std=list(std))
    fp32 = Predictor(copy.deepcopy(model), card, device="cpu", precision="fp32").predict(images)
    bf16_predictor = Predictor(model, card, device="cpu", precision="bf16")
    assert bf16_predictor.precision == "bf16"
    bf16 = bf16_predictor.predict(images)

    for a, b in zip(fp32, bf16):
        pa = np.array(list(a.probabilities.values()))
        pb = np.array(list(b.probabilities.values()))
        np.testing.assert_allclose(pb, pa, atol=0.05)
        assert abs(a.all_probability - b.all_probability) < 0.05
        top2 = np.sort(pa)[-2:]
        near_tie = top2[1] - top2[0] <= 0.02  # only a genuine near-tie may flip the label
        assert a.label == b.label or near_tie
    # the CAMs are of the same class wherever the labels agree, and should look alike
    from ml.cam import pearson_r

    same = [(a, b) for a, b in zip(fp32, bf16) if a.label == b.label]
    assert same
    assert min(pearson_r(a.cam, b.cam) for a, b in same) > 0.95


def test_bf16_and_fp32_agree_on_synthetic_images() -> None:
    _compare_bf16_with_fp32(_images())


@pytest.mark.realdata
def test_bf16_and_fp32_agree_on_real_images(real_data) -> None:
    _compare_bf16_with_fp32(_images(real_data))
