"""Writers for real image files of every kind ml.imageio must accept or reject.

Each helper writes an actual file (through Pillow, tifffile or OpenCV, or byte
by byte where a library would refuse to write something that broken) so the
tests exercise the real decoders, never a mock.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image


def colour_blocks(height: int = 48, width: int = 64) -> np.ndarray:
    """An RGB uint8 test picture: a red block top-left, a blue block bottom-right, grey elsewhere.

    Asymmetric on purpose, so any rotation or flip moves the blocks somewhere checkable.
    """
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    image[: height // 3, : width // 3] = (220, 30, 30)
    image[-height // 3 :, -width // 3 :] = (30, 30, 220)
    return image


def encode_with_pillow(array: np.ndarray, fmt: str, mode: str | None = None, **save_kwargs) -> bytes:
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_jpeg(path: Path, array: np.ndarray, **save_kwargs) -> Path:
    return write_bytes(path, encode_with_pillow(array, "JPEG", quality=95, **save_kwargs))


def write_png(path: Path, array: np.ndarray, mode: str | None = None, **save_kwargs) -> Path:
    return write_bytes(path, encode_with_pillow(array, "PNG", mode, **save_kwargs))


def write_cmyk_jpeg(path: Path, array: np.ndarray) -> Path:
    return write_bytes(path, encode_with_pillow(array, "JPEG", "CMYK", quality=95))


def write_exif_rotated_jpeg(path: Path, array: np.ndarray, orientation: int) -> Path:
    """A JPEG whose stored pixels are ``array`` and whose EXIF says to show them with ``orientation``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return write_bytes(path, encode_with_pillow(array, "JPEG", quality=95, exif=exif.tobytes()))


def write_tiff16(path: Path, array: np.ndarray, *, orientation: int | None = None, **kwargs) -> Path:
    """A 16-bit (uint16) TIFF written by tifffile; RGB when ``array`` is H×W×3, else grayscale."""
    assert array.dtype == np.uint16
    photometric = "rgb" if array.ndim == 3 else "minisblack"
    extratags = [(274, "H", 1, orientation, False)] if orientation else []
    tifffile.imwrite(path, array, photometric=photometric, extratags=extratags, **kwargs)
    return path


def write_png16_rgb(path: Path, array: np.ndarray) -> Path:
    """A 16-bit-per-channel colour PNG (OpenCV writes these; Pillow cannot)."""
    assert array.dtype == np.uint16 and array.ndim == 3
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array[..., ::-1]))
    assert ok
    return write_bytes(path, encoded.tobytes())


def truncate(data: bytes, keep_fraction: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep_fraction))]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def decompression_bomb_png(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width × height`` 1-bit pixels.

    Its pixel data is a few bytes, so only a loader that trusts the header and
    starts decoding would allocate the gigabytes it claims.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )
