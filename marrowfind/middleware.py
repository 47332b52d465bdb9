"""Project-wide request/response rules.

* :class:`RefuseUnstorableText`: a NUL byte (PostgreSQL cannot store it in
  text) or a lone UTF-16 surrogate (not encodable as UTF-8) anywhere in the
  query string, a form field or a JSON body is a 400 that names the field,
  before any view or query sees it (it was a 500 from the database).
* :class:`NoStoreCacheControl`: every page and file Django answers carries
  ``Cache-Control: no-store``: they show patient data (case pages, images,
  reports) or serve the login; no browser or proxy may keep a copy. Static
  assets are answered earlier by WhiteNoise and keep their long caching.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

API_PREFIX = "/api/"


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored in a text column, or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "contains an unpaired UTF-16 surrogate, which is not valid text"
    return None


def _json_strings(value, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path or "body", value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (f"{path}.{key}" if path else str(key)), str(key)
            yield from _json_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}[{index}]")


def _fields(request: HttpRequest) -> Iterator[tuple[str, str]]:
    yield "path", request.path
    for key, values in request.GET.lists():
        yield key, key
        for value in values:
            yield key, value
    if request.method in ("POST", "PUT", "PATCH"):
        content_type = request.content_type or ""
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                post = request.POST
            except (SuspiciousOperation, RequestDataTooBig, OSError):
                return  # the view answers these (too many files or fields, body too large...)
            for key, values in post.lists():
                yield key, key
                for value in values:
                    yield key, value
            for key, upload in request.FILES.items():
                yield key, upload.name or ""
        elif content_type.endswith("json"):
            try:
                body = json.loads(request.body or b"null")
            except (ValueError, RequestDataTooBig):
                return  # malformed JSON or too large: the API's own parser says so
            yield from _json_strings(body)


class RefuseUnstorableText:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for field, text in _fields(request):
            reason = unstorable_reason(text)
            if reason:
                return self.refuse(request, field, reason)
        return self.get_response(request)

    @staticmethod
    def refuse(request: HttpRequest, field: str, reason: str) -> HttpResponse:
        message = f"The field '{field}' {reason}."
        if request.path.startswith(API_PREFIX):
            return JsonResponse(
                {"error": {"code": "invalid_character", "message": message, "details": {"field": field}}},
                status=400,
            )
        return render(request, "400_reason.html", {"message": message}, status=400)


class NoStoreCacheControl:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["Cache-Control"] = "no-store"
        response.headers.pop("Expires", None)
        return response
