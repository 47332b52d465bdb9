"""One analysis unit: an image and the active models in, every result out.

:func:`analyse_image` is what the case pipeline, the instant check and the
benchmarks run::

    image bytes / RGB ──► decode ──► classify + CAM ──► scope check      (classify_images)
                              └────► segment ──► cells ──► overlay        (analyse_cells_of)

The case pipeline runs the two halves as two tasks on two queues (the
classification batched on ``gpu``, the cells per image on ``cpu``), so it
calls the halves, :func:`classify_images` and :func:`analyse_cells_of`, which
are exactly what :func:`analyse_image` is made of: there is one code path.

Cell model: a ``task="cell"`` checkpoint whose classes are cell types
(:data:`ml.labels.CELL_TYPES`) gives a full differential
(:func:`ml.cells.analyse_cells`); an older blast-or-not checkpoint gives the
blast count only (:func:`ml.segment.classify_blasts`). Without a cell model
blasts are "not determined" (``None``), never 0.

No Django here: the callers pass the models and the settings in.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ml.segment import SegmentationResult, SegmentParams

DEFAULT_LOW_CONFIDENCE = 0.6


@dataclass(frozen=True)
class ActiveModels:
    """The models (and the settings they run with) an analysis uses."""

    image: Any = None  # ml.predict.Predictor of the image model; None = no classification
    cells: Any = None  # ml.cells.CellClassifier, or a blast-or-not ml.predict.Predictor; None = no cell model
    segment_params: SegmentParams = field(default_factory=SegmentParams)
    low_confidence: float = DEFAULT_LOW_CONFIDENCE  # for the cell calls (the Predictor has its own)
    max_pixels: int | None = None  # decoding limit (None = ml.imageio's default)
    wbc_mask: Any = None  # ml.wbcmask.WbcMask: white cells from the learned mask; None = the colour rules


@dataclass(frozen=True)
class Classification:
    """The image model's answer for one image, its CAM overlay and the scope check."""

    prediction: Any  # ml.predict.Prediction
    cam_png: bytes | None
    scope: Any  # ml.scope.ScopeCheck


@dataclass(frozen=True)
class CellResult:
    """Segmentation, the cell calls and the numbered overlay of one image."""

    segmentation: SegmentationResult
    cells: Any  # ml.cells.CellAnalysis, or None without a cell-type model
    overlay_png: bytes

    @property
    def blasts(self) -> int | None:
        return self.segmentation.blasts


@dataclass(frozen=True)
class ImageAnalysis:
    """Everything :func:`analyse_image` found in one image."""

    width: int
    height: int
    classification: Classification | None
    cells: CellResult
    timings: dict[str, float]

    @property
    def prediction(self):
        return self.classification.prediction if self.classification else None

    @property
    def scope(self):
        return self.classification.scope if self.classification else None


class StageTimer:
    """Adds up wall-clock seconds per stage (``with timer("decode"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def as_dict(self) -> dict[str, float]:
        return {stage: round(value, 4) for stage, value in self.seconds.items()}


def decode(image: bytes | np.ndarray, *, filename: str | None = None, max_pixels: int | None = None) -> np.ndarray:
    """H×W×3 uint8 RGB from encoded bytes (checked by :func:`ml.imageio.load_image`), or the array itself."""
    if isinstance(image, np.ndarray):
        return image
    from ml.imageio import load_image

    kwargs = {"max_pixels": max_pixels} if max_pixels is not None else {}
    return load_image(image, filename=filename, **kwargs)


def classify_images(rgbs: Sequence[np.ndarray], models: ActiveModels, *, timer: StageTimer | None = None) -> list[Classification]:
    """Classify + CAM a batch of images in one forward pass, draw each CAM
    overlay and check each image is in the model's scope."""
    from ml.overlay import cam_overlay, encode_png
    from ml.scope import check_scope

    timer = timer or StageTimer()
    if models.image is None:
        raise ValueError("no image model: nothing to classify with")
    with timer("classify_cam"):
        predictions = models.image.predict(list(rgbs), with_cam=True)
    out = []
    for rgb, prediction in zip(rgbs, predictions):
        with timer("overlays"):
            png = encode_png(cam_overlay(rgb, prediction.cam)) if prediction.cam is not None else None
        with timer("scope"):
            scope = check_scope(rgb, **scope_reference(rgb, prediction, models))
        out.append(Classification(prediction=prediction, cam_png=png, scope=scope))
    return out


def _has_feature_stats(card: Any) -> bool:
    scope = card.get("scope") if isinstance(card, dict) else getattr(card, "scope", None)
    return isinstance(scope, dict) and bool(scope.get("feature_stats"))


def scope_reference(rgb: np.ndarray, prediction: Any, models: ActiveModels) -> dict[str, Any]:
    """The features and card :func:`ml.scope.check_scope` measures the image against.

    The image model's own pooled features when its card records the training
    distribution (``card.scope["feature_stats"]``); otherwise the cell model's
    whole-image features when *its* card does; otherwise none (only the image checks:
    blank, focus, stain, screenshot, single cell)."""
    image_card = getattr(models.image, "card", None)
    if getattr(prediction, "features", None) is not None and _has_feature_stats(image_card):
        return {"features": prediction.features, "card": image_card}
    cell_card = getattr(models.cells, "card", None)
    if hasattr(models.cells, "image_features") and _has_feature_stats(cell_card):
        return {"features": models.cells.image_features(rgb), "card": cell_card}
    return {"features": None, "card": image_card}


def _with_cell_calls(segmentation: SegmentationResult, cells) -> SegmentationResult:
    """The segmentation with each white cell marked blast or not from the cell calls
    (so the overlay, the per-cell summary and ``blasts`` agree with the differential)."""
    calls = {call.index: call for call in cells.cells}
    updated = [
        replace(cell, blast_probability=float(calls[cell.index].probabilities.get("blast", 0.0)),
                is_blast=calls[cell.index].label == "blast")
        if cell.index in calls else cell
        for cell in segmentation.cells
    ]
    return replace(segmentation, cells=updated, blasts=int(cells.blasts))


def blast_probability_fn(predictor: Any):
    """Adapt a blast-or-not Predictor to ``ml.segment.classify_blasts``: (N, 2)
    [not_blast, blast] columns, whatever order the checkpoint lists its classes in."""
    names = list(predictor.class_names)
    if "blast" not in names:
        raise ValueError(f"cell model classes {names} have no 'blast' class")
    blast = names.index("blast")

    def predict_proba(crops):
        proba = np.asarray(predictor.predict_proba(crops), dtype=np.float64)
        if not len(proba):
            return np.zeros((0, 2))
        return np.stack([1.0 - proba[:, blast], proba[:, blast]], axis=1)

    return predict_proba


def is_cell_type_model(model: Any) -> bool:
    """A cell model whose classes are cell types (a differential), not blast-or-not."""
    from ml.labels import CELL_TYPES

    return model is not None and hasattr(model, "classify") and set(model.class_names) <= set(CELL_TYPES)


def analyse_cells_of(rgb: np.ndarray, models: ActiveModels, *, timer: StageTimer | None = None) -> CellResult:
    """Segment the image, classify its white cells with the cell model and draw the numbered overlay."""
    from ml.cells import analyse_cells
    from ml.overlay import encode_png, segmentation_overlay
    from ml.segment import classify_blasts, segment

    timer = timer or StageTimer()
    cells = None
    with timer("segmentation"):
        if models.wbc_mask is not None and models.segment_params.mode == "smear":
            segmentation = segment(rgb, models.segment_params, wbc_probability=models.wbc_mask.probability(rgb),
                                   wbc_threshold=models.wbc_mask.threshold)
        else:
            segmentation = segment(rgb, models.segment_params)
        if models.cells is not None and segmentation.mode == "smear":
            if is_cell_type_model(models.cells):
                cells = analyse_cells(rgb, segmentation, models.cells, models.low_confidence)
                segmentation = _with_cell_calls(segmentation, cells)
            else:
                segmentation = classify_blasts(rgb, segmentation, blast_probability_fn(models.cells))
    with timer("overlays"):
        png = encode_png(segmentation_overlay(rgb, segmentation))
    return CellResult(segmentation=segmentation, cells=cells, overlay_png=png)


def analyse_image(image: bytes | np.ndarray, models: ActiveModels, *, filename: str | None = None) -> ImageAnalysis:
    """Decode, classify + CAM, scope check, segment, cells and overlays of one image."""
    timer = StageTimer()
    with timer("decode"):
        rgb = decode(image, filename=filename, max_pixels=models.max_pixels)
    classification = classify_images([rgb], models, timer=timer)[0] if models.image is not None else None
    cells = analyse_cells_of(rgb, models, timer=timer)
    timings = timer.as_dict()
    timings["total"] = round(sum(timer.seconds.values()), 4)
    return ImageAnalysis(
        width=int(rgb.shape[1]), height=int(rgb.shape[0]), classification=classification, cells=cells, timings=timings
    )
