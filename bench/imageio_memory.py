"""Peak memory and time of ``ml.imageio`` per image kind.

Each kind is written once to a temporary file, then checked (``inspect_image``)
and decoded (``load_image``) in a fresh Python process each, so one
measurement's memory never hides another's. A process resets its peak resident set
(``/proc/self/clear_refs``), then reports how far the peak (``VmHWM``) rose
above the resident set just before the call, divided by the image's pixels: bytes per pixel at peak, the file's own
bytes (read into memory) included (``*_bpp``), and without them (``*_decode_bpp``: what decoding costs on top
of the file's bytes, which every caller holds anyway: the upload to hash and store them, the worker as read
from storage). The bound of the hardening issue, about 8 bytes per pixel, is on the decode; a float32 RGB
TIFF's file alone is about 6 bytes per pixel (float noise barely deflates).

The content is a smooth synthetic smear (gradients and blobs), so deflate
compresses it as a real field of view compresses: the 16-bit TIFF of the
hardening issue (7000² pixels, a few hundred KB) is ``tiff_rgb16``.

Usage::

    python bench/imageio_memory.py                 # 7000×7000 (49 M pixels)
    python bench/imageio_memory.py --side 3000     # quicker
    python bench/imageio_memory.py --kinds tiff_rgb16,png_rgb16

The last line printed is one JSON object: per kind, ``inspect_bpp`` /
``load_bpp`` (bytes per pixel at peak), ``inspect_decode_bpp`` /
``load_decode_bpp`` (the same less the file's bytes), ``inspect_s`` /
``load_s`` (seconds) and the file size; plus ``max_bpp`` and
``max_decode_bpp`` over all kinds and the side length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# name -> (file suffix, channels, dtype, full-scale value)
KINDS = {
    "jpeg_rgb8": (".jpg", 3, np.uint8, 255),
    "png_rgb8": (".png", 3, np.uint8, 255),
    "png_rgba8": (".png", 4, np.uint8, 255),
    "png_gray16": (".png", 1, np.uint16, 65535),
    "png_rgb16": (".png", 3, np.uint16, 65535),
    "png_rgba16": (".png", 4, np.uint16, 65535),
    "tiff_rgb8": (".tif", 3, np.uint8, 255),
    "tiff_gray16": (".tif", 1, np.uint16, 65535),
    "tiff_rgb16": (".tif", 3, np.uint16, 65535),
    "tiff_rgb12in16": (".tif", 3, np.uint16, 4095),
    "tiff_rgba16": (".tif", 4, np.uint16, 65535),
    "tiff_gray_float32": (".tif", 1, np.float32, 1.0),
    "tiff_rgb_float32": (".tif", 3, np.float32, 1.0),
}

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from ml import imageio

def status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])

path, operation, warm = sys.argv[1], sys.argv[2], sys.argv[3]
# Warm every lazy import and codec on a small file of the same kind, so the
# figure is the decode's own memory, not the libraries'.
imageio.load_image(warm)
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # reset the peak (VmHWM) to the current resident set
before = status_kb("VmRSS")
started = time.perf_counter()
if operation == "inspect":
    info = imageio.inspect_image(path, max_pixels=10**9)
else:
    array = imageio.load_image(path, max_pixels=10**9)
elapsed = time.perf_counter() - started
peak = status_kb("VmHWM")
print(json.dumps({{"peak_growth_bytes": (peak - before) * 1024, "seconds": elapsed}}))
"""


def synthetic(side: int, channels: int, dtype, full_scale: float) -> np.ndarray:
    """A smooth smear-like image: a pale background, purple blobs, a gentle gradient."""
    y = np.linspace(0.0, 1.0, side, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, side, dtype=np.float32)[None, :]
    base = 0.85 - 0.1 * y - 0.05 * x
    blobs = np.zeros((side, side), np.float32)
    rng = np.random.default_rng(0)
    for cy, cx in rng.uniform(0, 1, (12, 2)):
        blobs += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.002)
    blobs = np.clip(blobs, 0, 1)
    planes = [base - 0.4 * blobs, base - 0.6 * blobs, base - 0.2 * blobs, np.ones_like(base)][: max(channels, 1)]
    if channels == 1:
        planes = [base - 0.5 * blobs]
    image = np.stack(planes, axis=-1) if channels > 1 else planes[0]
    scaled = np.clip(image, 0, 1) * full_scale
    return scaled.astype(dtype) if np.dtype(dtype).kind == "f" else np.rint(scaled).astype(dtype)


def write(kind: str, side: int, folder: Path, stem: str = "") -> Path:
    suffix, channels, dtype, full_scale = KINDS[kind]
    path = folder / f"{kind}{stem}{suffix}"
    array = synthetic(side, channels, dtype, full_scale)
    if suffix == ".tif":
        import tifffile

        tifffile.imwrite(path, array, compression="zlib", photometric="rgb" if channels >= 3 else "minisblack",
                         rowsperstrip=64, extrasamples=("unassalpha",) if channels == 4 else None)
    elif dtype == np.uint16:
        import cv2

        bgr = array if channels == 1 else array[..., [2, 1, 0, 3][:channels]]
        cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        from PIL import Image

        Image.fromarray(array).save(path, quality=90) if suffix == ".jpg" else Image.fromarray(array).save(path)
    return path


def measure(path: Path, warm: Path, operation: str) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD.format(root=str(REPO_ROOT)), str(path), operation, str(warm)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=7000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    pixels = args.side * args.side
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mf-imageio-bench-") as folder:
        for kind in kinds:
            path = write(kind, args.side, Path(folder))
            warm = write(kind, 64, Path(folder), stem="-warm")
            row: dict = {"file_bytes": path.stat().st_size}
            for operation in ("inspect", "load"):
                measured = measure(path, warm, operation)
                if "error" in measured:
                    row[f"{operation}_error"] = measured["error"]
                    continue
                row[f"{operation}_bpp"] = round(measured["peak_growth_bytes"] / pixels, 2)
                row[f"{operation}_decode_bpp"] = round((measured["peak_growth_bytes"] - row["file_bytes"]) / pixels, 2)
                row[f"{operation}_s"] = round(measured["seconds"], 2)
            path.unlink()
            warm.unlink()
            results[kind] = row
            print(f"{kind:18s} file {row['file_bytes'] / 1e6:8.2f} MB {row['file_bytes'] / pixels:5.2f} B/px  "
                  f"inspect {row.get('inspect_bpp', '—')!s:>6} B/px (decode {row.get('inspect_decode_bpp', '—')!s:>5}) "
                  f"{row.get('inspect_s', '—')!s:>6} s  "
                  f"load {row.get('load_bpp', '—')!s:>6} B/px (decode {row.get('load_decode_bpp', '—')!s:>5}) "
                  f"{row.get('load_s', '—')!s:>6} s", flush=True)

    def most(*keys: str) -> float | None:
        values = [row[key] for row in results.values() for key in keys if key in row]
        return max(values) if values else None

    print(json.dumps({"side": args.side, "pixels": pixels, "max_bpp": most("inspect_bpp", "load_bpp"),
                      "max_decode_bpp": most("inspect_decode_bpp", "load_decode_bpp"), "kinds": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
