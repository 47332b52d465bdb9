"""Batched inference with a Grad-CAM map per image from the same forward pass.

A :class:`Predictor` holds one model (loaded once, frozen, in channels_last
on the chosen device) and turns a list of H×W×3 uint8 images into
:class:`Prediction` objects: label, probabilities, a low-confidence flag,
P(ALL) from the binary head, and a CAM at the image's own size.

How the CAM is made (see :mod:`ml.cam` for why each is exact Grad-CAM):

* ``gradcam`` on a ``gap_linear`` head: fused, from the last feature map and
  the fc weights, inside the inference-mode forward pass (~free).
* ``gradcam`` on an ``mlp`` head (VGG16): backbone without autograd, then the
  gradient of the head with respect to the activations only.
* ``gradcam++``, ``scorecam``, ``eigencam``: the grad-cam library, run in fp32
  after the (autocast) classification pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.cam import (
    CAM_METHODS,
    activation_gradient_cam,
    cams_to_image_sizes,
    gap_linear_cam,
    library_cam,
    normalize_cams,
)
from ml.device import autocast, precision_name, resolve_precision, select_device
from ml.preprocess import batch_from_card, check_image

if TYPE_CHECKING:  # imported for annotations only; the real modules load lazily
    from ml.checkpoint import ModelCard
    from ml.models import MarrowClassifier

__all__ = ["CAM_METHODS", "DEFAULT_LOW_CONFIDENCE", "Prediction", "Predictor"]

DEFAULT_LOW_CONFIDENCE = 0.6


@dataclass
class Prediction:
    """The result for one image."""

    label: str                      # class name of the main head
    probabilities: dict[str, float]
    confidence: float               # max probability
    low_confidence: bool            # confidence < the Predictor's threshold
    all_probability: float | None   # binary head P(ALL) when the model has one
    cam: np.ndarray | None          # H×W float32 in [0, 1] at the input image's size, for `label`

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the CAM array is left out)."""
        return {
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "confidence": self.confidence,
            "low_confidence": self.low_confidence,
            "all_probability": self.all_probability,
        }


def _main_linear(model: nn.Module) -> nn.Linear:
    """The linear layer of a gap_linear main head (tolerates e.g. Dropout + Linear)."""
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if isinstance(head, nn.Module) else []
    if not linears:
        raise ValueError("gap_linear model has no nn.Linear main classifier to take CAM weights from")
    return linears[-1]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Predictor:
    """Classify images in batches, with a Grad-CAM per image. Loads the model once.

    The Predictor takes ownership of ``model``: it is put in eval mode, its
    parameters are frozen (``requires_grad=False``, so no code path can ever
    build parameter gradients) and it is moved to ``device`` in channels_last.
    """

    def __init__(
        self,
        model: MarrowClassifier,
        card: ModelCard,
        *,
        device: torch.device | str | None = None,
        precision: str = "auto",
        low_confidence_threshold: float = DEFAULT_LOW_CONFIDENCE,
        cam_method: str = "gradcam",
        batch_size: int = 32,
    ) -> None:
        if cam_method not in CAM_METHODS:
            raise ValueError(f"unknown cam_method {cam_method!r}: choose one of {', '.join(CAM_METHODS)}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0.0 <= low_confidence_threshold <= 1.0:
            raise ValueError("low_confidence_threshold must be within [0, 1]")
        self.device: torch.device = select_device(device)
        self.dtype: torch.dtype | None = resolve_precision(self.device, precision)
        self.precision: str = precision_name(self.dtype)
        self.card = card
        self.class_names: list[str] = list(card.class_names)
        if list(model.class_names) != self.class_names:
            raise ValueError(f"model classes {model.class_names} differ from the card's {self.class_names}")
        self.low_confidence_threshold = float(low_confidence_threshold)
        self.cam_method = cam_method
        self.batch_size = int(batch_size)
        self.sha256: str | None = None
        model.eval()
        model.requires_grad_(False)
        self.model = model.to(self.device, memory_format=torch.channels_last)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Predictor:
        """Load a checkpoint file (``ml.checkpoint`` format); ``.sha256`` identifies the model version."""
        from ml.checkpoint import file_sha256, load_checkpoint

        model, card = load_checkpoint(path, map_location="cpu")
        predictor = cls(model, card, **kwargs)
        predictor.sha256 = file_sha256(path)
        return predictor

    # ------------------------------------------------------------------ public API

    def predict(self, images: Sequence[np.ndarray], *, with_cam: bool = True) -> list[Prediction]:
        """One :class:`Prediction` per image, in order, computed ``batch_size`` at a time."""
        for image in images:
            check_image(image)
        results: list[Prediction] = []
        for chunk in _chunks(images, self.batch_size):
            results.extend(self._predict_chunk(chunk, with_cam=with_cam))
        return results

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, K)`` float32 main-head probabilities, no CAM (e.g. for white-cell crops)."""
        for image in images:
            check_image(image)
        if len(images) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        rows = []
        for chunk in _chunks(images, self.batch_size):
            batch = batch_from_card(chunk, self.card, device=self.device)
            with torch.inference_mode(), autocast(self.device, self.dtype):
                logits = self.model(batch)
            rows.append(F.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(rows).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ internals

    def _predict_chunk(self, images: Sequence[np.ndarray], *, with_cam: bool) -> list[Prediction]:
        batch = batch_from_card(images, self.card, device=self.device)
        sizes = [(int(image.shape[0]), int(image.shape[1])) for image in images]
        if not with_cam:
            logits, binary_logits = self._classify(batch)
            cams = None
        elif self.cam_method != "gradcam":
            logits, binary_logits = self._classify(batch)
            maps = library_cam(self.model, batch, logits.argmax(dim=1), self.cam_method)
            cams = cams_to_image_sizes(torch.from_numpy(maps), sizes)
        elif self.model.head_kind == "gap_linear":
            logits, binary_logits, raw = self._classify_with_fused_cam(batch)
            cams = cams_to_image_sizes(normalize_cams(raw), sizes)
        else:
            logits, binary_logits, raw = self._classify_with_activation_gradient_cam(batch)
            cams = cams_to_image_sizes(normalize_cams(raw), sizes)
        return self._to_predictions(logits, binary_logits, cams)

    def _classify(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.inference_mode(), autocast(self.device, self.dtype):
            fmap = self.model.forward_features(batch)
            return self.model.forward_head(fmap)

    def _classify_with_fused_cam(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        with torch.inference_mode():
            with autocast(self.device, self.dtype):
                fmap = self.model.forward_features(batch)
                logits, binary_logits = self.model.forward_head(fmap)
            raw = gap_linear_cam(fmap, _main_linear(self.model).weight, logits.argmax(dim=1))
        return logits, binary_logits, raw

    def _classify_with_activation_gradient_cam(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        # no_grad (not inference_mode): the feature map must be usable as an autograd leaf.
        with torch.no_grad(), autocast(self.device, self.dtype):
            fmap = self.model.forward_features(batch)
        fmap_leaf = fmap.detach().requires_grad_(True)
        with torch.enable_grad(), autocast(self.device, self.dtype):
            logits, binary_logits = self.model.forward_head(fmap_leaf)
        raw = activation_gradient_cam(fmap_leaf, logits, logits.detach().argmax(dim=1))
        binary = binary_logits.detach() if binary_logits is not None else None
        return logits.detach(), binary, raw

    def _to_predictions(
        self,
        logits: torch.Tensor,
        binary_logits: torch.Tensor | None,
        cams: list[np.ndarray] | None,
    ) -> list[Prediction]:
        probs = F.softmax(logits.float(), dim=1).cpu().numpy()
        all_probs = (
            F.softmax(binary_logits.float(), dim=1)[:, 1].cpu().numpy() if binary_logits is not None else None
        )
        predictions = []
        for row, p in enumerate(probs):
            best = int(np.argmax(p))
            confidence = float(p[best])
            predictions.append(
                Prediction(
                    label=self.class_names[best],
                    probabilities={name: float(v) for name, v in zip(self.class_names, p)},
                    confidence=confidence,
                    low_confidence=confidence < self.low_confidence_threshold,
                    all_probability=float(all_probs[row]) if all_probs is not None else None,
                    cam=cams[row] if cams is not None else None,
                )
            )
        return predictions
