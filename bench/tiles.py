"""Deep Zoom tile making (``ml.deepzoom.write_deep_zoom``, what ``diagnostics.tasks.make_tiles``
runs three times an image: the original and Grad-CAM as JPEG, the segmentation as PNG).

Usage::

    .venv/bin/python bench/tiles.py [--image PATH] [--repeats 5]

Without ``--image`` it takes the first CBC Testing image of the shared data (640×480),
and also that image resized to 2560×1920 (a 5-megapixel camera frame). Prints one JSON
line per size and format: tiles, bytes written, median seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.datapaths import shared_data_dir  # noqa: E402
from ml.deepzoom import write_deep_zoom  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    path = args.image or sorted((shared_data_dir() / "cbc" / "Testing" / "Images").glob("*.jpg"))[0]
    original = np.asarray(Image.open(path).convert("RGB"))
    pictures = {f"{original.shape[1]}x{original.shape[0]}": original}
    if args.image is None:
        pictures["2560x1920"] = np.asarray(Image.fromarray(original).resize((2560, 1920), Image.Resampling.LANCZOS))
    for size, picture in pictures.items():
        for fmt in ("jpeg", "png"):
            seconds, written, tiles = [], 0, 0
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as folder:
                    started = time.perf_counter()
                    layout = write_deep_zoom(picture, folder, "layer", format=fmt, quality=90)
                    seconds.append(time.perf_counter() - started)
                    written = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
                    tiles = layout.tile_count
            print(json.dumps({"image": path.name, "size": size, "format": fmt, "levels": layout.level_count,
                              "tiles": tiles, "bytes": written, "median_s": round(statistics.median(seconds), 4),
                              "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
