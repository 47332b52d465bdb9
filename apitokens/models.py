from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models


def digest(key: str) -> str:
    """SHA-256 of a token: tokens are 40 random characters, so a fast unsalted hash is enough
    (as for GitHub's tokens); it makes a leaked table or backup useless for calling the API."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return secrets.token_hex(20)  # 40 characters, DRF's own token length


class ApiToken(models.Model):
    """One API token per user, stored as its digest (``prefix``: its first characters, to recognise it)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
