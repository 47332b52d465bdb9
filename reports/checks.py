"""System checks of the reports area.

``SITE_URL`` is printed into every report's QR code. A loopback address there
(``localhost``, ``127.0.0.1``, ``::1``) opens only on the machine that runs the
site: a phone scanning the paper reaches nothing. In debug that is expected;
otherwise the start-up (``migrate``, ``runserver``: every command that runs the
checks) and ``manage.py check --deploy`` warn.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Warning, register

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host:
        return False
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register()
def site_url_reachable_from_paper(app_configs, **kwargs):
    """reports.W001: printed QR codes point at a loopback SITE_URL."""
    if settings.DEBUG or not is_loopback_url(settings.SITE_URL):
        return []
    return [
        Warning(
            f"SITE_URL is {settings.SITE_URL!r}, a loopback address: the QR code printed on every report "
            "points there, so a printed report's verification link will not open on any other device.",
            hint="Set SITE_URL to the address people reach the site at, e.g. https://marrowfind.example.org.",
            id="reports.W001",
        )
    ]
