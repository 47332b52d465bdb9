"""The full-resolution viewer of one image: its Deep Zoom layers, the cell outlines
and the colour legends, for ``review.views.image_viewer`` and its tile routes.

The pyramids are made by the workers (``diagnostics.tiles``); this module only
says what exists and where the browser fetches it. The cell outlines are drawn
by the browser as vectors from the ``Cell`` rows (the contour from the cell
model, else the box), so they stay sharp at any zoom; each is coloured by the
cell's current class: the reviewer's newest decision (``CellReview``), else the
cell model's call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse

from diagnostics import tiles as tile_service
from diagnostics.models import Analysis, Cell, SlideImage
from ml.labels import CELL_TYPE_DISPLAY

# One colour per cell class (colour-blind-safe where it matters: blast is the loudest).
CELL_COLOURS: dict[str, str] = {
    "blast": "#ff00ff",
    "hematogone": "#9b59ff",
    "lymphocyte": "#1f77ff",
    "neutrophil": "#17becf",
    "monocyte": "#2ca02c",
    "eosinophil": "#ff7f0e",
    "basophil": "#8c564b",
    "immature_granulocyte": "#bcbd22",
    "erythroblast": "#d62728",
    "platelet": "#f5c400",
    "artefact": "#7f7f7f",
    "": "#ffffff",  # a white cell the cell model did not classify
}
LAYER_TITLES = {
    "original": "Original",
    "cam": "Grad-CAM",
    "segmentation": "Segmentation (all cells, numbered)",
}


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def segmentation_legend() -> list[tuple[str, str]]:
    """(colour, what) of the segmentation overlay's contours (``ml.overlay``)."""
    from ml.overlay import BLAST_COLOUR, KIND_COLOURS

    names = {"rbc": "Red cell", "wbc": "White cell", "platelet": "Platelet", "nucleus": "Nucleus"}
    return [*[(_hex(rgb), names.get(kind, kind)) for kind, rgb in KIND_COLOURS.items()], (_hex(BLAST_COLOUR), "Blast")]


@dataclass
class ViewerLayer:
    key: str
    title: str
    dzi_url: str
    layout: dict


@dataclass
class ViewerState:
    image: SlideImage
    analysis: Analysis | None
    layers: list[ViewerLayer] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)
    cell_legend: list[tuple[str, str, int]] = field(default_factory=list)  # colour, class, count
    tiles_error: str = ""

    @property
    def ready(self) -> bool:
        return any(layer.key == "original" for layer in self.layers)

    def layer(self, key: str) -> ViewerLayer | None:
        return next((layer for layer in self.layers if layer.key == key), None)

    @property
    def overlay_layers(self) -> list[ViewerLayer]:
        return [layer for layer in self.layers if layer.key != "original"]


def viewer_state(image: SlideImage, analysis: Analysis | None) -> ViewerState:
    """What the viewer page shows of ``image`` (its newest ``analysis``)."""
    state = ViewerState(image=image, analysis=analysis)
    if analysis is None:
        return state
    state.tiles_error = (analysis.tiles or {}).get("error", "")
    for key, layout in tile_service.layers_of(analysis).items():
        if key in LAYER_TITLES:
            url = reverse("image_tiles_dzi", args=[image.case_id, image.pk, key])
            state.layers.append(ViewerLayer(key=key, title=LAYER_TITLES[key], dzi_url=url, layout=layout))
    state.layers.sort(key=lambda layer: list(LAYER_TITLES).index(layer.key))
    counts: dict[str, int] = {}
    for cell in Cell.objects.filter(analysis=analysis).prefetch_related("reviews").order_by("index"):
        decisions = sorted(cell.reviews.all(), key=lambda decision: decision.version)
        label = decisions[-1].label if decisions else (cell.ai_label or "")
        counts[label] = counts.get(label, 0) + 1
        state.cells.append({
            "index": cell.index,
            "label": label,
            "ai_label": cell.ai_label,
            "reviewed": bool(decisions),
            "name": CELL_TYPE_DISPLAY.get(label, label) or "Not classified",
            "confidence": None if cell.confidence is None or decisions else round(float(cell.confidence), 3),
            "bbox": cell.bbox,
            "contour": cell.contour or None,
            "colour": CELL_COLOURS.get(label, "#ffffff"),
        })
    order = list(CELL_COLOURS)
    state.cell_legend = [
        (CELL_COLOURS.get(label, "#ffffff"), CELL_TYPE_DISPLAY.get(label, label) or "Not classified", n)
        for label, n in sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    ]
    return state
