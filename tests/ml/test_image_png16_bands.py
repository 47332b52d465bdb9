"""A 16-bit colour PNG is decoded a band of rows at a time (its image data inflated as a
stream, each band unfiltered by libpng behind the row before it), so its memory stays
bounded; the result is the same as decoding the whole file, for every PNG row filter,
band size and IDAT layout. Damaged data is refused with its reason; what cannot be split
(a tRNS colour key) is decoded whole."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from ml import imageio
from ml.errors import ImageLoadError
from tests.ml.imagefiles import _png_chunk

FILTERS = {
    "none": cv2.IMWRITE_PNG_FILTER_NONE,
    "sub": cv2.IMWRITE_PNG_FILTER_SUB,
    "up": cv2.IMWRITE_PNG_FILTER_UP,
    "avg": cv2.IMWRITE_PNG_FILTER_AVG,
    "paeth": cv2.IMWRITE_PNG_FILTER_PAETH,
}


def smooth_rgb16(height: int, width: int, channels: int, peak: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, peak + 1, (height, width, channels)).astype(np.float32)
    array = cv2.GaussianBlur(noise, (5, 5), 2).astype(np.uint16)
    array.flat[0] = peak
    if channels == 4:
        array[..., 3] = np.linspace(0, 65535, width, dtype=np.float64).astype(np.uint16)[None, :]
    return array


def encode(rgb: np.ndarray, png_filter: int = cv2.IMWRITE_PNG_FILTER_PAETH) -> bytes:
    order = [2, 1, 0] if rgb.shape[2] == 3 else [2, 1, 0, 3]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., order]), [cv2.IMWRITE_PNG_FILTER, png_filter])
    assert ok
    return encoded.tobytes()


def expected(rgb: np.ndarray, full_scale: int) -> np.ndarray:
    colour = np.clip(rgb[..., :3].astype(np.float64) / full_scale, 0, 1)
    if rgb.shape[2] == 4:
        alpha = rgb[..., 3:].astype(np.float64) / 65535
        colour = colour * alpha + (1 - alpha)
    return np.rint(colour * 255).astype(np.uint8)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, position = [], 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4 : position + 8]
        out.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return out


def assemble(parts: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(_png_chunk(kind, payload) for kind, payload in parts)


@pytest.fixture
def banded_only(monkeypatch):
    """Bands of a few rows, and no whole-image OpenCV decode to fall back on."""
    def whole_decode(data):
        raise AssertionError("the PNG was decoded whole, not band by band")

    monkeypatch.setattr(imageio, "_decode_with_opencv", whole_decode)
    monkeypatch.setattr(imageio, "_PNG_BAND_BYTES", 2000)  # a few rows per band


@pytest.mark.parametrize("png_filter", sorted(FILTERS))
@pytest.mark.parametrize("channels", [3, 4])
def test_every_row_filter_decodes_band_by_band_as_the_whole_file(banded_only, png_filter, channels) -> None:
    source = smooth_rgb16(53, 71, channels, peak=4095, seed=channels)
    data = encode(source, FILTERS[png_filter])
    array, info = imageio.load_image_and_info(data, filename="camera16.png")
    np.testing.assert_array_equal(array, expected(source, 4095))
    assert info.mode == ("RGB;16" if channels == 3 else "RGBA;16")


def test_image_data_split_over_many_idat_chunks(banded_only) -> None:
    source = smooth_rgb16(40, 33, 3, peak=65535)
    parts = chunks(encode(source))
    stream = b"".join(payload for kind, payload in parts if kind == b"IDAT")
    split = [(b"IDAT", stream[i : i + 97]) for i in range(0, len(stream), 97)]
    data = assemble([parts[0], *split, (b"IEND", b"")])
    np.testing.assert_array_equal(imageio.load_image(data, filename="split.png"), expected(source, 65535))


def test_exif_orientation_after_the_image_data_is_applied(banded_only) -> None:
    source = smooth_rgb16(30, 50, 3, peak=65535)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    payload = exif.tobytes()
    payload = payload[6:] if payload.startswith(b"Exif\x00\x00") else payload
    parts = chunks(encode(source))
    data = assemble([*parts[:-1], (b"eXIf", payload), parts[-1]])
    array = imageio.load_image(data, filename="rotated.png")
    np.testing.assert_array_equal(array, np.rot90(expected(source, 65535), -1))


def test_damaged_image_data_is_refused_with_its_reason() -> None:
    parts = chunks(encode(smooth_rgb16(40, 40, 3, peak=65535)))
    stream = bytearray(b"".join(payload for kind, payload in parts if kind == b"IDAT"))
    stream[len(stream) // 2 : len(stream) // 2 + 16] = b"\xff" * 16
    data = assemble([parts[0], (b"IDAT", bytes(stream)), (b"IEND", b"")])
    with pytest.raises(ImageLoadError) as raised:
        imageio.load_image(data, filename="damaged.png")
    assert raised.value.code in ("unsupported", "truncated"), raised.value


def test_image_data_with_fewer_rows_than_the_header_says_is_truncated() -> None:
    source = smooth_rgb16(40, 40, 3, peak=65535)
    parts = chunks(encode(source, cv2.IMWRITE_PNG_FILTER_NONE))
    stride = 1 + 40 * 3 * 2
    rows = zlib.decompress(b"".join(payload for kind, payload in parts if kind == b"IDAT"))
    short = zlib.compress(rows[: 25 * stride])
    data = assemble([parts[0], (b"IDAT", short), (b"IEND", b"")])
    with pytest.raises(ImageLoadError) as raised:
        imageio.load_image(data, filename="short.png")
    assert raised.value.code == "truncated"
    assert "25 of its 40 rows" in raised.value.reason


def test_a_colour_keyed_png_is_decoded_whole() -> None:
    source = smooth_rgb16(30, 30, 3, peak=65535)
    parts = chunks(encode(source))
    key = struct.pack(">HHH", 1, 2, 3)  # a colour no pixel has
    data = assemble([parts[0], (b"tRNS", key), *parts[1:]])
    assert imageio._decode_png16_by_bands(data, "keyed.png") is None
    np.testing.assert_array_equal(imageio.load_image(data, filename="keyed.png")[..., :3], expected(source, 65535))


@pytest.mark.parametrize("what", ["interlaced", "colour-keyed"])
def test_a_large_png_that_can_only_be_decoded_whole_is_refused_with_its_reason(what) -> None:
    # The header alone decides: 2100×2000 pixels is over the 4-megapixel limit for a whole decode.
    interlace = 1 if what == "interlaced" else 0
    header = struct.pack(">IIBBBBB", 2100, 2000, 16, 2, 0, 0, interlace)
    parts = [(b"IHDR", header), (b"IDAT", zlib.compress(b"\x00" * 64)), (b"IEND", b"")]
    if what == "colour-keyed":
        parts.insert(1, (b"tRNS", struct.pack(">HHH", 1, 2, 3)))
    with pytest.raises(ImageLoadError) as raised:
        imageio.load_image(assemble(parts), filename="big.png")
    assert raised.value.code == "too_large"
    assert f"This {what}" in raised.value.reason and "2100×2000" in raised.value.reason
    assert "Save it without interlacing" in raised.value.reason
