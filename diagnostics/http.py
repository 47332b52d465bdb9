"""HTTP helpers every app's views share: htmx requests, the case page link,
and sending a stored (private) file once the caller has checked access.

The case media view and the instant-check file view both serve lab-private
files; they must answer the same way (nginx ``X-Accel-Redirect`` in
production, Django streaming otherwise; never cached; no MIME sniffing),
so the rule lives here once.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import reverse


def is_htmx(request: HttpRequest) -> bool:
    """The request was sent by htmx (a partial page update)."""
    return request.headers.get("HX-Request") == "true"


def case_page_url(case) -> str:
    """The case page, where every area's pages link back to."""
    return reverse("case_detail", args=[case.pk])


def send_protected_file(
    storage_name: str,
    *,
    download_name: str | None = None,
    storage: Storage | None = None,
    content_type: str | None = None,
) -> HttpResponse:
    """The response for ``storage_name``. Call only after the access check.

    With ``MEDIA_SERVE_MODE="nginx"`` the answer is an empty ``X-Accel-Redirect``
    to ``MEDIA_ACCEL_PREFIX`` (an ``internal`` nginx location), so the bytes never
    pass through Python. Otherwise the file is streamed; ``download_name`` is the
    file name offered to the browser (default: the stored file's base name);
    ``content_type`` overrides the one guessed from the name. A file missing
    from storage is a 404.
    """
    content_type = content_type or mimetypes.guess_type(storage_name)[0] or "application/octet-stream"
    if settings.MEDIA_SERVE_MODE == "nginx":
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_PREFIX.rstrip("/") + "/" + quote(storage_name)
    else:
        try:
            handle = (storage or default_storage).open(storage_name, "rb")
        except FileNotFoundError:
            raise Http404("The file is missing from storage") from None
        response = FileResponse(handle, content_type=content_type, filename=download_name or "")
    response["Cache-Control"] = "no-store"  # patient data: no browser or proxy keeps a copy
    response["X-Content-Type-Options"] = "nosniff"
    return response
