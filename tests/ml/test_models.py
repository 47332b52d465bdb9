"""Every arch builds, and its heads give (B, K) and (B, 2) logits from one feature map."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES
from ml.models import (
    ARCHS,
    DEFAULT_ARCH,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MarrowClassifier,
    build_model,
    imagenet_normalization,
    input_size_for,
)

EXPECTED = {  # arch: (head kind, channels of the last conv feature map)
    "resnet50": ("gap_linear", 2048),
    "resnet18": ("gap_linear", 512),
    "vgg16": ("mlp", 512),
    "efficientnet_b0": ("gap_linear", 1280),
    "efficientnet_lite0": ("gap_linear", 1280),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64)


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_of_both_heads(arch: str) -> None:
    model = build_model(arch, SUBTYPES, binary_map=SUBTYPE_BINARY_MAP).eval()
    head_kind, channels = EXPECTED[arch]
    assert isinstance(model, MarrowClassifier)
    assert (model.arch, model.head_kind, model.feature_channels) == (arch, head_kind, channels)
    assert model.class_names == list(SUBTYPES) and model.binary_map == SUBTYPE_BINARY_MAP
    assert model.weights_source == "scratch"
    x = _batch()
    with torch.no_grad():
        fmap = model.forward_features(x)
        logits, binary = model.forward_head(fmap)
        both = model.forward_both(x)
        plain = model(x)
    assert fmap.shape == (2, channels, 2, 2)  # 64 px / stride 32
    assert logits.shape == (2, len(SUBTYPES)) and binary is not None and binary.shape == (2, 2)
    torch.testing.assert_close(both[0], logits)
    torch.testing.assert_close(both[1], binary)
    torch.testing.assert_close(plain, logits)


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_without_binary_map_there_is_no_binary_head(arch: str) -> None:
    model = build_model(arch, ["blast", "not_blast", "other"]).eval()
    assert model.binary_classifier is None and model.binary_map is None
    with torch.no_grad():
        logits, binary = model.forward_both(_batch())
    assert logits.shape == (2, 3) and binary is None


@pytest.mark.parametrize("arch", [a for a in ARCHS if EXPECTED[a][0] == "gap_linear"])
def test_gap_linear_head_is_linear_in_the_mean_feature(arch: str) -> None:
    # The fused Grad-CAM relies on exactly this: logits = W · mean(fmap) + b in eval mode.
    model = build_model(arch, binary_map=SUBTYPE_BINARY_MAP).eval()
    assert isinstance(model.classifier, nn.Linear) and isinstance(model.binary_classifier, nn.Linear)
    with torch.no_grad():
        fmap = model.forward_features(_batch())
        logits, binary = model.forward_head(fmap)
        mean = fmap.mean(dim=(2, 3))
    torch.testing.assert_close(logits, mean @ model.classifier.weight.T + model.classifier.bias)
    torch.testing.assert_close(binary, mean @ model.binary_classifier.weight.T + model.binary_classifier.bias)


def test_vgg16_keeps_the_torchvision_mlp_and_reads_the_4096_vector() -> None:
    model = build_model("vgg16", binary_map=SUBTYPE_BINARY_MAP).eval()
    assert model.classifier.in_features == 4096 and model.binary_classifier.in_features == 4096
    assert [type(layer) for layer in model.neck] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout]
    assert model.neck[0].in_features == 512 * 7 * 7


@pytest.mark.parametrize("arch", ARCHS)
def test_channels_last_input_gives_the_same_logits(arch: str) -> None:
    model = build_model(arch, binary_map=SUBTYPE_BINARY_MAP).eval()
    x = _batch()
    with torch.no_grad():
        expected = model.forward_both(x)
        model = model.to(memory_format=torch.channels_last)
        got = model.forward_both(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got[0], expected[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-4, atol=1e-4)


def test_gradients_reach_the_backbone() -> None:
    model = build_model("resnet18", binary_map=SUBTYPE_BINARY_MAP)
    logits, binary = model.forward_both(_batch())
    (logits.sum() + binary.sum()).backward()
    assert model.features.conv1.weight.grad is not None
    assert model.features.conv1.weight.grad.abs().sum() > 0


def test_default_arch_and_input_sizes() -> None:
    assert DEFAULT_ARCH == "resnet50" and build_model().arch == "resnet50"
    assert all(input_size_for(arch) == 224 for arch in ARCHS)


def test_normalisation_per_arch() -> None:
    for arch in ("resnet50", "resnet18", "vgg16", "efficientnet_b0"):
        assert imagenet_normalization(arch) == (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = imagenet_normalization("efficientnet_lite0")  # TensorFlow's (x - 127) / 128
    assert mean == pytest.approx((127 / 255,) * 3) and std == pytest.approx((128 / 255,) * 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "alexnet"}, "unknown arch"),
        ({"class_names": ["only"]}, "at least two"),
        ({"class_names": ["a", "a"]}, "unique"),
        ({"binary_map": {"Benign": 0, "Early": 1}}, "exactly the class names"),
        ({"binary_map": {"Benign": 0, "Early": 1, "Pre": 2, "Pro": 1}}, "0 (normal) or 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(**{"arch": "resnet18", **kwargs})
    if "arch" in kwargs:
        with pytest.raises(ValueError, match=re.escape(message)):
            input_size_for(kwargs["arch"])
