"""Rate limits for the API.

The rates come from ``settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``
(env ``API_THROTTLE_*``), read at each request rather than once at import as
DRF's own classes do, so a test or an operator's override takes effect.

The counters live in Django's default cache. With several gunicorn processes
or machines that cache must be shared (``CACHE_URL`` pointing at Redis), or
each process counts on its own and the effective limit is multiplied.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from marrowfind.clientip import client_ip

DEFAULT_RATES = {
    "anon": "60/min",
    "user": "1200/min",
    "upload": "120/min",
    "token": "20/hour",
}


class _RateFromSettings:
    scope: str

    def get_rate(self) -> str | None:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope, DEFAULT_RATES.get(self.scope))

    def get_ident(self, request) -> str:
        """The client address by the project's one rule (``TRUSTED_PROXY_COUNT``), not
        DRF's, which trusts a client-written ``X-Forwarded-For`` by default."""
        return client_ip(request)


class ApiAnonThrottle(_RateFromSettings, AnonRateThrottle):
    """Unauthenticated callers, per client address (only the public schema,
    docs and health endpoints answer them with anything but 401)."""

    scope = "anon"


class ApiUserThrottle(_RateFromSettings, UserRateThrottle):
    """Every authenticated request, per user."""

    scope = "user"


class ApiUploadThrottle(_RateFromSettings, UserRateThrottle):
    """Image uploads, per user: each one writes files and queues analysis work."""

    scope = "upload"

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class ApiTokenThrottle(_RateFromSettings, UserRateThrottle):
    """Issuing or revoking an API token, per user."""

    scope = "token"


DEFAULT_THROTTLES = (ApiAnonThrottle, ApiUserThrottle)
