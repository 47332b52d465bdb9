"""Project-wide request/response rules.

* :class:`RefuseUnstorableText`: a NUL byte (PostgreSQL cannot store it in
  text) or a lone UTF-16 surrogate (not encodable as UTF-8) anywhere in the
  query string, a form field or a JSON body is a 400 that names the field,
  before any view or query sees it (it was a 500 from the database).
  A web form body Django cannot parse (too many files, text fields too
  large, a part header over 1 KB such as a very long file name, multipart
  without a boundary) is a 400 page that says which, instead of a blank one.
* :class:`NoStoreCacheControl`: every page and file Django answers carries
  ``Cache-Control: no-store``: they show patient data (case pages, images,
  reports) or serve the login; no browser or proxy may keep a copy. Static
  assets are answered earlier by WhiteNoise and keep their long caching.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
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


class Unparsable(Exception):
    """A form body Django refuses to parse; the message says why, for people."""


def parse_failure_reason(exc: Exception) -> str:
    if isinstance(exc, TooManyFilesSent):
        return (f"The upload has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files; send at most "
                f"{settings.MAX_FILES_PER_BATCH:,} per upload (or one zip).")
    if isinstance(exc, TooManyFieldsSent):
        return f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields."
    if isinstance(exc, RequestDataTooBig):
        return (f"The form's text fields add up to more than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)} MB; "
                "shorten the clinical note (its limit is a few thousand characters).")
    message = str(exc)
    if "header size" in message.lower():
        return ("A file's name is too long (over about 950 bytes with its field name): rename the file "
                "with a shorter name and upload it again.")
    if "boundary" in message.lower():
        return "The upload is not a valid multipart form (it has no boundary); send it from the page's form."
    return f"The form could not be read ({message or exc.__class__.__name__})."


def _fields(request: HttpRequest) -> Iterator[tuple[str, str]]:
    yield "path", request.path
    for key, values in request.GET.lists():
        yield key, key
        for value in values:
            yield key, value
    if request.method in ("POST", "PUT", "PATCH"):
        content_type = request.content_type or ""
        api = request.path.startswith(API_PREFIX)
        # API form bodies are DRF's to parse (its CharField refuses NUL itself, and it
        # answers unreadable bodies with its own reasons); the web's are checked here.
        if not api and content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                post = request.POST
                files = request.FILES
            except (SuspiciousOperation, RequestDataTooBig, MultiPartParserError, OSError) as exc:
                raise Unparsable(parse_failure_reason(exc)) from exc
            for key, upload in files.items():
                yield key, upload.name or ""
            for key, values in post.lists():
                yield key, key
                for value in values:
                    yield key, value
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
        try:
            for field, text in _fields(request):
                reason = unstorable_reason(text)
                if reason:
                    return self.refuse(request, field, reason)
        except Unparsable as exc:
            # Django's own answer is a blank "Bad Request (400)" page: say what was wrong.
            return render(request, "400_reason.html", {"message": str(exc)}, status=400)
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
