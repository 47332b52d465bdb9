"""Every kind of bad file raises ImageLoadError with its stable code and a readable reason."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from ml.errors import ImageLoadError
from ml.imageio import inspect_image, load_image
from tests.ml.imagefiles import (
    colour_blocks,
    decompression_bomb_png,
    encode_with_pillow,
    truncate,
    write_bytes,
    write_png,
)


def _error(source, **kwargs) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(source, **kwargs)
    error = info.value
    assert error.reason and error.reason[-1] == "." and len(error.reason) > 20, error.reason
    return error


def test_empty_file(tmp_path: Path) -> None:
    error = _error(write_bytes(tmp_path / "empty.png", b""))
    assert error.code == "empty"
    assert error.filename == "empty.png"
    assert str(error).startswith("empty.png: ")


def test_text_file_named_like_an_image(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "notes.jpg", b"Patient 12, smear 3: see attached.\n" * 10)
    assert _error(path).code == "not_an_image"


def test_unlisted_extension(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "smear.gif", encode_with_pillow(colour_blocks(), "GIF"))
    error = _error(path)
    assert error.code == "wrong_extension"
    assert "'.gif'" in error.reason


def test_no_extension(tmp_path: Path) -> None:
    path = write_png(tmp_path / "smear", colour_blocks())
    error = _error(path)
    assert error.code == "wrong_extension"
    assert "no extension" in error.reason


def test_png_named_jpg(tmp_path: Path) -> None:
    path = write_png(tmp_path / "smear.jpg", colour_blocks())
    error = _error(path)
    assert error.code == "wrong_extension"
    assert "PNG" in error.reason and "'.jpg'" in error.reason


def test_jpeg_named_tiff(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "smear.TIFF", encode_with_pillow(colour_blocks(), "JPEG"))
    error = _error(path)
    assert error.code == "wrong_extension"
    assert "JPEG" in error.reason


def test_extension_is_not_checked_for_anonymous_bytes() -> None:
    # Raw bytes carry no name, so only the content decides.
    array = load_image(encode_with_pillow(colour_blocks(), "PNG"))
    assert array.shape == (48, 64, 3)


def test_other_image_format_without_a_name_is_unsupported() -> None:
    error = _error(encode_with_pillow(colour_blocks(), "BMP"))
    assert error.code == "unsupported"
    assert "BMP" in error.reason


def test_one_by_one_pixel(tmp_path: Path) -> None:
    path = write_png(tmp_path / "dot.png", np.zeros((1, 1, 3), np.uint8))
    error = _error(path)
    assert error.code == "too_small"
    assert "1×1" in error.reason


def test_min_side_is_configurable(tmp_path: Path) -> None:
    path = write_png(tmp_path / "strip.png", np.zeros((20, 300, 3), np.uint8))
    assert load_image(path, min_side=20).shape == (20, 300, 3)
    assert _error(path, min_side=21).code == "too_small"


def test_decompression_bomb_header_is_rejected_before_decoding(tmp_path: Path) -> None:
    # 10 000 × 10 000 pixels (300 MB as RGB) from a ~100-byte file. It is below Pillow's own
    # DecompressionBombError threshold, so only our header check stands in the way.
    assert 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    path = write_bytes(tmp_path / "bomb.png", decompression_bomb_png(10_000, 10_000))
    assert path.stat().st_size < 200
    error = _error(path)
    assert error.code == "too_large"
    assert "100,000,000" in error.reason and "50,000,000" in error.reason


def test_pillow_bomb_guard_is_reported_as_too_large(tmp_path: Path) -> None:
    # With our own limit lifted, Pillow's DecompressionBombError (> 2 × MAX_IMAGE_PIXELS) still stops it.
    side = int((3 * Image.MAX_IMAGE_PIXELS) ** 0.5)
    path = write_bytes(tmp_path / "bomb.png", decompression_bomb_png(side, side))
    assert _error(path, max_pixels=10**12).code == "too_large"


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    path = write_png(tmp_path / "smear.png", colour_blocks(48, 64))
    assert load_image(path, max_pixels=48 * 64).shape == (48, 64, 3)
    assert _error(path, max_pixels=48 * 64 - 1).code == "too_large"


def _noise(dtype=np.uint8, high: int = 256) -> np.ndarray:
    # Noise, so that every format gives a file large enough to cut at any fraction.
    return np.random.default_rng(0).integers(0, high, (64, 80, 3), dtype=dtype)


def _encode_with_opencv(extension: str, array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(extension, np.ascontiguousarray(array[..., ::-1]))
    assert ok
    return encoded.tobytes()


def _tifffile_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, photometric="rgb")
    return buffer.getvalue()


COMPLETE_FILES = {
    "jpeg": ("cut.jpg", lambda: encode_with_pillow(_noise(), "JPEG", quality=95)),
    "png": ("cut.png", lambda: encode_with_pillow(_noise(), "PNG")),
    "tiff": ("cut.tif", lambda: encode_with_pillow(_noise(), "TIFF")),
    # Pillow writes the image directory after the pixels: a cut loses the directory.
    "tiff-lzw": ("cut.tif", lambda: encode_with_pillow(_noise(), "TIFF", compression="tiff_lzw")),
    "tiff-16bit": ("cut.tif", lambda: _tifffile_bytes(_noise(np.uint16, 65536))),
    "tiff-16bit-lzw": ("cut.tif", lambda: _encode_with_opencv(".tif", _noise(np.uint16, 65536))),
    "png-16bit": ("cut.png", lambda: _encode_with_opencv(".png", _noise(np.uint16, 65536))),
}


@pytest.mark.parametrize("kind", sorted(COMPLETE_FILES))
@pytest.mark.parametrize("keep_fraction", [0.1, 0.5, 0.9, 0.99])
def test_file_cut_short(tmp_path: Path, kind: str, keep_fraction: float) -> None:
    name, encode = COMPLETE_FILES[kind]
    data = encode()
    assert load_image(data, filename=name).shape == (64, 80, 3)  # the complete file is fine
    path = write_bytes(tmp_path / name, truncate(data, keep_fraction))
    assert _error(path).code == "truncated"


def test_only_the_first_bytes_of_a_jpeg(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "stub.jpg", encode_with_pillow(colour_blocks(), "JPEG")[:12])
    assert _error(path).code == "truncated"


def test_complete_jpeg_with_a_damaged_header_is_unsupported(tmp_path: Path) -> None:
    data = bytearray(encode_with_pillow(_noise(), "JPEG"))
    data[20:400] = b"\xff" * 380  # overwrite the quantisation and Huffman tables
    error = _error(write_bytes(tmp_path / "damaged.jpg", bytes(data)))
    assert error.code == "unsupported"
    assert "damaged" in error.reason


@pytest.mark.parametrize(
    ("shape", "photometric"), [((30, 40, 4), "separated"), ((30, 40, 5), "minisblack")], ids=["cmyk16", "5-channel"]
)
def test_16bit_tiff_layouts_that_are_not_pictures_are_unsupported(
    tmp_path: Path, shape: tuple[int, ...], photometric: str
) -> None:
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint16), photometric=photometric, planarconfig="contig")
    assert _error(path).code == "unsupported"


def test_png_without_its_end_marker(tmp_path: Path) -> None:
    data = encode_with_pillow(colour_blocks(), "PNG")
    path = write_bytes(tmp_path / "cut.png", data[:-12])  # the IEND chunk is the last 12 bytes
    assert _error(path).code == "truncated"


def test_missing_file(tmp_path: Path) -> None:
    error = _error(tmp_path / "nowhere.png")
    assert error.code == "not_found"


def test_inspect_image_runs_the_same_checks(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "cut.jpg", truncate(encode_with_pillow(colour_blocks(), "JPEG", quality=95), 0.8))
    with pytest.raises(ImageLoadError) as info:
        inspect_image(path)
    assert info.value.code == "truncated"
