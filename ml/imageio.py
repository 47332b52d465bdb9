"""Loading microscope images from real lab files, safely.

Lab files arrive as JPEG from phone-mounted cameras (often EXIF-rotated), PNG
exports, and TIFF from microscope cameras (often 16-bit, sometimes 12-bit data
stored in 16-bit containers). :func:`load_image` turns any of them into one
thing, an ``H×W×3 uint8 RGB`` array, or raises :class:`ml.errors.ImageLoadError`
with a stable ``code`` and a sentence lab staff can act on.

Order of checks (cheap and safe first, decoding last):

1. ``empty``: zero bytes.
2. ``wrong_extension``: the file name's extension is not one of
   :data:`ALLOWED_EXTENSIONS`, or the content is a different allowed format
   than the extension says (a PNG named ``.jpg``). Skipped when no file name is
   known (raw bytes without ``filename=``).
3. ``not_an_image`` / ``truncated`` / ``unsupported``: the header is read.
   Content Pillow cannot identify is ``truncated`` when it starts with a
   JPEG/PNG/TIFF signature (the file was cut short), else ``not_an_image``.
   Image formats other than JPEG/PNG/TIFF (GIF, BMP, WebP...) are ``unsupported``.
4. ``too_large`` / ``too_small``: width × height from the *header* is checked
   against ``max_pixels`` before any pixel is decoded, so a decompression bomb
   (a small file that claims 100 000 × 100 000 pixels) never allocates memory.
   Pillow's own ``DecompressionBombError`` is reported as ``too_large`` too.
5. Decoding: a cut-off file is ``truncated``; anything else Pillow, tifffile or
   OpenCV cannot decode is ``unsupported``.

Conversions: EXIF orientation is applied (``PIL.ImageOps.exif_transpose`` or
the same table on NumPy arrays); grayscale, palette and CMYK become RGB;
transparency is composited on white (the colour of an empty slide under
bright-field light, so cut-out regions look like background, not like dark
stain).

High bit depth (16-bit TIFF and PNG, float TIFF): Pillow silently keeps only
the high byte of 16-bit RGB, which makes 12-bit camera data (max 4095) look
16× too dark. So these files are decoded at full depth (tifffile strip by
strip; 16-bit colour PNG band by band through OpenCV's libpng; OpenCV whole for
what neither can split, and an interlaced or colour-keyed 16-bit PNG over
``PNG16_WHOLE_MAX_PIXELS`` is refused rather than decoded whole) and scaled to 8 bits by **the smallest bit depth that holds the brightest
value** (max 4095 → divided by 4095, max 65535 → by 65535, 8-bit data stored in
16 bits → by 255). One factor for all channels and no offset, so stain colour
balance is kept; there is no contrast stretch. Floats in [0, 1] are taken as
is; other floats are divided by their maximum.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ml.errors import ImageLoadError

ALLOWED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
DEFAULT_MAX_PIXELS = 50_000_000  # decompression-bomb limit
DEFAULT_MIN_SIDE = 16  # 1x1 and other tiny images are rejected

# Which format each allowed extension promises.
EXTENSION_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
# Pillow calls multi-picture JPEGs from phones "MPO"; they are JPEG files.
_PILLOW_FORMAT_ALIASES = {"MPO": "JPEG"}
ALLOWED_FORMATS = frozenset(EXTENSION_FORMATS.values())

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)

# EXIF orientation -> NumPy equivalent of the Pillow transpose exif_transpose uses.
_ORIENTATION_OPS = {
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: np.swapaxes(a, 0, 1),  # TRANSPOSE
    6: lambda a: np.rot90(a, -1),  # ROTATE_270 (clockwise)
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],  # TRANSVERSE
    8: lambda a: np.rot90(a, 1),  # ROTATE_90 (counter-clockwise)
}
_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_BITS_PER_SAMPLE_TAG = 258


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect_image` learnt about a file.

    ``width``/``height`` are those of the array :func:`load_image` returns
    (after EXIF rotation); ``format`` is ``JPEG``, ``PNG`` or ``TIFF``;
    ``mode`` is the source pixel layout (Pillow's name, e.g. ``CMYK``,
    ``RGBA``, ``I;16``; ``RGB;16`` / ``L;16`` / ``RGBA;16`` for high-bit-depth
    files decoded at full depth).
    """

    width: int
    height: int
    format: str
    mode: str


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the identity of an uploaded file."""
    return hashlib.sha256(data).hexdigest()


def load_image(
    source: str | Path | bytes | BinaryIO,
    *,
    filename: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> np.ndarray:
    """Decode ``source`` into an ``H×W×3 uint8 RGB`` array or raise :class:`ImageLoadError`.

    ``filename`` names the file for the extension check and error messages;
    it defaults to the path's name (or a file object's ``name``). Raw bytes
    without a ``filename`` skip the extension check.
    """
    return load_image_and_info(source, filename=filename, max_pixels=max_pixels, min_side=min_side)[0]


def inspect_image(
    source: str | Path | bytes | BinaryIO,
    *,
    filename: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> ImageInfo:
    """Run every check of :func:`load_image` (it fully decodes, so truncation is caught) and return metadata."""
    return load_image_and_info(source, filename=filename, max_pixels=max_pixels, min_side=min_side)[1]


def load_image_and_info(
    source: str | Path | bytes | BinaryIO,
    *,
    filename: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> tuple[np.ndarray, ImageInfo]:
    """:func:`load_image` and :func:`inspect_image` in one decode (for workers that store both)."""
    data, filename = _read_source(source, filename)
    if len(data) == 0:
        raise ImageLoadError("empty", "The file is empty (0 bytes).", filename=filename)
    expected_format = _check_extension(filename)
    signature_format = _sniff(data)

    with warnings.catch_warnings():
        # Our own pixel limit is checked below; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like
        image = _open_header(data, filename, signature_format)
        file_format = _PILLOW_FORMAT_ALIASES.get(image.format or "", image.format or "?")
        _check_format(file_format, expected_format, filename)
        width, height = image.size
        _check_size(width, height, filename, max_pixels=max_pixels, min_side=min_side)

        if file_format == "PNG" and _lacks_end_marker(data, "PNG"):
            raise ImageLoadError(
                "truncated", "The PNG file is cut short (its end marker is missing).", filename=filename
            )
        if file_format == "TIFF" and _tiff_is_cut_short(data):
            raise ImageLoadError(
                "truncated", "The TIFF file is cut short (part of it lies past the end of the file).", filename=filename
            )
        full_depth = _needs_full_depth(image, data, file_format)
        # Pillow decodes a whole PNG to look for EXIF after its image data: not for one decoded here.
        orientation = _png_exif_orientation(data) if full_depth and file_format == "PNG" else _exif_orientation(image)
        if full_depth:
            array, mode = _decode_full_depth(data, file_format, filename)
        else:
            mode = image.mode
            array = _decode_with_pillow(image, filename)
        del image
        array = _apply_orientation(array, orientation)

    height, width = array.shape[:2]
    _check_size(width, height, filename, max_pixels=max_pixels, min_side=min_side)
    return np.ascontiguousarray(array), ImageInfo(width=width, height=height, format=file_format, mode=mode)


# --------------------------------------------------------------------------- reading & checks


def _read_source(source: str | Path | bytes | BinaryIO, filename: str | None) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), filename
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = filename or path.name
        try:
            return path.read_bytes(), name
        except FileNotFoundError:
            raise ImageLoadError("not_found", f"No file at {path}.", filename=name) from None
        except IsADirectoryError:
            raise ImageLoadError("not_an_image", f"{path} is a folder, not an image file.", filename=name) from None
        except OSError as exc:
            raise ImageLoadError("unreadable", f"The file could not be read: {exc}.", filename=name) from exc
    if hasattr(source, "read"):
        name = filename or _basename(getattr(source, "name", None))
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("load_image needs a binary file object (opened with 'rb')")
        return bytes(data), name
    raise TypeError(f"load_image cannot read a {type(source).__name__}; pass a path, bytes or a binary file")


def _basename(name: object) -> str | None:
    return Path(name).name if isinstance(name, str) and name else None


def _check_extension(filename: str | None) -> str | None:
    """The format the file name promises, or None when there is no name to check."""
    if filename is None:
        return None
    suffix = Path(filename).suffix.lower()
    allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
    if not suffix:
        raise ImageLoadError(
            "wrong_extension", f"The file name has no extension; accepted: {allowed}.", filename=filename
        )
    if suffix not in ALLOWED_EXTENSIONS:
        raise ImageLoadError(
            "wrong_extension", f"'{suffix}' files are not accepted; accepted: {allowed}.", filename=filename
        )
    return EXTENSION_FORMATS[suffix]


def _sniff(data: bytes) -> str | None:
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def _open_header(data: bytes, filename: str | None, signature_format: str | None) -> Image.Image:
    """Read only the header (Pillow decodes lazily), mapping failures to error codes."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(
            "too_large", f"The image is far too large to decode safely ({exc}).", filename=filename
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if signature_format == "TIFF":
            return _TiffHeaderOnly.from_bytes(data, filename, exc)
        if signature_format is not None and _lacks_end_marker(data, signature_format):
            raise ImageLoadError(
                "truncated", f"The file starts like a {signature_format} image but is cut short.", filename=filename
            ) from exc
        if signature_format is not None:
            raise ImageLoadError(
                "unsupported",
                f"The file starts like a {signature_format} image but its header is damaged ({exc}).",
                filename=filename,
            ) from exc
        raise ImageLoadError(
            "not_an_image", "The file is not an image (its content is not JPEG, PNG or TIFF).", filename=filename
        ) from exc


def _lacks_end_marker(data: bytes, file_format: str) -> bool:
    """True when a JPEG/PNG does not end with its end marker: the file was cut short."""
    if file_format == "JPEG":
        return b"\xff\xd9" not in data[-64:]  # a little slack for padding some cameras append
    if file_format == "PNG":
        return b"IEND" not in data
    return False


class _TiffHeaderOnly:
    """Header of a TIFF that Pillow cannot open but tifffile can (float, >4 samples, BigTIFF...)."""

    format = "TIFF"

    def __init__(self, size: tuple[int, int], orientation: int = 1):
        self.size = size
        self.mode = "?"
        self.orientation = orientation

    @classmethod
    def from_bytes(cls, data: bytes, filename: str | None, pillow_error: Exception) -> _TiffHeaderOnly:
        import tifffile

        if _tiff_is_cut_short(data):
            raise ImageLoadError(
                "truncated", "The TIFF file is cut short (part of it lies past the end of the file).", filename=filename
            ) from pillow_error
        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                page = tif.pages.first
                size = (int(page.imagewidth), int(page.imagelength))
                orientation_tag = page.tags.get("Orientation")
                orientation = int(orientation_tag.value) if orientation_tag is not None else 1
        except Exception as exc:
            raise ImageLoadError(
                "unsupported",
                f"The file looks like a TIFF but neither Pillow nor tifffile can read it ({exc}).",
                filename=filename,
            ) from exc
        return cls(size, orientation)

    def getexif(self) -> dict[int, int]:
        return {_EXIF_ORIENTATION_TAG: self.orientation}


# Bytes per value of each TIFF field type (TIFF 6.0 and BigTIFF).
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_TIFF_OFFSET_TAGS = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), (TileOffsets, TileByteCounts)


def _tiff_is_cut_short(data: bytes) -> bool:
    """True when the first image directory, a tag value, or a strip/tile of a TIFF lies past the end.

    Pillow and tifffile report a cut TIFF as a generic "corrupted IFD" or a
    missing codec, so this walk over the first directory tells lab staff the
    real cause: the upload or copy stopped early.
    """
    big = data[2:4] in (b"+\x00", b"\x00+")
    order = "<" if data[:2] == b"II" else ">"
    word, count_format, entry_size, inline_size = ("Q", "Q", 20, 8) if big else ("I", "H", 12, 4)
    end = len(data)
    if end < (16 if big else 8):
        return True
    directory = struct.unpack_from(order + word, data, 8 if big else 4)[0]
    count_size = struct.calcsize(count_format)
    if directory + count_size > end:
        return True
    (entries,) = struct.unpack_from(order + count_format, data, directory)
    if directory + count_size + entries * entry_size > end:
        return True
    arrays: dict[int, tuple[int, ...]] = {}
    for index in range(entries):
        position = directory + count_size + index * entry_size
        tag, field_type = struct.unpack_from(order + "HH", data, position)
        (count,) = struct.unpack_from(order + word, data, position + 4)
        size = count * _TIFF_TYPE_SIZES.get(field_type, 1)
        value_position = position + 4 + struct.calcsize(word)
        if size > inline_size:
            (value_position,) = struct.unpack_from(order + word, data, value_position)
            if value_position + size > end:
                return True
        item = {3: "H", 4: "I", 16: "Q"}.get(field_type)
        if item and any(tag in pair for pair in _TIFF_OFFSET_TAGS):
            arrays[tag] = struct.unpack_from(f"{order}{count}{item}", data, value_position)
    for offsets_tag, counts_tag in _TIFF_OFFSET_TAGS:
        offsets, counts = arrays.get(offsets_tag, ()), arrays.get(counts_tag, ())
        if any(offset + count > end for offset, count in zip(offsets, counts)):
            return True
    return False


def _check_format(file_format: str, expected_format: str | None, filename: str | None) -> None:
    if file_format not in ALLOWED_FORMATS:
        raise ImageLoadError(
            "unsupported",
            f"{file_format} images are not accepted; save the image as JPEG, PNG or TIFF.",
            filename=filename,
        )
    if expected_format is not None and file_format != expected_format:
        suffix = Path(filename or "").suffix
        raise ImageLoadError(
            "wrong_extension",
            f"The file is a {file_format} image but its name ends in '{suffix}'; "
            f"rename it with the right extension.",
            filename=filename,
        )


def _check_size(width: int, height: int, filename: str | None, *, max_pixels: int, min_side: int) -> None:
    if width * height > max_pixels:
        raise ImageLoadError(
            "too_large",
            f"The image is {width}×{height} = {width * height:,} pixels, above the limit of {max_pixels:,}.",
            filename=filename,
        )
    if min(width, height) < min_side:
        raise ImageLoadError(
            "too_small",
            f"The image is only {width}×{height} pixels; each side must be at least {min_side}.",
            filename=filename,
        )


def _is_truncation(exc: BaseException) -> bool:
    message = str(exc).lower()
    return isinstance(exc, EOFError) or "truncat" in message or "failed to read" in message


# --------------------------------------------------------------------------- decoding


def _decode_with_pillow(image: Image.Image, filename: str | None) -> np.ndarray:
    """Decode with Pillow into an ``H×W×3 uint8`` array, strip by strip (EXIF orientation is applied later).

    Peak memory: Pillow's own pixels (at most 4 bytes per pixel) plus the 3-byte
    result plus one strip; the Pillow image is released before returning.
    """
    try:
        image.load()
        return _pillow_to_rgb(image, filename)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError("too_large", f"The image is too large to decode safely ({exc}).", filename=filename) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on damaged data
        if _is_truncation(exc):
            raise ImageLoadError(
                "truncated", f"The {image.format} file is cut short ({exc}).", filename=filename
            ) from exc
        raise ImageLoadError(
            "unsupported", f"The {image.format} file could not be decoded ({exc}).", filename=filename
        ) from exc
    finally:
        image.close()  # frees Pillow's copy of the pixels


def _pillow_strips(image: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    width, height = image.size
    rows = _strip_rows(width)
    for top in range(0, height, rows):
        yield top, image.crop((0, top, width, min(height, top + rows)))


def _pillow_to_rgb(image: Image.Image, filename: str | None) -> np.ndarray:
    mode = image.mode
    width, height = image.size
    out = np.empty((height, width, 3), np.uint8)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        _low, high = image.getextrema()
        scale = _full_scale_for(max(float(high), 0.0), np.float32 if mode == "F" else np.uint16 if "16" in mode else np.int32)
        for top, strip in _pillow_strips(image):
            block = np.asarray(strip)
            out[top : top + block.shape[0]] = _convert_block(block, scale, None)
        return out
    alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    try:
        for top, strip in _pillow_strips(image):
            if mode == "RGB":
                block = np.asarray(strip)
            elif alpha:
                rgba = np.asarray(strip.convert("RGBA"))
                block = _convert_block(rgba, 255.0, 255.0)
            else:
                block = np.asarray(strip.convert("RGB"))  # L, 1, P, CMYK, YCbCr, ...
            out[top : top + block.shape[0]] = block
    except (ValueError, OSError) as exc:
        if _is_truncation(exc):
            raise
        raise ImageLoadError(
            "unsupported", f"Images in the {mode} colour mode cannot be converted to RGB.", filename=filename
        ) from exc
    return out


def _exif_orientation(image: Image.Image | _TiffHeaderOnly) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF must not make a good image unreadable
        return 1


def _png_exif_orientation(data: bytes) -> int:
    """The orientation in a PNG's ``eXIf`` chunk (before or after the image data), read
    without decoding any pixel; 1 when there is none."""
    try:
        for kind, start, end in _png_chunks(data):
            if kind == b"eXIf":
                exif = Image.Exif()
                exif.load(data[start:end])
                return int(exif.get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF must not make a good image unreadable
        return 1
    return 1


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an H×W[×C] array exactly as ``ImageOps.exif_transpose`` does."""
    operation = _ORIENTATION_OPS.get(orientation)
    return array if operation is None else operation(array)


def _needs_full_depth(image: Image.Image | _TiffHeaderOnly, data: bytes, file_format: str) -> bool:
    """True for files whose pixels Pillow would cut to 8 bits (or cannot decode at all)."""
    if isinstance(image, _TiffHeaderOnly):
        return True
    if file_format == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(_TIFF_BITS_PER_SAMPLE_TAG, 8)
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(int(b) for b in bits) > 8 or image.mode == "F"
    if file_format == "PNG" and len(data) >= 26:
        bit_depth, color_type = data[24], data[25]
        return bit_depth == 16 and color_type in (2, 6)  # 16-bit RGB / RGBA; 16-bit gray is mode I;16
    return False


def _decode_full_depth(data: bytes, file_format: str, filename: str | None) -> tuple[np.ndarray, str]:
    result: tuple[np.ndarray, str] | None = None
    first_error: Exception | None = None
    if file_format == "TIFF":
        try:
            result = _decode_tiff_by_segments(data)
        except ImageLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. LZW needs imagecodecs; OpenCV can do it
            first_error = exc
    if file_format == "PNG":
        result = _decode_png16_by_bands(data, filename)  # None: interlaced or colour-keyed, decoded whole
    if result is None:
        array = _decode_with_opencv(data)
        if array is not None:
            _check_channels(array, file_format, filename)
            result = _to_rgb_uint8(array, in_place=True), _mode_of(array)
    if result is None:
        reason = first_error or "OpenCV could not decode it"
        if first_error is not None and _is_truncation(first_error):
            raise ImageLoadError("truncated", f"The {file_format} file is cut short ({reason}).", filename=filename)
        raise ImageLoadError(
            "unsupported", f"The high-bit-depth {file_format} file could not be decoded ({reason}).", filename=filename
        )
    return result


def _check_channels(array: np.ndarray, file_format: str, filename: str | None) -> None:
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageLoadError(
            "unsupported", f"The {file_format} file holds an array of shape {array.shape}, not an image.", filename=filename
        )
    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageLoadError(
            "unsupported", f"The {file_format} file has {channels} channels per pixel; expected 1 to 4.", filename=filename
        )


def _mode_of(array: np.ndarray, channels: int | None = None) -> str:
    channels = channels or (1 if array.ndim == 2 else array.shape[2])
    base_mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    return f"{base_mode};{'F' if array.dtype.kind == 'f' else ''}{array.dtype.itemsize * 8}"


def _decode_tiff_by_segments(data: bytes) -> tuple[np.ndarray, str]:
    """Decode the first TIFF directory one strip (or tile) at a time, twice: once
    for the brightest value (the scale), once to convert into the 8-bit result.
    Peak memory: the 3-byte result plus one decoded segment, whatever the depth.
    Planar (separate) and multi-depth files are decoded whole (rare)."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first  # the same first directory whose size the header check saw
        photometric = int(page.photometric)
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.MINISWHITE):
            raise ValueError(f"TIFF photometric interpretation {tifffile.PHOTOMETRIC(photometric).name} is not supported")
        channels = int(page.samplesperpixel)
        if channels not in (1, 2, 3, 4):
            raise ImageLoadError("unsupported", f"The TIFF file has {channels} channels per pixel; expected 1 to 4.")
        dtype = np.dtype(page.dtype)
        invert = photometric == tifffile.PHOTOMETRIC.MINISWHITE and dtype.kind in "ui"
        if page.planarconfig != tifffile.PLANARCONFIG.CONTIG or int(page.imagedepth) > 1:
            array = _decode_tiff_whole(page, invert)
            return _to_rgb_uint8(array), _mode_of(array)
        height, width = int(page.imagelength), int(page.imagewidth)
        has_alpha = channels in (2, 4)
        maximum = float(np.iinfo(dtype).max) if invert else None

        def blocks():
            # A small read buffer: the compressed bytes are read 256 KB at a time.
            for segment, index, _shape in page.segments(maxworkers=1, buffersize=1 << 18):
                top, left = int(index[2]), int(index[3])
                if segment is None:
                    continue
                yield top, left, segment[0, : height - top, : width - left]

        colour_peak, alpha_peak = 0.0, 0.0
        for _top, _left, block in blocks():
            colour = block[..., :-1] if has_alpha else block
            if colour.size:
                colour_peak = max(colour_peak, maximum - float(colour.min()) if invert else float(colour.max()))
            if has_alpha and block.size:
                alpha_peak = max(alpha_peak, float(block[..., -1].max()))
        colour_scale = _full_scale_for(colour_peak, dtype)
        alpha_scale = _full_scale_for(alpha_peak, dtype) if has_alpha else None
        out = np.empty((height, width, 3), np.uint8)
        for top, left, block in blocks():
            rows = _strip_rows(block.shape[1])  # one strip may be the whole image
            for start in range(0, block.shape[0], rows):
                part = block[start : start + rows]
                out[top + start : top + start + part.shape[0], left : left + part.shape[1]] = _convert_block(
                    part, colour_scale, alpha_scale, invert_from=maximum
                )
        mode = f"{ {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}[channels]};{'F' if dtype.kind == 'f' else ''}{dtype.itemsize * 8}"
        return out, mode.replace(" ", "")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_BAND_BYTES = 1 << 20  # filtered rows decoded at a time (about 1 MB)
_PNG_INPUT_STEP = 1 << 18  # compressed bytes handed to zlib at a time


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload start, payload end)`` of each chunk up to IEND."""
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start = position + 8
        if start + length + 4 > len(data):
            raise EOFError("a PNG chunk runs past the end of the file (truncated)")
        yield kind, start, start + length
        if kind == b"IEND":
            return
        position = start + length + 4


#: An interlaced or colour-keyed 16-bit colour PNG is decoded whole (about 12 bytes a pixel
#: at peak); above this many pixels it is refused rather than breaking the memory bound.
PNG16_WHOLE_MAX_PIXELS = 4_000_000


def _decode_png16_by_bands(data: bytes, filename: str | None) -> tuple[np.ndarray, str] | None:
    """Decode a 16-bit RGB / RGBA PNG a band of rows at a time, twice (the brightest value,
    then the 8-bit result), so the peak is the 3-byte result plus one band.

    The image data is inflated with ``zlib`` as a stream; each band of filtered rows is
    wrapped, behind the previous row (already unfiltered, filter type None), in a small
    PNG of its own that OpenCV's libpng unfilters, so every PNG filter is undone by
    libpng exactly as for the whole file. Returns None for what cannot be split this
    way (interlaced, or a tRNS colour key): those are decoded whole, about 12 bytes a
    pixel at peak, so above ``PNG16_WHOLE_MAX_PIXELS`` they are refused with the reason."""
    import cv2

    header: tuple[int, ...] | None = None
    idat: list[tuple[int, int]] = []
    colour_keyed = False
    try:
        for kind, start, end in _png_chunks(data):
            if kind == b"IHDR" and end - start >= 13:
                header = struct.unpack_from(">IIBBBBB", data, start)
            elif kind == b"IDAT":
                idat.append((start, end))
            elif kind == b"tRNS":
                colour_keyed = True
    except EOFError as exc:
        raise ImageLoadError("truncated", f"The PNG file is cut short ({exc}).", filename=filename) from exc
    if header is None or not idat:
        raise ImageLoadError("unsupported", "The PNG file has no image header or no image data.", filename=filename)
    width, height, depth, colour_type, _compression, _filter, interlace = header
    if depth != 16 or colour_type not in (2, 6):
        return None
    if interlace != 0 or colour_keyed:
        if width * height > PNG16_WHOLE_MAX_PIXELS:
            what = "interlaced (Adam7)" if interlace != 0 else "colour-keyed (tRNS)"
            raise ImageLoadError(
                "too_large",
                f"This {what} 16-bit PNG of {width}×{height} pixels can only be decoded whole, which needs "
                f"more memory than the limit allows for images over {PNG16_WHOLE_MAX_PIXELS / 1e6:.0f} megapixels. "
                "Save it without interlacing or transparency key (or as an 8-bit PNG or a TIFF) and upload it again.",
                filename=filename,
            )
        return None
    channels = 3 if colour_type == 2 else 4
    stride = 1 + width * channels * 2  # the filter-type byte, then big-endian samples
    band_rows = max(1, _PNG_BAND_BYTES // stride)
    order = [2, 1, 0] if channels == 3 else [2, 1, 0, 3]  # OpenCV's BGR(A) back to RGB(A)

    def inflated() -> Iterator[bytes]:
        inflater = zlib.decompressobj()
        view = memoryview(data)
        for start, end in idat:
            for step in range(start, end, _PNG_INPUT_STEP):
                piece = view[step : min(end, step + _PNG_INPUT_STEP)]
                while piece:
                    out = inflater.decompress(piece, _PNG_BAND_BYTES)
                    if out:
                        yield out
                    piece = inflater.unconsumed_tail
        tail = inflater.flush()
        if tail:
            yield tail

    def decode_band(filtered: bytes, rows: int, context: bytes | None) -> np.ndarray:
        raw = filtered if context is None else b"\x00" + context + filtered
        total = rows + (context is not None)
        png = b"".join((
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, total, 16, colour_type, 0, 0, 0)),
            _png_chunk(b"IDAT", zlib.compress(raw, 0)),
            _png_chunk(b"IEND", b""),
        ))
        try:
            band = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            band = None
        if band is None or band.shape[:2] != (total, width) or band.dtype != np.uint16:
            raise ImageLoadError("unsupported", "The PNG file's image data could not be decoded (a bad row filter).",
                                 filename=filename)
        return band[int(context is not None) :, :, order]

    def bands() -> Iterator[tuple[int, np.ndarray]]:
        pending = bytearray()
        context: bytes | None = None
        top = 0
        try:
            for piece in inflated():
                pending += piece
                while len(pending) >= band_rows * stride and top < height:
                    rows = min(band_rows, height - top)
                    band = decode_band(bytes(pending[: rows * stride]), rows, context)
                    # A new buffer for the rest: ``del pending[:n]`` keeps the old allocation growing.
                    pending = bytearray(pending[rows * stride :])
                    context = band[-1].astype(">u2").tobytes()  # RGB(A), as the file stores it
                    yield top, band
                    top += rows
        except zlib.error as exc:
            raise ImageLoadError("unsupported", f"The PNG file's image data is damaged ({exc}).",
                                 filename=filename) from exc
        rows = min(len(pending) // stride, height - top)
        if rows:
            yield top, decode_band(bytes(pending[: rows * stride]), rows, context)
            top += rows
        if top < height:
            raise ImageLoadError("truncated", f"The PNG file holds {top} of its {height} rows (its data is cut short).",
                                 filename=filename)

    colour_peak = alpha_peak = 0.0
    for _top, band in bands():
        colour_peak = max(colour_peak, float(band[..., :3].max()))
        if channels == 4:
            alpha_peak = max(alpha_peak, float(band[..., 3].max()))
    colour_scale = _full_scale_for(colour_peak, np.uint16)
    alpha_scale = _full_scale_for(alpha_peak, np.uint16) if channels == 4 else None
    out = np.empty((height, width, 3), np.uint8)
    rows_per_step = _strip_rows(width)
    for top, band in bands():
        for start in range(0, band.shape[0], rows_per_step):
            part = band[start : start + rows_per_step]
            out[top + start : top + start + part.shape[0]] = _convert_block(part, colour_scale, alpha_scale)
    return out, "RGB;16" if channels == 3 else "RGBA;16"


def _decode_tiff_whole(page, invert: bool) -> np.ndarray:
    array = page.asarray()
    axes = page.axes
    if "S" in axes and axes.index("S") < axes.index("Y"):  # planar (separate) colour planes
        array = np.moveaxis(array, axes.index("S"), -1)
    array = np.squeeze(array) if array.ndim > 3 else array
    if invert:
        array = np.iinfo(array.dtype).max - array
    return array


def _decode_with_opencv(data: bytes) -> np.ndarray | None:
    import cv2

    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        return None
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[..., ::-1]  # BGR -> RGB
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[..., [2, 1, 0, 3]]  # BGRA -> RGBA
    return array


# Pixels converted per step: the float64 temporaries of one strip stay near 2 MB.
_STRIP_PIXELS = 1 << 16


def _strip_rows(width: int) -> int:
    return max(1, _STRIP_PIXELS // max(1, width))


def _convert_block(
    block: np.ndarray, colour_scale: float, alpha_scale: float | None, *, invert_from: float | None = None
) -> np.ndarray:
    """One strip of gray / gray+alpha / RGB / RGBA at any depth to 8-bit RGB (alpha composited on white).

    ``invert_from``: a MINISWHITE TIFF's maximum; colour values become ``invert_from - value``."""
    values = block.astype(np.float64)
    if invert_from is not None:
        channels = 1 if values.ndim == 2 else values.shape[2]
        colour_channels = channels - 1 if channels in (2, 4) else channels
        if values.ndim == 2:
            values = invert_from - values
        else:
            values[..., :colour_channels] = invert_from - values[..., :colour_channels]
    if values.ndim == 2:
        values = values[..., None]
    has_alpha = values.shape[2] in (2, 4)
    colour = values[..., :-1] if has_alpha else values
    colour = np.clip(colour / colour_scale, 0.0, 1.0)
    if has_alpha:
        alpha = np.clip(values[..., -1:] / (alpha_scale or colour_scale), 0.0, 1.0)
        colour = colour * alpha + (1.0 - alpha)  # composite on white
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return np.rint(colour * 255.0).astype(np.uint8)


def _to_rgb_uint8(array: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Scale any-depth gray/gray+alpha/RGB/RGBA to 8-bit RGB (see the module docstring for the rule).

    Works strip by strip (no full-size float copy). With ``in_place`` and a
    source of at least 3 bytes per pixel whose buffer it owns, the result is
    written over the source's own buffer (each strip is read before the rows it
    overwrites), so the peak is the source alone; the result is then a view of it.
    """
    has_alpha = array.ndim == 3 and array.shape[2] in (2, 4)
    height, width = array.shape[:2]
    rows = _strip_rows(width)
    colour_peak = alpha_peak = 0.0
    for top in range(0, height, rows):
        block = array[top : top + rows]
        colour = block[..., :-1] if has_alpha else block
        colour_peak = max(colour_peak, float(colour.max()) if colour.size else 0.0)
        if has_alpha:
            alpha_peak = max(alpha_peak, float(block[..., -1].max()) if block.size else 0.0)
    colour_scale = _full_scale_for(colour_peak, array.dtype)
    alpha_scale = _full_scale_for(alpha_peak, array.dtype) if has_alpha else None
    base = array.base if array.base is not None and isinstance(array.base, np.ndarray) else array
    pixel_bytes = array.dtype.itemsize * (1 if array.ndim == 2 else array.shape[2])
    if in_place and pixel_bytes >= 3 and base.flags.c_contiguous and base.flags.writeable and base.nbytes == array.nbytes:
        out = base.reshape(-1).view(np.uint8)[: height * width * 3].reshape(height, width, 3)
    else:
        out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, rows):
        out[top : top + rows] = _convert_block(array[top : top + rows], colour_scale, alpha_scale)
    return out


def _full_scale_for(peak: float, dtype) -> float:
    """The value that maps to 255: 2**bits - 1 for the smallest bit depth holding the maximum."""
    if np.dtype(dtype).kind == "f":
        return max(1.0, peak)
    bits = min(max(int(peak).bit_length(), 8), np.dtype(dtype).itemsize * 8)
    return float(2**bits - 1)
