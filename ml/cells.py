"""Cell-level analysis: a differential of every segmented white cell, blasts included.

The segmentation (:mod:`ml.segment`) finds the cells; this module crops each
white cell, classifies the crop into one of :data:`ml.labels.CELL_TYPES` with a
:class:`CellClassifier`, and sums the image up as a :class:`CellAnalysis`:
counts per type, nucleated white cells, blasts and the blast fraction.

A :class:`CellClassifier` is an ordinary Marrow-Find checkpoint (``task="cell"``,
class names = a subset of ``CELL_TYPES`` in that order, see ``python -m ml
train-cells``). It also gives the pooled backbone features of a crop or a whole
image, which :mod:`ml.scope` compares with the training distribution stored in
the card.

Pure functions of arrays; no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ml.labels import CELL_TYPES, NUCLEATED_WHITE

if TYPE_CHECKING:
    from ml.checkpoint import ModelCard
    from ml.models import MarrowClassifier
    from ml.segment import SegmentationResult

__all__ = [
    "DEFAULT_CROP_PAD",
    "DEFAULT_CROP_SIZE",
    "DEFAULT_LOW_CONFIDENCE",
    "CellAnalysis",
    "CellCall",
    "CellClassifier",
    "analyse_cells",
    "cell_crops",
    "square_crop",
]

DEFAULT_LOW_CONFIDENCE = 0.6
DEFAULT_CROP_SIZE = 128  # pixels of the square crop handed to the classifier
DEFAULT_CROP_PAD = 0.25  # context around the cell, as a share of its larger bbox side, each side


@dataclass(frozen=True)
class CellCall:
    """One classified cell, in input-image pixels."""

    index: int  # the segmentation's 1-based cell index (value in SegmentationResult.labels)
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive
    kind: str  # segmentation kind: "wbc", ...
    label: str  # one of CELL_TYPES
    probabilities: dict[str, float]
    confidence: float  # the label's probability
    low_confidence: bool  # confidence < the threshold given to analyse_cells
    contour: list[tuple[int, int]] | None = None  # outline (x, y) points, None when not available

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "bbox": list(self.bbox),
            "kind": self.kind,
            "label": self.label,
            "probabilities": {k: round(float(v), 4) for k, v in self.probabilities.items()},
            "confidence": round(float(self.confidence), 4),
            "low_confidence": self.low_confidence,
            "contour": None if self.contour is None else [list(p) for p in self.contour],
        }


@dataclass(frozen=True)
class CellAnalysis:
    """The differential of one image."""

    cells: tuple[CellCall, ...]
    counts: dict[str, int]  # every CELL_TYPES name, 0 included
    nucleated: int  # cells whose label is in NUCLEATED_WHITE (the blast-percentage denominator)
    blasts: int
    blast_fraction: float | None  # blasts / nucleated; None when no nucleated white cell was found
    px_per_um: float | None
    scale_note: str
    low_confidence_cells: int = field(default=0)

    def to_dict(self, *, cells: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "counts": dict(self.counts),
            "nucleated": self.nucleated,
            "blasts": self.blasts,
            "blast_fraction": None if self.blast_fraction is None else round(self.blast_fraction, 4),
            "px_per_um": None if self.px_per_um is None else round(self.px_per_um, 4),
            "scale_note": self.scale_note,
            "low_confidence_cells": self.low_confidence_cells,
        }
        if cells:
            data["cells"] = [c.to_dict() for c in self.cells]
        return data


# ----------------------------------------------------------------------------------------- crops


def square_crop(rgb: np.ndarray, center_xy: tuple[float, float], side: float, size: int | None) -> np.ndarray:
    """A ``side``-pixel square around ``center_xy``; parts outside the image are mirrored in.

    Resized to ``size × size`` (area averaging when shrinking) unless ``size`` is None.
    """
    h, w = rgb.shape[:2]
    side_i = max(4, round(side))
    x0 = round(center_xy[0] - side_i / 2)
    y0 = round(center_xy[1] - side_i / 2)
    x1, y1 = x0 + side_i, y0 + side_i
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x1 - w), max(0, y1 - h)
    window = rgb[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    if pad_l or pad_t or pad_r or pad_b:
        border = cv2.BORDER_REFLECT_101 if min(window.shape[:2]) > 1 else cv2.BORDER_REPLICATE
        window = cv2.copyMakeBorder(np.ascontiguousarray(window), pad_t, pad_b, pad_l, pad_r, border)
    window = np.ascontiguousarray(window)
    if size is None or window.shape[0] == size:
        return window
    interp = cv2.INTER_AREA if window.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(window, (size, size), interpolation=interp)


def _cells_of_kind(segmentation: SegmentationResult, kind: str | None) -> list:
    return [c for c in segmentation.cells if kind is None or c.kind == kind]


def cell_crops(
    rgb: np.ndarray,
    segmentation: SegmentationResult,
    kind: str | None = "wbc",
    size: int | None = DEFAULT_CROP_SIZE,
    pad: float = DEFAULT_CROP_PAD,
) -> list[np.ndarray]:
    """Square RGB crops of every cell of ``kind`` (None = all), in index order.

    Each crop is centred on the cell's bounding box, ``(1 + 2·pad)`` times its
    larger side, so the classifier sees the whole cell with a little context,
    whatever the magnification; it is resized to ``size × size``.
    """
    crops = []
    for cell in _cells_of_kind(segmentation, kind):
        r0, c0, r1, c1 = cell.bbox
        side = max(r1 - r0, c1 - c0) * (1.0 + 2.0 * pad)
        crops.append(square_crop(rgb, ((c0 + c1) / 2.0, (r0 + r1) / 2.0), side, size))
    return crops


def _contour(labels: np.ndarray, index: int, bbox: tuple[int, int, int, int], max_points: int = 48) -> list[tuple[int, int]] | None:
    """Outer outline of one labelled cell as (x, y) points, simplified to at most ``max_points``."""
    r0, c0, r1, c1 = bbox
    mask = (labels[r0:r1, c0:c1] == index).astype(np.uint8)
    if not mask.any():
        return None
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    eps = 0.5
    while len(outline) > max_points:
        outline = cv2.approxPolyDP(outline, eps, True)
        eps *= 1.5
    return [(int(p[0][0]) + c0, int(p[0][1]) + r0) for p in outline]


# ----------------------------------------------------------------------------------------- model


class CellClassifier:
    """A ``task="cell"`` checkpoint over :data:`CELL_TYPES`: crops in, a differential out.

    ``classify(crops)`` returns one dict per crop: ``label``, ``probabilities``
    (every class of the model), ``confidence``. Crops are H×W×3 uint8 RGB of any
    size (resized to the card's input size).
    """

    def __init__(self, model: MarrowClassifier, card: ModelCard, *, batch_size: int = 32) -> None:
        unknown = [c for c in card.class_names if c not in CELL_TYPES]
        if unknown:
            raise ValueError(f"not a cell-type model: classes {unknown} are not in CELL_TYPES")
        self.model = model.eval()
        self.card = card
        self.class_names: list[str] = list(card.class_names)
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> CellClassifier:
        from ml.checkpoint import load_checkpoint

        model, card = load_checkpoint(path)
        return cls(model, card, **kwargs)

    from_checkpoint = load

    def _batches(self, images: Sequence[np.ndarray]):
        from ml.preprocess import batch_from_card

        for start in range(0, len(images), self.batch_size):
            yield batch_from_card(images[start : start + self.batch_size], self.card, channels_last=False)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled backbone features ``(N, C)`` float32 of the images (crops or whole fields)."""
        import torch

        if len(images) == 0:
            return np.zeros((0, int(self.model.feature_channels)), np.float32)
        out = []
        with torch.inference_mode():
            for batch in self._batches(images):
                fmap = self.model.forward_features(batch)
                out.append(torch.flatten(self.model.pool(fmap), 1).float().numpy())
        return np.concatenate(out).astype(np.float32)

    def image_features(self, rgb: np.ndarray) -> np.ndarray:
        """Features of one whole image, the input :func:`ml.scope.check_scope` compares with the card."""
        return self.features([rgb])[0]

    def probabilities_from_features(self, feats: np.ndarray) -> np.ndarray:
        """Softmax of the main head on pooled features ``(N, C)`` -> ``(N, classes)``."""
        import torch

        with torch.inference_mode():
            logits = self.model.classifier(self.model.neck(torch.from_numpy(np.asarray(feats, np.float32))))
            return torch.softmax(logits.float(), dim=1).numpy()

    def predict_proba(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        return self.probabilities_from_features(self.features(crops))

    def classify(self, crops: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        proba = self.predict_proba(crops)
        out = []
        for row in proba:
            best = int(np.argmax(row))
            out.append({
                "label": self.class_names[best],
                "probabilities": {name: float(p) for name, p in zip(self.class_names, row)},
                "confidence": float(row[best]),
            })
        return out


# ----------------------------------------------------------------------------------------- analysis


def scale_note(segmentation: SegmentationResult) -> str:
    """How far the image's µm figures can be trusted."""
    ppm = segmentation.pixels_per_micron
    if ppm is None:
        return "scale could not be estimated (no red cells or nuclei to measure); sizes in µm are not given"
    if not segmentation.scale_estimated:
        return f"scale given: {ppm:.2f} px/µm"
    ref = "red-cell diameter (7.5 µm assumed)" if segmentation.mode == "smear" else "nucleus size (7 µm assumed)"
    return (f"scale estimated from the typical {ref}: {ppm:.2f} px/µm; an estimate, "
            f"off by the spread of cell sizes in the field (about ±15 %)")


def analyse_cells(
    rgb: np.ndarray,
    segmentation: SegmentationResult,
    classifier: CellClassifier,
    low_confidence: float = DEFAULT_LOW_CONFIDENCE,
    *,
    kind: str = "wbc",
    with_contours: bool = True,
) -> CellAnalysis:
    """Classify every ``kind`` cell of ``segmentation`` and sum the image up.

    ``blast_fraction`` is blasts over nucleated white cells (labels in
    :data:`NUCLEATED_WHITE`); None when there is none, so "no white cell" is
    never reported as "0 % blasts".
    """
    segmented = _cells_of_kind(segmentation, kind)
    crops = cell_crops(rgb, segmentation, kind=kind, size=int(classifier.card.input_size))
    results = classifier.classify(crops) if crops else []
    calls = []
    for cell, res in zip(segmented, results):
        r0, c0, r1, c1 = cell.bbox
        calls.append(CellCall(
            index=cell.index,
            bbox=(int(c0), int(r0), int(c1), int(r1)),
            kind=cell.kind,
            label=res["label"],
            probabilities=res["probabilities"],
            confidence=res["confidence"],
            low_confidence=bool(res["confidence"] < low_confidence),
            contour=_contour(segmentation.labels, cell.index, cell.bbox) if with_contours else None,
        ))
    counts = {name: 0 for name in CELL_TYPES}
    for call in calls:
        counts[call.label] += 1
    nucleated = sum(counts[t] for t in NUCLEATED_WHITE)
    blasts = counts["blast"]
    return CellAnalysis(
        cells=tuple(calls),
        counts=counts,
        nucleated=nucleated,
        blasts=blasts,
        blast_fraction=(blasts / nucleated) if nucleated else None,
        px_per_um=segmentation.pixels_per_micron,
        scale_note=scale_note(segmentation),
        low_confidence_cells=sum(c.low_confidence for c in calls),
    )


def aggregate(analyses: Sequence[CellAnalysis]) -> dict[str, Any]:
    """Case-level sum of image differentials: counts, nucleated, blasts, blast fraction."""
    counts = {name: 0 for name in CELL_TYPES}
    for a in analyses:
        for k, v in a.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
    nucleated = sum(a.nucleated for a in analyses)
    blasts = sum(a.blasts for a in analyses)
    return {
        "images": len(analyses),
        "counts": counts,
        "nucleated": nucleated,
        "blasts": blasts,
        "blast_fraction": (blasts / nucleated) if nucleated else None,
    }

