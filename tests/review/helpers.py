"""TOTP devices, logins and the sign-out/amend posts of the review area (its test data
comes from tests.factories). TOTP uses allauth's own secret generation, activation and
code generation: no mocks.
"""

from __future__ import annotations

import time

from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.urls import reverse

from tests.base import PASSWORD


def activate_totp(user) -> str:
    """Turn on a real allauth TOTP authenticator for ``user``; returns its secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str, *, offset: int = 0) -> str:
    """The code an authenticator app shows now (``offset`` periods away), computed by allauth."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + offset))


def totp_code_with_time_left(secret: str, seconds: float = 10.0) -> str:
    """The current code, once at least ``seconds`` of its 30-s period are left (waits up to that
    long): for a server that accepts only the current period's code (another process, whose
    settings a test cannot override), so that a period boundary cannot fall before it is used."""
    left = 30 - time.time() % 30
    if left < seconds:
        time.sleep(left + 0.05)
    return totp_code(secret)


def login_with_totp(client, user, secret: str) -> None:
    """The real two-step allauth login: email + password, then the TOTP code."""
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate"), response
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302, response.content[:2000]


def login_with_password(client, user) -> None:
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:2000]


# Tests that need more than one code in the same 30-second period (a login code, then a
# signature's fresh code, then an amendment's) accept the neighbouring periods too, as
# an authenticator app's clock drift would: override_settings(MFA_TOTP_TOLERANCE=1), then
# totp_code(secret, offset=-1 / 0 / +1) are three different valid codes.
TOLERANCE_1 = {"MFA_TOTP_TOLERANCE": 1}


def sign_out_form(
    secret: str | None,
    *,
    offset: int = 0,
    diagnosis: str = "consistent_with_b_all",
    subtype: str = "pro_b",
    further_studies: str = "",
    comment: str = "",
    confirm: bool = True,
    code: str | None = None,
) -> dict:
    """What the sign-out page posts: the interpretation, the confirmation and a fresh TOTP code."""
    data = {
        "diagnosis": diagnosis,
        "diagnosis_subtype": subtype if diagnosis == "consistent_with_b_all" else "",
        "further_studies": further_studies,
        "diagnosis_comment": comment,
        "code": code if code is not None else (totp_code(secret, offset=offset) if secret else ""),
    }
    if confirm:
        data["confirm"] = "on"
    return data


def post_sign_out(client, case, secret: str | None, **kwargs):
    return client.post(reverse("case_sign_out", args=[case.pk]), sign_out_form(secret, **kwargs))


def post_amend(client, case, secret: str | None, *, reason: str = "image 1 is a Pro-B blast population",
               offset: int = 0, code: str | None = None):
    code = code if code is not None else (totp_code(secret, offset=offset) if secret else "")
    return client.post(reverse("case_amend", args=[case.pk]), {"reason": reason, "code": code})
