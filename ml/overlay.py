"""Pictures for people: Grad-CAM heatmaps and numbered segmentation contours on the image.

All functions take and return H×W×3 uint8 RGB arrays and never modify their input.
"""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib import colormaps

from ml.segment import SegmentationResult

# Contour colours per cell kind (RGB); blasts are drawn thicker in magenta.
KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "rbc": (220, 40, 40),
    "wbc": (30, 90, 255),
    "platelet": (250, 170, 0),
    "nucleus": (0, 200, 90),
}
BLAST_COLOUR: tuple[int, int, int] = (255, 0, 255)
_JET_LUT = (colormaps["jet"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {image.shape}")
    return image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)


def cam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a class-activation map (H×W, values in [0, 1]) on the image with the jet colormap.

    The map is resized to the image when the sizes differ (CAMs are often computed
    at the network's input size); NaNs count as 0.
    """
    rgb = _as_rgb_uint8(image)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    heat = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0)
    if heat.ndim != 2:
        raise ValueError(f"cam must be 2-D, got shape {heat.shape}")
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    index = (np.clip(heat, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    coloured = _JET_LUT[index]
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * coloured.astype(np.float32)
    return np.clip(blended.round(), 0, 255).astype(np.uint8)


def segmentation_overlay(
    image: np.ndarray, result: SegmentationResult, *, numbers: bool = True, thickness: int | None = None
) -> np.ndarray:
    """Draw every cell's contour coloured by kind, blasts highlighted, each numbered with its index.

    The number is ``Cell.index``, the same value the cell has in ``result.labels``,
    so a cell in a report table can be found on the picture.
    """
    rgb = _as_rgb_uint8(image)
    if result.labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels {result.labels.shape} do not match the image {rgb.shape[:2]}")
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    base = thickness or max(1, round(min(h, w) / 300))
    font_scale = max(0.35, min(h, w) / 900)
    for cell in result.cells:
        r0, c0, r1, c1 = cell.bbox
        mask = (result.labels[r0:r1, c0:c1] == cell.index).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(c0, r0))
        colour = BLAST_COLOUR if cell.is_blast else KIND_COLOURS.get(cell.kind, (255, 255, 255))
        cv2.drawContours(out, contours, -1, colour, base + (1 if cell.is_blast else 0), lineType=cv2.LINE_8)
        if numbers:
            text = str(cell.index)
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            x = int(np.clip(cell.centroid[1] - tw / 2, 0, max(0, w - tw)))
            y = int(np.clip(cell.centroid[0] + th / 2, th, h - 1))
            # dark outline then light text: readable on pale background and dark nuclei alike
            cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB (or single-channel) uint8 image."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim != 2:
        raise ValueError(f"encode_png needs H×W or H×W×3, got shape {array.shape}")
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()
