"""The client's address, the one rule every rate limit and lock-out keys on.

Behind ``TRUSTED_PROXY_COUNT`` proxies that each append the address they saw
to ``X-Forwarded-For`` (nginx: ``$proxy_add_x_forwarded_for``), the client is
the entry that many places from the right; anything further left was written
by the client and is ignored. With ``TRUSTED_PROXY_COUNT=0`` (no proxy, the
default) ``X-Forwarded-For`` is ignored entirely and ``REMOTE_ADDR`` is the
client, so a forged header changes nothing.

Used by allauth (login and MFA rate limits, via the account adapter), by the
DRF throttles and by the lock-outs.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(request) -> str:
    """The client's address for ``request`` (a Django or DRF request)."""
    meta = request.META
    remote = _clean(meta.get("REMOTE_ADDR")) or "0.0.0.0"
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part for part in (meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if part.strip()]
    if len(forwarded) < count:
        # Did not pass through every trusted proxy (e.g. a direct request to
        # gunicorn): the connection's own address is the only one to trust.
        return remote
    return _clean(forwarded[-count]) or remote
