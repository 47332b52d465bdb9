"""Deep Zoom tiles of an analysed image, for the full-resolution viewer.

Made by ``diagnostics.tasks.make_tiles`` (cpu queue, sent through
``marrowfind.dispatch`` once an image's segmentation is saved) with the pure
:func:`ml.deepzoom.write_deep_zoom`, one pyramid per layer:

* ``original``: the stored original, decoded like the pipeline decodes it;
* ``cam``: the Grad-CAM overlay (full size, ``ml.overlay.cam_overlay``);
* ``segmentation``: the numbered cell contours (``ml.overlay.segmentation_overlay``).

They live in ``MEDIA_ROOT/labs/<lab>/cases/<case>/tiles/<analysis id>/`` (the shared
media folder: each pyramid is written beside its target and moved into place), and
``Analysis.tiles`` says which layers exist and their geometry. They are only ever
served by ``review.views.image_tile``, after the lab check; the media view refuses
that folder.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage

from diagnostics.models import Analysis, ImageStatus

logger = logging.getLogger(__name__)

LAYERS = ("original", "cam", "segmentation")
# The overlays are drawn pictures of the same size as the original: lossless PNG keeps
# their thin lines sharp; the original is a photograph: JPEG at a high quality.
LAYER_FORMATS = {"original": "jpeg", "cam": "jpeg", "segmentation": "png"}
TILE_NAME = re.compile(r"^(?P<level>\d{1,2})/(?P<col>\d{1,5})_(?P<row>\d{1,5})\.(?P<fmt>jpeg|png)$")


def tiles_folder(analysis: Analysis) -> str:
    """The storage name of the analysis's tiles folder."""
    case = analysis.image.case
    return f"labs/{case.lab_id}/cases/{case.pk}/tiles/{analysis.pk}"


def layers_of(analysis: Analysis) -> dict[str, dict]:
    """The layers that were made, with their DZI geometry (empty until the tiles exist)."""
    tiles = analysis.tiles or {}
    return dict(tiles.get("layers") or {}) if tiles.get("folder") else {}


def descriptor_name(analysis: Analysis, layer: str) -> str | None:
    """The storage name of ``layer``'s ``.dzi``, or None when that layer has no tiles."""
    if layer not in layers_of(analysis):
        return None
    return f"{analysis.tiles['folder']}/{layer}.dzi"


def tile_name(analysis: Analysis, layer: str, level: int, col: int, row: int, fmt: str) -> str | None:
    """The storage name of one tile, or None when it is not a tile of that layer's pyramid."""
    layout = layers_of(analysis).get(layer)
    if layout is None or fmt != layout.get("format") or not 0 <= level < int(layout.get("levels", 0)):
        return None
    return f"{analysis.tiles['folder']}/{layer}_files/{level}/{col}_{row}.{fmt}"


def _decode_png(fieldfile):
    from PIL import Image

    with fieldfile.open("rb") as handle:
        data = handle.read()
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def make_tiles(analysis_id: int) -> dict:
    """Write the pyramids of ``analysis_id`` and record them on the Analysis (idempotent:
    a second run replaces the first). Returns what was stored in ``Analysis.tiles``.

    An image that is gone or not analysed is skipped; a file that cannot be read
    records the reason (``{"error": ...}``) so the viewer says why instead of waiting."""
    from ml.deepzoom import write_deep_zoom
    from ml.imageio import load_image

    analysis = Analysis.objects.select_related("image__case").filter(pk=analysis_id).first()
    if analysis is None or analysis.image.status != ImageStatus.DONE:
        return {}
    image = analysis.image
    folder = tiles_folder(analysis)
    path = Path(default_storage.path(folder))
    layers: dict[str, dict] = {}
    try:
        with image.file.open("rb") as handle:
            original = load_image(handle.read(), filename=image.file.name, max_pixels=settings.MAX_IMAGE_PIXELS)
        sources = {"original": original}
        if analysis.cam_overlay:
            sources["cam"] = _decode_png(analysis.cam_overlay)
        if analysis.segmentation_overlay:
            sources["segmentation"] = _decode_png(analysis.segmentation_overlay)
        height, width = original.shape[:2]
        for layer, source in sources.items():
            size = (source.shape[1], source.shape[0]) if layer == "original" else source.size
            if tuple(size) != (width, height):  # an overlay must lie exactly on the original
                logger.warning("analysis %s: %s overlay is %s, the original %s; layer left out", analysis_id, layer,
                               size, (width, height))
                continue
            layout = write_deep_zoom(source, path, layer, format=LAYER_FORMATS[layer], quality=90)
            layers[layer] = layout.as_dict()
    except (SoftTimeLimitExceeded, MemoryError):
        shutil.rmtree(path, ignore_errors=True)
        raise
    except Exception as exc:  # noqa: BLE001 (a broken file: record why, never retry forever)
        logger.warning("tiles of analysis %s could not be made", analysis_id, exc_info=True)
        shutil.rmtree(path, ignore_errors=True)
        tiles = {"error": f"The viewer tiles could not be made ({exc.__class__.__name__}: {exc})"[:500]}
    else:
        tiles = {"folder": folder, "layers": layers}
    Analysis.objects.filter(pk=analysis_id).update(tiles=tiles)
    return tiles
