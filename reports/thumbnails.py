"""Small JPEG thumbnails of slide images and their Grad-CAM overlays, for the PDF report.

Why a cache: decoding a full-size original (a 2560×1920 camera frame, a TIFF)
and re-encoding it costs far more than laying out a table row, and a report is
rendered more than once (draft, final, every amendment). So each thumbnail is
made once per image and kept next to the image's overlays, keyed by the image
id (and, for the CAM, by the model version that made it, since another model
makes another CAM). A report render only reads the cached files.

Why JPEG: reportlab embeds a JPEG file as it is (DCTDecode); a PNG would be
decoded and deflated again on every render.

The pipeline may call :func:`make_thumbnails` right after it writes the
overlays; a report render makes any that are missing (the first render only).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile
from PIL import Image, ImageOps

from diagnostics.models import Analysis, SlideImage

log = logging.getLogger(__name__)

THUMBNAIL_PX = 160  # longest side; printed at ~2 cm this is ~200 dpi
JPEG_QUALITY = 80


@dataclass(frozen=True)
class ImageThumbnails:
    """Absolute file paths of the cached thumbnails (None where there is no source)."""

    original: Path | None
    cam: Path | None


def _case_dir(image: SlideImage) -> str:
    case = image.case
    return f"labs/{case.lab_id}/cases/{case.pk}/overlays/thumbs"


def original_thumbnail_name(image: SlideImage) -> str:
    return f"{_case_dir(image)}/{image.pk}-original.jpg"


def cam_thumbnail_name(image: SlideImage, analysis: Analysis) -> str:
    return f"{_case_dir(image)}/{image.pk}-cam-m{analysis.model_version_id}.jpg"


def _open_source(source: FieldFile) -> Image.Image:
    """Open an image file; JPEGs are decoded at reduced size (``draft``), which
    is most of the speed-up for large camera frames."""
    with source.storage.open(source.name, "rb") as handle:
        picture = Image.open(handle)
        picture.draft("RGB", (THUMBNAIL_PX * 2, THUMBNAIL_PX * 2))
        picture = ImageOps.exif_transpose(picture)
        picture.load()
    return picture


def _open_with_ml_loader(source: FieldFile) -> Image.Image:
    """Fallback for what Pillow alone cannot read (16-bit TIFF and the like):
    the same loader the pipeline used on upload."""
    from ml.imageio import load_image

    with source.storage.open(source.name, "rb") as handle:
        return Image.fromarray(load_image(handle.read(), filename=source.name))


def _write_thumbnail(source: FieldFile, target: Path) -> None:
    try:
        picture = _open_source(source)
        if picture.mode not in ("RGB", "L"):
            picture = picture.convert("RGB")
    except (OSError, ValueError):
        picture = _open_with_ml_loader(source)
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: two renders racing on one image never see half a file.
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            picture.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure_thumbnail(source: FieldFile | None, name: str) -> Path | None:
    """The cached thumbnail ``name`` of ``source``, made now if missing.

    Returns None when there is no source file or it cannot be decoded (the
    report then shows "no image" rather than failing)."""
    if not source:
        return None
    target = Path(default_storage.path(name))
    if target.exists():
        return target
    try:
        _write_thumbnail(source, target)
    except FileNotFoundError:
        log.warning("thumbnail source missing: %s", source.name)
        return None
    except Exception:
        log.exception("could not make a thumbnail of %s", source.name)
        return None
    return target


def make_thumbnails(image: SlideImage, analysis: Analysis | None) -> ImageThumbnails:
    """Both thumbnails of one image (cached; made once)."""
    original = ensure_thumbnail(image.file, original_thumbnail_name(image))
    cam = None
    if analysis is not None and analysis.cam_overlay:
        cam = ensure_thumbnail(analysis.cam_overlay, cam_thumbnail_name(image, analysis))
    return ImageThumbnails(original=original, cam=cam)
