"""One stable JSON shape for every API error.

A lab information system parses our errors by machine, so every failure under
``/api/`` (400 to 500, raised by DRF, by Django, or by a URL that matches
nothing) has the same body::

    {"error": {"code": "not_found", "message": "No such case.", "details": null}}

* ``code``: a short machine-readable string that never changes for a given
  kind of error (DRF's ``default_code`` names where DRF has one).
* ``message``: a sentence for a person.
* ``details``: ``null``, or structured extra data: field errors for a 400,
  ``{"retry_after_s": n}`` for a 429, the rejected files for an upload.

Three entry points produce it: :func:`api_exception_handler` (DRF views, set
as ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``), and :func:`handler404` /
:func:`handler500` (Django's error handlers in ``marrowfind.urls``), which
answer JSON for ``/api/`` paths and fall back to Django's HTML pages elsewhere.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger("marrowfind.api")

API_PREFIX = "/api/"


class ApiError(exceptions.APIException):
    """An error with our own code and structured details (e.g. a duplicate
    accession number, a case without a report, an upload with no usable file)."""

    def __init__(self, message: str, *, code: str, status_code: int = 400, details: Any = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.details = details


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "payload_too_large"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error shape; also used by the OpenAPI schema (``serializers.ErrorSerializer``)."""
    return {"error": {"code": code, "message": message, "details": details}}


def _message_and_details(exc: exceptions.APIException) -> tuple[str, Any]:
    if isinstance(exc, ApiError):
        return str(exc.detail), exc.details
    if isinstance(exc, exceptions.ValidationError):
        # Field errors keep DRF's {field: [messages]} layout in ``details``.
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return "The request is not valid; see details.", detail
    if isinstance(exc, exceptions.Throttled):
        return str(exc.detail), {"retry_after_s": exc.wait} if exc.wait is not None else None
    detail = exc.detail
    if isinstance(detail, (list, dict)):
        return "The request failed; see details.", detail
    return str(detail), None


def _to_api_exception(exc: Exception) -> exceptions.APIException | None:
    """Map the Django exceptions a request can raise to their HTTP meaning."""
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) if exc.args else "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) if exc.args else None)
    if isinstance(exc, (RequestDataTooBig, TooManyFilesSent, TooManyFieldsSent)):
        # Django refuses the body before any view code runs: too many files or fields.
        return PayloadTooLarge(f"The request is too large: {exc}")
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError("The request was refused as malformed.")
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: the stable shape for every handled error.

    Returns ``None`` for an unexpected exception, so that DRF re-raises it,
    Django logs it with the traceback and :func:`handler500` answers."""
    api_exc = _to_api_exception(exc)
    if api_exc is None:
        return None
    code = api_exc.error_code if isinstance(api_exc, ApiError) else api_exc.default_code
    if isinstance(api_exc.detail, exceptions.ErrorDetail) and api_exc.detail.code and not isinstance(api_exc, ApiError):
        code = api_exc.detail.code
    message, details = _message_and_details(api_exc)
    headers: dict[str, str] = {}
    if getattr(api_exc, "auth_header", None):
        headers["WWW-Authenticate"] = api_exc.auth_header
    if getattr(api_exc, "wait", None):
        headers["Retry-After"] = f"{int(api_exc.wait)}"
    set_rollback()
    return Response(
        error_body(str(code), message, details),
        status=api_exc.status_code,
        headers=headers,
    )


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 handler: JSON under /api/ (a URL that matches nothing), HTML elsewhere."""
    if is_api_request(request):
        details: dict[str, str] = {"path": request.path}
        if not request.path.endswith("/"):
            details["hint"] = "API addresses end with a slash."
        return JsonResponse(
            error_body("not_found", "No API endpoint or object at this address.", details),
            status=404,
        )
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    """Django's 500 handler: JSON under /api/, HTML elsewhere. The traceback is
    logged by Django (``django.request``); the body reveals nothing of it."""
    if is_api_request(request):
        return JsonResponse(
            error_body(
                "server_error",
                "The server failed to handle this request. The error has been logged.",
            ),
            status=500,
        )
    return defaults.server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse(
            error_body("bad_request", "The request was refused as malformed."),
            status=400,
        )
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse(error_body("permission_denied", "You may not do this."), status=403)
    return defaults.permission_denied(request, exception)


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The last pattern of the API urlconf: any other /api/ address is a JSON 404,
    even where the project's handler404 is not ours."""
    return handler404(request)
