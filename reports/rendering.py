"""Rendering a report's content to PDF (xhtml2pdf): thumbnails, the QR code, watermarks, fonts."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string

from reports import thumbnails
from reports.content import ReportContent
from reports.models import Report, ReportStatus

log = logging.getLogger(__name__)


REPORT_TEMPLATE = "reports/report.html"
CODE_LENGTH = 16  # hex digits of the content digest in the QR code
THUMB_DISPLAY_PT = 46.0  # longest side of a thumbnail on the page (about 1.6 cm)
DEMO_WATERMARK = "DEMO MODEL, NOT FOR DIAGNOSIS"
DRAFT_WATERMARK = "DRAFT, NOT SIGNED OUT"


# --------------------------------------------------------------------------- rendering


def _display_size(path: Path) -> tuple[float, float]:
    """Page size (points) of a thumbnail, keeping its aspect ratio."""
    from PIL import Image

    with Image.open(path) as picture:
        width, height = picture.size
    scale = THUMB_DISPLAY_PT / max(width, height, 1)
    return round(width * scale, 1), round(height * scale, 1)


def attach_thumbnails(content: ReportContent, images: Sequence) -> None:
    """Point each row at its cached thumbnails (made once per image, on first use).

    ``images``: the case record's image rows the content was made from (each with its
    ``image`` and newest ``analysis``)."""
    by_position = {row.position: row for row in content.rows}
    for image_row in images:
        row = by_position[image_row.position]
        made = thumbnails.make_thumbnails(image_row.image, image_row.analysis)
        if made.original is not None:
            row.thumb_original = str(made.original)
            row.thumb_original_w, row.thumb_original_h = _display_size(made.original)
        if made.cam is not None:
            row.thumb_cam = str(made.cam)
            row.thumb_cam_w, row.thumb_cam_h = _display_size(made.cam)


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def qr_png(text: str) -> bytes:
    """A QR code (error correction M) as PNG bytes, large enough to scan from a 150-dpi print."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(fill_color="black", back_color="white").save(buffer, format="PNG")
    return buffer.getvalue()


@lru_cache(maxsize=4)
def watermark_png(lines: tuple[str, ...]) -> bytes:
    """A page-sized, transparent PNG with ``lines`` written diagonally in pale red.

    xhtml2pdf cannot rotate text, but draws an ``@page`` background image on
    every page, so the watermark is an image."""
    from PIL import Image, ImageDraw, ImageFont

    page_w, page_h = 1240, 1754  # A4 at 150 dpi
    font = ImageFont.load_default(size=82)
    line_h = 110
    band = Image.new("RGBA", (2000, line_h * len(lines) + 40), (255, 255, 255, 0))
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((1000, 20 + line_h * i + line_h // 2), line, font=font, fill=(190, 30, 30, 52), anchor="mm")
    band = band.rotate(55, expand=True, resample=Image.Resampling.BICUBIC)
    page = Image.new("RGBA", (page_w, page_h), (255, 255, 255, 0))
    page.alpha_composite(band, ((page_w - band.width) // 2, (page_h - band.height) // 2))
    buffer = io.BytesIO()
    page.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _fonts() -> dict[str, str] | None:
    """DejaVu Sans from matplotlib's own data (a requirement already), so that
    µ, ≥ and names in any Latin, Greek or Cyrillic script print; None falls
    back to the built-in Helvetica."""
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:
        return None
    regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        return {"regular": str(regular), "bold": str(bold), "dir": str(folder)}
    return None


def verify_path(report_id: str, content_digest: str) -> str:
    return f"/verify/{report_id}/{content_digest[:CODE_LENGTH]}"


def verify_url_for(report_id: str, content_digest: str) -> str:
    return settings.SITE_URL + verify_path(report_id, content_digest)


def verify_url(report: Report) -> str:
    return verify_url_for(str(report.pk), report.content_sha256)


def render_report_pdf(content: ReportContent) -> bytes:
    """Lay out ``content`` as a PDF (xhtml2pdf). The content must carry its
    thumbnails (``attach_thumbnails``) and digest. Pure: no database writes.
    This is the function the pipeline benchmark times."""
    from xhtml2pdf import pisa
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    url = verify_url_for(content.report_id, content.digest)
    watermark_lines = tuple(
        line
        for line, wanted in ((DEMO_WATERMARK, content.demo), (DRAFT_WATERMARK, content.status == ReportStatus.DRAFT))
        if wanted
    )
    fonts = _fonts()
    html = render_to_string(
        REPORT_TEMPLATE,
        {
            "c": content,
            "report_id": content.report_id,
            "code": content.digest[:CODE_LENGTH],
            "verify_url": url,
            "qr": _png_data_uri(qr_png(url)),
            "watermark": _png_data_uri(watermark_png(watermark_lines)) if watermark_lines else None,
            "fonts": fonts,
        },
    )
    # Local reads only from the media folder (thumbnails) and the font folder; nothing remote.
    policy = ResourceAccessPolicy.server(
        base_dir=settings.MEDIA_ROOT,
        extra_roots=tuple(Path(p) for p in ([fonts["dir"]] if fonts else [])),
        allow_remote=False,
        max_resources=2 * len(content.rows) + 10,
        max_render_seconds=max(60, len(content.rows)),
        max_document_bytes=20 * 1024 * 1024,
    )
    out = io.BytesIO()
    result = pisa.CreatePDF(html, dest=out, encoding="utf-8", resource_policy=policy)
    if result.err:
        raise ReportRenderError(f"xhtml2pdf reported {result.err} error(s) rendering report {content.report_id}")
    return out.getvalue()


class ReportRenderError(RuntimeError):
    pass
