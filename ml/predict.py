"""Batched inference with a Grad-CAM map per image from the same forward pass.

A :class:`Predictor` holds one model (loaded once, frozen, in channels_last
on the chosen device) and turns a list of H×W×3 uint8 images into
:class:`Prediction` objects: label, probabilities, a low-confidence flag,
P(ALL) from the binary head, a CAM at the image's own size and the pooled
backbone features (for :mod:`ml.scope`'s distance to the training set).

How the CAM is made (see :mod:`ml.cam` for why each is exact Grad-CAM):

* ``gradcam`` on a ``gap_linear`` head: fused, from the last feature map and
  the fc weights, inside the inference-mode forward pass (~free). Classify,
  CAM and pooled features are one module (:class:`ClassifyCam`).
* ``gradcam`` on an ``mlp`` head (VGG16): backbone without autograd, then the
  gradient of the head with respect to the activations only.
* ``gradcam++``, ``scorecam``, ``eigencam``: the grad-cam library, run in fp32
  after the (autocast) classification pass.

Compiled path (``compile="on"``, or ``"auto"`` where :mod:`ml.compiled` says it
measured faster): the same module goes through ``torch.compile`` (inductor; with
``freezing`` only where :func:`ml.compiled.use_freezing` says it pays), autocast
inside it, so both precisions compile.

* ``gap_linear`` heads: the whole classify + CAM + features forward is compiled.
* VGG16 (``mlp`` head): the backbone (all the convolutions, ~99% of the work) is
  compiled; the head and its activation gradient run eager, because
  ``torch.autograd.grad`` inside a compiled region breaks the graph.
* The library CAM methods: the classification is compiled, the library runs eager.

The graph is compiled with a dynamic batch dimension, so a shorter chunk (the
last of a case, one image of the instant check) runs without recompiling and
without padding (a single image is padded to two, since dynamo specialises size
1). Measured against padding to ``batch_size`` (ResNet-18, batch 16, a chunk of
5, same run): dynamic 0.97 img/s, padded 0.55, eager 0.86; full batches the same
(1.69 / 1.69). ``dynamic_batch=False`` pads instead. Compiling runs at
:meth:`Predictor.warm_up` (in a background thread when ``wait=False``) or, if
that was never called, starts in the background at the first batch; until it
is done, batches run eager, so a task never waits for the compiler. Any compile
failure logs one warning and leaves the Predictor eager.
"""

from __future__ import annotations

import logging
import threading
import time
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
from ml.compiled import (
    check_compile_mode,
    configure_cache,
    should_compile,
    use_freezing,
)
from ml.device import precision_name, resolve_precision, select_device
from ml.preprocess import batch_from_card, check_image

if TYPE_CHECKING:  # imported for annotations only; the real modules load lazily
    from ml.checkpoint import ModelCard
    from ml.models import MarrowClassifier

__all__ = ["CAM_METHODS", "DEFAULT_LOW_CONFIDENCE", "ClassifyCam", "Prediction", "Predictor"]

logger = logging.getLogger(__name__)

DEFAULT_LOW_CONFIDENCE = 0.6

#: The torch.compile backend (tests swap in one that fails, to check the fallback).
COMPILE_BACKEND: Any = "inductor"


@dataclass
class Prediction:
    """The result for one image."""

    label: str                      # class name of the main head
    probabilities: dict[str, float]
    confidence: float               # max probability
    low_confidence: bool            # confidence < the Predictor's threshold
    all_probability: float | None   # binary head P(ALL) when the model has one
    cam: np.ndarray | None          # H×W float32 in [0, 1] at the input image's size, for `label`
    # (C,) float32: the last feature map averaged over space (the backbone's pooled features),
    # the same vector for every CAM method; ml.scope measures the distance to training from it.
    features: np.ndarray | None = None

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




def _autocast(device_type: str, dtype: torch.dtype | None) -> torch.autocast:
    # One form for eager and compiled code (dynamo traces torch.autocast, enabled or not).
    return torch.autocast(device_type=device_type, dtype=dtype or torch.float32, enabled=dtype is not None)


class ClassifyCam(nn.Module):
    """One forward for a ``gap_linear`` model: logits, binary logits, raw fused CAM, pooled features.

    ``forward(batch) -> (logits (B, K) fp32, binary (B, 2) fp32 | None, raw CAM (B, h, w) fp32,
    features (B, C) fp32)``. The backbone and heads run under autocast in
    ``dtype`` (``None`` = fp32); the CAM einsum and the pooling run in fp32
    outside it. This is the module that is compiled, so eager and compiled
    runs execute the same code.
    """

    def __init__(self, model: MarrowClassifier, device_type: str, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.model = model
        self.cam_linear = _main_linear(model)
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        with _autocast(self.device_type, self.dtype):
            fmap = self.model.forward_features(batch)
            logits, binary = self.model.forward_head(fmap)
        raw = gap_linear_cam(fmap, self.cam_linear.weight, logits.argmax(dim=1))
        features = fmap.float().mean(dim=(2, 3))
        return logits.float(), (binary.float() if binary is not None else None), raw, features


class Backbone(nn.Module):
    """``forward(batch) -> last feature map`` under autocast: the compiled part for ``mlp`` heads (VGG16)."""

    def __init__(self, model: MarrowClassifier, device_type: str, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with _autocast(self.device_type, self.dtype):
            return self.model.forward_features(batch)


def _take(output: Any, count: int) -> Any:
    """The first ``count`` rows of every tensor in a (nested) output; ``None`` stays ``None``."""
    if output is None:
        return None
    if isinstance(output, tuple):
        return tuple(_take(item, count) for item in output)
    return output[:count]


class Predictor:
    """Classify images in batches, with a Grad-CAM per image. Loads the model once.

    The Predictor takes ownership of ``model``: it is put in eval mode, its
    parameters are frozen (``requires_grad=False``, so no code path can ever
    build parameter gradients) and it is moved to ``device`` in channels_last.

    ``compile``: ``"off"`` (eager, the default for library use), ``"on"`` or
    ``"auto"`` (see :mod:`ml.compiled`); ``compile_cache_dir``: where inductor
    keeps its compiled code between processes (``None``: torch's default).
    ``dynamic_batch``: compile with a dynamic batch dimension (default) or, when
    False, one static shape with short chunks padded to ``batch_size``.
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
        compile: str = "off",
        compile_cache_dir: str | Path | None = None,
        dynamic_batch: bool = True,
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
        self._fused = self.model.head_kind == "gap_linear"
        module_cls = ClassifyCam if self._fused else Backbone
        self._module: nn.Module = module_cls(self.model, self.device.type, self.dtype)

        self.compile_mode = check_compile_mode(compile)
        self.compile_cache_dir = compile_cache_dir
        self.dynamic_batch = bool(dynamic_batch)
        #: Inductor's freezing (weights folded in as constants, prepacked) where it was measured to pay.
        self.freezing: bool = use_freezing(self.device)
        #: "off" (eager by choice), "pending", "compiling", "ready" or "failed" (eager after a failure).
        self.compile_state: str = "pending" if should_compile(self.compile_mode, self.device) else "off"
        self.compile_seconds: float | None = None  # wall time of the compiling call
        self.compile_error: str | None = None
        self._compiled: Any = None
        self._compile_lock = threading.Lock()
        self._compile_thread: threading.Thread | None = None
        self._compile_done = threading.Event()  # set when compiling has ended (ready or failed)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Predictor:
        """Load a checkpoint file (``ml.checkpoint`` format); ``.sha256`` identifies the model version."""
        from ml.checkpoint import file_sha256, load_checkpoint

        model, card = load_checkpoint(path, map_location="cpu")
        predictor = cls(model, card, **kwargs)
        predictor.sha256 = file_sha256(path)
        return predictor

    # ------------------------------------------------------------------ public API

    @property
    def compiled(self) -> bool:
        """True once batches run through the compiled module."""
        return self.compile_state == "ready"

    @property
    def compile_scope(self) -> str:
        """What the compiled module covers: see the module docstring."""
        if self.compile_state == "off":
            return "none"
        if not self._fused:
            return "backbone (the head and its activation-gradient CAM run eager)"
        if self.cam_method != "gradcam":
            return f"classification ({self.cam_method} runs eager in the grad-cam library)"
        return "classify + fused CAM + pooled features"

    def warm_up(self, *, wait: bool = True) -> Predictor:
        """Compile now (if compiling is on): in this thread when ``wait``, else in a background thread.

        Idempotent and thread-safe; returns ``self``. With ``wait=False`` it
        returns at once and batches run eager until the compiled module is ready.
        """
        if self.compile_state == "off":
            return self
        with self._compile_lock:
            start = self.compile_state == "pending"
            if start:
                self.compile_state = "compiling"
                if not wait:
                    self._compile_thread = threading.Thread(
                        target=self._compile, name="marrowfind-compile", daemon=True
                    )
                    self._compile_thread.start()
        if start and wait:
            self._compile()
        elif wait:
            self._compile_done.wait()
        return self

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
            logits, _, _ = self._classify(batch)
            rows.append(F.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(rows).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ compiling

    def _compile(self) -> None:
        """Compile the module for this Predictor's batch shape; any failure -> eager + one warning."""
        import torch._dynamo

        started = time.perf_counter()
        try:
            configure_cache(self.compile_cache_dir)
            # Each Predictor adds entries for the same forward code; a worker that swaps models
            # many times must not hit dynamo's default limit and silently run eager.
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            options = {"freezing": True} if COMPILE_BACKEND == "inductor" and self.freezing else None
            compiled = torch.compile(
                self._module, backend=COMPILE_BACKEND, options=options,
                dynamic=None if self.dynamic_batch else False,
            )
            rows = max(2, self.batch_size) if self.dynamic_batch else self.batch_size
            example = torch.zeros(
                (rows, 3, self.card.input_size, self.card.input_size), device=self.device
            ).contiguous(memory_format=torch.channels_last)
            if self.dynamic_batch:
                torch._dynamo.mark_dynamic(example, 0)
            with self._grad_context():
                compiled(example)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "run eager"
            self._fail(exc)
            self._compile_done.set()
            return
        self._compiled = compiled
        self.compile_seconds = time.perf_counter() - started
        self.compile_state = "ready"
        self._compile_done.set()
        logger.info(
            "torch.compile ready: %s (%s, %s, batch %d%s) in %.1f s: %s",
            self.card.arch, self.device, self.precision, self.batch_size,
            ", dynamic" if self.dynamic_batch else "", self.compile_seconds, self.compile_scope,
        )

    def _fail(self, exc: BaseException) -> None:
        already = self.compile_state == "failed"
        self.compile_state = "failed"
        self._compiled = None
        if not already:
            # One line, with the cause: dynamo wraps a backend's error as "backend=... raised:\n<cause>".
            self.compile_error = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
            logger.warning(
                "torch.compile of %s failed; running eager from now on (%s)", self.card.arch, self.compile_error
            )

    def _grad_context(self) -> Any:
        # VGG's backbone output becomes an autograd leaf, which inference tensors cannot be.
        return torch.inference_mode() if self._fused else torch.no_grad()

    def _run(self, batch: torch.Tensor) -> Any:
        """The module's output for ``batch``: compiled (padded to ``batch_size``) once ready, else eager."""
        if self.compile_state == "pending":
            self.warm_up(wait=False)
        compiled = self._compiled
        if compiled is not None:
            count = int(batch.shape[0])
            # Static graph: pad to the compiled batch. Dynamic: pad a single image to two, since
            # dynamo specialises a dimension of size 1 (it would compile a second graph for it).
            target = count if self.dynamic_batch else self.batch_size
            if self.dynamic_batch and count == 1:
                target = 2
            padded = batch
            if count < target:
                filler = batch.new_zeros((target - count, *batch.shape[1:]))
                padded = torch.cat([batch, filler]).contiguous(memory_format=torch.channels_last)
            try:
                with self._grad_context():
                    return _take(compiled(padded), count)
            except Exception as exc:  # noqa: BLE001 - e.g. a recompile that fails: eager from now on
                self._fail(exc)
        with self._grad_context():
            return self._module(batch)

    # ------------------------------------------------------------------ internals

    def _classify(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(logits, binary_logits, features)`` without a CAM."""
        if self._fused:
            logits, binary, _, features = self._run(batch)
            return logits, binary, features
        fmap = self._run(batch)
        with torch.inference_mode(), _autocast(self.device.type, self.dtype):
            logits, binary = self.model.forward_head(fmap)
        return logits.float(), (binary.float() if binary is not None else None), fmap.float().mean(dim=(2, 3))

    def _predict_chunk(self, images: Sequence[np.ndarray], *, with_cam: bool) -> list[Prediction]:
        batch = batch_from_card(images, self.card, device=self.device)
        sizes = [(int(image.shape[0]), int(image.shape[1])) for image in images]
        if not with_cam:
            logits, binary_logits, features = self._classify(batch)
            cams = None
        elif self.cam_method != "gradcam":
            logits, binary_logits, features = self._classify(batch)
            maps = library_cam(self.model, batch, logits.argmax(dim=1), self.cam_method)
            cams = cams_to_image_sizes(torch.from_numpy(maps), sizes)
        elif self._fused:
            logits, binary_logits, raw, features = self._run(batch)
            cams = cams_to_image_sizes(normalize_cams(raw), sizes)
        else:
            logits, binary_logits, raw, features = self._classify_with_activation_gradient_cam(batch)
            cams = cams_to_image_sizes(normalize_cams(raw), sizes)
        return self._to_predictions(logits, binary_logits, cams, features)

    def _classify_with_activation_gradient_cam(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        # The backbone (compiled when on) runs under no_grad; only the head is differentiated.
        fmap = self._run(batch)
        fmap_leaf = fmap.detach().requires_grad_(True)
        with torch.enable_grad(), _autocast(self.device.type, self.dtype):
            logits, binary_logits = self.model.forward_head(fmap_leaf)
        raw = activation_gradient_cam(fmap_leaf, logits, logits.detach().argmax(dim=1))
        binary = binary_logits.detach().float() if binary_logits is not None else None
        features = fmap.detach().float().mean(dim=(2, 3))
        return logits.detach().float(), binary, raw, features

    def _to_predictions(
        self,
        logits: torch.Tensor,
        binary_logits: torch.Tensor | None,
        cams: list[np.ndarray] | None,
        features: torch.Tensor,
    ) -> list[Prediction]:
        probs = F.softmax(logits.float(), dim=1).cpu().numpy()
        all_probs = (
            F.softmax(binary_logits.float(), dim=1)[:, 1].cpu().numpy() if binary_logits is not None else None
        )
        vectors = features.float().cpu().numpy()
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
                    features=vectors[row].copy(),
                )
            )
        return predictions
