"""Issuing and revoking API tokens; the only code that sees a token in clear."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from apitokens.models import ApiToken, digest, new_key


@dataclass(frozen=True)
class IssuedToken:
    key: str  # shown once, never stored
    created: datetime


def issue(user) -> IssuedToken:
    """A new token for ``user``, replacing (revoking) any previous one."""
    key = new_key()
    with transaction.atomic():
        ApiToken.objects.filter(user=user).delete()
        token = ApiToken.objects.create(user=user, digest=digest(key), prefix=key[:8])
    return IssuedToken(key=key, created=token.created)


def revoke(user) -> bool:
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return bool(deleted)


def has_token(user) -> bool:
    return ApiToken.objects.filter(user=user).exists()
