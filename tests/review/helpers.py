"""Test data for the review area: analysed cases, TOTP devices, logins.

Analyses are written directly (the pipeline has its own tests); their files
are real PNGs so the pages and the protected media view have something to
serve. TOTP uses allauth's own secret generation, activation and code
generation: no mocks.
"""

from __future__ import annotations

import time
import uuid

from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.core.files.base import ContentFile
from django.urls import reverse

from diagnostics.models import CaseStatus, ImageStatus, ModelVersion
from tests.base import PASSWORD
from tests.factories import (
    AnalysisFactory,
    BatchFactory,
    CaseFactory,
    ModelVersionFactory,
    ReviewFactory,
    SlideImageFactory,
)
from tests.imagefactory import png_bytes

CLASSES = ["Benign", "Early", "Pre", "Pro"]


def make_model_version(**kwargs) -> ModelVersion:
    kwargs.setdefault("name", f"resnet18-test-{uuid.uuid4().hex[:6]}")
    kwargs.setdefault("class_names", CLASSES)
    return ModelVersionFactory(**kwargs)


def make_analysed_case(
    lab,
    *,
    n_images: int = 3,
    labels: list[str] | None = None,
    low_confidence: tuple[int, ...] = (),
    status: str = CaseStatus.AWAITING_REVIEW,
    model_version: ModelVersion | None = None,
    created_by=None,
    failed: tuple[int, ...] = (),
    blasts: int | None = None,
    **case_fields,
):
    """A case of ``n_images`` analysed images (positions 1..n). Images whose
    position is in ``low_confidence`` get confidence 0.4 (Unidentified); those
    in ``failed`` have no analysis and status failed."""
    model_version = model_version or make_model_version()
    case = CaseFactory(lab=lab, status=status, created_by=created_by, **case_fields)
    batch = BatchFactory(case=case, uploaded_by=created_by)
    labels = labels or [CLASSES[i % len(CLASSES)] for i in range(n_images)]
    images = []
    for position in range(1, n_images + 1):
        seed = case.pk * 1000 + position
        image = SlideImageFactory(
            batch=batch,
            case=case,
            position=position,
            file=ContentFile(png_bytes(seed=seed), name=f"smear-{position}.png"),
            sha256=f"{seed:064x}",
            status=ImageStatus.FAILED if position in failed else ImageStatus.DONE,
            error="The file is truncated." if position in failed else "",
        )
        images.append(image)
        if position in failed:
            continue
        label = labels[position - 1]
        confidence = 0.4 if position in low_confidence else 0.9
        AnalysisFactory(
            image=image, model_version=model_version, label=label, confidence=confidence,
            low_confidence=position in low_confidence, blasts=blasts,
        )
    return case, images


def review_all(case, reviewer, *, label_for=None) -> None:
    """Give every analysed image of ``case`` a review (its AI label unless ``label_for`` says otherwise)."""
    for image in case.images.all():
        analysis = image.analyses.first()
        if analysis is None:
            continue
        label = label_for(image, analysis) if label_for else analysis.label
        ReviewFactory(analysis=analysis, reviewer=reviewer, label=label)


def activate_totp(user) -> str:
    """Turn on a real allauth TOTP authenticator for ``user``; returns its secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str, *, offset: int = 0) -> str:
    """The code an authenticator app shows now (``offset`` periods away), computed by allauth."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + offset))


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
