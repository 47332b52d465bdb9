"""Deep Zoom (DZI) pyramids of an image, for the full-resolution viewer (OpenSeadragon).

The Deep Zoom format (Microsoft, 2008; what OpenSeadragon's ``DziTileSource`` reads):

* levels ``0 .. N`` with ``N = ceil(log2(max(width, height)))``; level ``N`` is the
  image at full size, each lower level halves it (rounding up), level 0 is 1×1;
* each level is cut into ``tile_size`` squares, column-major names ``<col>_<row>.<format>``
  in ``<name>_files/<level>/``; a tile also carries ``overlap`` pixels of each
  neighbour it has (none past the image edge), so the last column and row are smaller;
* ``<name>.dzi`` is the XML descriptor: ``TileSize``, ``Overlap``, ``Format`` and the
  full ``Size``.

Pillow only (pyvips is not a dependency): each level is the previous one halved with a
box filter, as ``vips dzsave`` does by default. No Django here: the caller says where.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image

DZI_NAMESPACE = "http://schemas.microsoft.com/deepzoom/2008"
FORMATS = {"jpeg": "JPEG", "png": "PNG"}
DEFAULT_TILE_SIZE = 254  # 254 + 2 × 1 overlap = 256-pixel interior tiles
DEFAULT_OVERLAP = 1


@dataclass(frozen=True)
class DeepZoomLayout:
    """The geometry of a DZI pyramid: which levels and tiles there are, and where each tile lies."""

    width: int
    height: int
    tile_size: int = DEFAULT_TILE_SIZE
    overlap: int = DEFAULT_OVERLAP
    format: str = "jpeg"

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be at least 1×1, got {self.width}×{self.height}")
        if self.tile_size < 1 or self.overlap < 0 or self.overlap >= self.tile_size:
            raise ValueError(f"bad tile size {self.tile_size} / overlap {self.overlap}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {sorted(FORMATS)}, got {self.format!r}")

    @property
    def max_level(self) -> int:
        return math.ceil(math.log2(max(self.width, self.height)))

    @property
    def level_count(self) -> int:
        return self.max_level + 1

    def level_size(self, level: int) -> tuple[int, int]:
        """(width, height) of ``level``."""
        if not 0 <= level <= self.max_level:
            raise ValueError(f"level {level} is not in 0..{self.max_level}")
        scale = 2 ** (self.max_level - level)
        return math.ceil(self.width / scale), math.ceil(self.height / scale)

    def tile_grid(self, level: int) -> tuple[int, int]:
        """(columns, rows) of tiles at ``level``."""
        w, h = self.level_size(level)
        return math.ceil(w / self.tile_size), math.ceil(h / self.tile_size)

    def tile_bounds(self, level: int, col: int, row: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of a tile in the level's pixels, overlap included, x1/y1 exclusive."""
        cols, rows = self.tile_grid(level)
        if not (0 <= col < cols and 0 <= row < rows):
            raise ValueError(f"tile {col}_{row} is not on level {level} ({cols}×{rows} tiles)")
        w, h = self.level_size(level)
        x0 = col * self.tile_size - (self.overlap if col > 0 else 0)
        y0 = row * self.tile_size - (self.overlap if row > 0 else 0)
        x1 = min((col + 1) * self.tile_size + self.overlap, w)
        y1 = min((row + 1) * self.tile_size + self.overlap, h)
        return x0, y0, x1, y1

    @property
    def tile_count(self) -> int:
        return sum(c * r for c, r in (self.tile_grid(level) for level in range(self.level_count)))

    def descriptor(self) -> str:
        """The ``.dzi`` XML."""
        root = ElementTree.Element(
            "Image",
            {"xmlns": DZI_NAMESPACE, "Format": self.format, "Overlap": str(self.overlap), "TileSize": str(self.tile_size)},
        )
        ElementTree.SubElement(root, "Size", {"Width": str(self.width), "Height": str(self.height)})
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"

    @classmethod
    def from_descriptor(cls, xml: str | bytes) -> DeepZoomLayout:
        """Read a ``.dzi`` descriptor back (refuses anything that is not a Deep Zoom image)."""
        root = ElementTree.fromstring(xml)
        if root.tag != f"{{{DZI_NAMESPACE}}}Image":
            raise ValueError(f"not a Deep Zoom descriptor (root element {root.tag!r})")
        size = root.find(f"{{{DZI_NAMESPACE}}}Size")
        if size is None:
            raise ValueError("the descriptor has no Size element")
        return cls(
            width=int(size.attrib["Width"]), height=int(size.attrib["Height"]),
            tile_size=int(root.attrib["TileSize"]), overlap=int(root.attrib["Overlap"]), format=root.attrib["Format"],
        )

    def as_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "tile_size": self.tile_size, "overlap": self.overlap,
                "format": self.format, "levels": self.level_count, "tiles": self.tile_count}


def _as_pil(image: np.ndarray | Image.Image, format: str) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(f"expected an H×W, H×W×3 or H×W×4 uint8 array, got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    wanted = "RGBA" if format == "png" and image.mode in ("RGBA", "LA", "P") else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def _encode(tile: Image.Image, format: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if format == "jpeg":
        tile.save(buffer, "JPEG", quality=quality)
    else:
        tile.save(buffer, "PNG", compress_level=1)  # fast: tiles are many, and served once
    return buffer.getvalue()


def deep_zoom_tiles(
    image: np.ndarray | Image.Image,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    format: str = "jpeg",
    quality: int = 90,
) -> tuple[DeepZoomLayout, Iterator[tuple[int, int, int, bytes]]]:
    """The layout of ``image``'s pyramid and an iterator of ``(level, col, row, encoded tile)``,
    from the full-size level down to the 1×1 one (each level is made from the one above)."""
    picture = _as_pil(image, format)
    layout = DeepZoomLayout(picture.width, picture.height, tile_size, overlap, format)

    def tiles() -> Iterator[tuple[int, int, int, bytes]]:
        current = picture
        for level in range(layout.max_level, -1, -1):
            size = layout.level_size(level)
            if current.size != size:
                current = current.resize(size, Image.Resampling.BOX)
            cols, rows = layout.tile_grid(level)
            for col in range(cols):
                for row in range(rows):
                    tile = current.crop(layout.tile_bounds(level, col, row))
                    yield level, col, row, _encode(tile, format, quality)

    return layout, tiles()


def write_deep_zoom(
    image: np.ndarray | Image.Image,
    folder: str | os.PathLike,
    name: str,
    **options,
) -> DeepZoomLayout:
    """Write ``<folder>/<name>.dzi`` and ``<folder>/<name>_files/<level>/<col>_<row>.<format>``.

    The tiles are written to a temporary folder beside the target and moved into
    place at the end, so a reader never sees half a pyramid and a second run
    replaces the first one whole."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad pyramid name {name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layout, tiles = deep_zoom_tiles(image, **options)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder))
    try:
        files = work / f"{name}_files"
        for level in range(layout.level_count):
            (files / str(level)).mkdir(parents=True)
        for level, col, row, data in tiles:
            (files / str(level) / f"{col}_{row}.{layout.format}").write_bytes(data)
        target = folder / f"{name}_files"
        if target.exists():
            shutil.rmtree(target)
        os.replace(files, target)
        (work / f"{name}.dzi").write_text(layout.descriptor(), encoding="utf-8")
        os.replace(work / f"{name}.dzi", folder / f"{name}.dzi")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return layout
