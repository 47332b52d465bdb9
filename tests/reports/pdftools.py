"""Reading rendered reports the way a person or a phone would: text with pypdf,
pixels with poppler's ``pdftoppm``, and the QR code with OpenCV's detector."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pypdf import PdfReader


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages]


def require_pdftoppm() -> str:
    path = shutil.which("pdftoppm")
    if path is None:
        pytest.skip("pdftoppm (Debian package poppler-utils) is not installed")
    return path


def rasterise(pdf: bytes, out_dir: Path, *, dpi: int = 150, first: int = 1, last: int = 1) -> list[Path]:
    """PNG pages of ``pdf`` as ``pdftoppm -r <dpi> -png`` writes them."""
    binary = require_pdftoppm()
    source = out_dir / "report.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [binary, "-r", str(dpi), "-png", "-f", str(first), "-l", str(last), str(source), str(out_dir / "page")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return sorted(out_dir.glob("page-*.png"))


def decode_qr(png: Path) -> str:
    """The text of the QR code on a page image; tries the page as it is, then upscaled."""
    image = cv2.imread(str(png))
    assert image is not None, f"could not read {png}"
    detector = cv2.QRCodeDetector()
    for scale in (1.0, 2.0, 3.0):
        candidate = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        text, _, _ = detector.detectAndDecode(candidate)
        if text:
            return text
    # The header holds the only QR code; crop the right third of the top quarter and retry.
    h, w = image.shape[:2]
    crop = np.ascontiguousarray(image[: h // 4, (2 * w) // 3 :])
    text, _, _ = detector.detectAndDecode(cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC))
    return text


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mf-report-") as folder:
        yield Path(folder)


@contextlib.contextmanager
def eager_celery() -> Iterator[None]:
    """Run tasks in the calling process (for tests whose transactions commit:
    TransactionTestCase). The real-worker test is tests/reports/test_report_worker.py."""
    from marrowfind.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved
