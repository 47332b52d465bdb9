"""Real test cases for the report and assistant tests.

Each image is a drawn smear-like picture (pale background, pink red cells, a
purple-nucleus white cell) saved as a real PNG; its counts come from running
the real ``ml.segment.segment`` on it, and its Grad-CAM and segmentation
overlays are made by the real ``ml.overlay`` functions. The model version
carries validation metrics computed by the real ``ml.evaluate.compute_metrics``.
Nothing here is a mock: the report renders real files and real numbers.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

import cv2
import numpy as np
from django.core.files.base import ContentFile

from diagnostics.models import Analysis, Case, CaseStatus, ImageStatus, ModelVersion
from diagnostics.services.case_record import case_figures
from ml.overlay import cam_overlay, encode_png, segmentation_overlay
from ml.segment import segment
from review.models import SignOut
from tests.factories import (
    BatchFactory,
    CaseFactory,
    ModelVersionFactory,
    ReviewFactory,
    SlideImageFactory,
)

CLASSES = ["Benign", "Early", "Pre", "Pro"]


def smear_like(seed: int, size: int = 160) -> np.ndarray:
    """A small RGB picture that looks like a stained smear: red-cell discs and one to three white cells."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), (236, 226, 232), np.uint8)
    for _ in range(14):
        centre = (int(rng.integers(12, size - 12)), int(rng.integers(12, size - 12)))
        cv2.circle(image, centre, 9, (214, 150, 160), -1, lineType=cv2.LINE_AA)
        cv2.circle(image, centre, 3, (226, 186, 192), -1, lineType=cv2.LINE_AA)
    for row, col in ((0.3, 0.3), (0.7, 0.65), (0.3, 0.72))[: 1 + seed % 3]:
        centre = (int(col * size + rng.integers(-6, 7)), int(row * size + rng.integers(-6, 7)))
        cv2.circle(image, centre, 17, (205, 180, 215), -1, lineType=cv2.LINE_AA)
        cv2.circle(image, centre, 12, (95, 45, 140), -1, lineType=cv2.LINE_AA)
    noise = rng.normal(0, 3, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def gaussian_cam(size: int, seed: int) -> np.ndarray:
    """A class-activation-like map: one smooth blob in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
    return np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size * 0.18) ** 2)))


def validation_metrics(seed: int = 0) -> dict:
    """Metrics as the training run records them, computed by ml.evaluate on a seeded toy split."""
    from ml.metrics import compute_metrics

    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), 80)
    logits = rng.normal(0, 1, (80, len(CLASSES)))
    logits[np.arange(80), y] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metrics = compute_metrics(y, probs, CLASSES)
    metrics["split"] = "val"
    return metrics


def make_model(*, demo: bool = True, **kwargs) -> ModelVersion:
    kwargs.setdefault("name", f"resnet18-report-{uuid.uuid4().hex[:6]}")
    kwargs.setdefault("class_names", CLASSES)
    kwargs.setdefault("metrics", validation_metrics())
    return ModelVersionFactory(is_demo=demo, **kwargs)


@dataclass
class BuiltCase:
    case: Case
    images: list = field(default_factory=list)
    analyses: dict[int, Analysis] = field(default_factory=dict)  # position -> analysis
    model: ModelVersion | None = None


def probabilities_for(label: str, confidence: float) -> dict[str, float]:
    rest = (1.0 - confidence) / (len(CLASSES) - 1)
    return {name: (confidence if name == label else round(rest, 4)) for name in CLASSES}


def build_case(
    lab,
    *,
    labels: list[str],
    confidences: list[float] | None = None,
    blasts: list[int | None] | None = None,
    failed: tuple[int, ...] = (),
    model: ModelVersion | None = None,
    status: str = CaseStatus.AWAITING_REVIEW,
    size: int = 160,
    **case_fields,
) -> BuiltCase:
    """A case with one image per entry of ``labels`` (positions 1..n); positions in
    ``failed`` have no analysis. Counts come from the real segmentation."""
    model = model or make_model()
    case = CaseFactory(lab=lab, status=status, **case_fields)
    batch = BatchFactory(case=case)
    built = BuiltCase(case=case, model=model)
    confidences = confidences or [0.9] * len(labels)
    blasts = blasts or [None] * len(labels)
    for position, label in enumerate(labels, start=1):
        seed = case.pk * 1000 + position
        picture = smear_like(seed, size)
        png = encode_png(picture)
        image = SlideImageFactory(
            batch=batch,
            case=case,
            position=position,
            file=ContentFile(png, name=f"smear-{position}.png"),
            original_filename=f"smear-{position}.png",
            sha256=hashlib.sha256(png).hexdigest(),
            width=size,
            height=size,
            status=ImageStatus.FAILED if position in failed else ImageStatus.DONE,
            error="The file is truncated (decoding stopped early)." if position in failed else "",
        )
        built.images.append(image)
        if position in failed:
            continue
        result = segment(picture)
        analysis = Analysis(
            image=image,
            model_version=model,
            label=label,
            probabilities=probabilities_for(label, confidences[position - 1]),
            confidence=confidences[position - 1],
            low_confidence=confidences[position - 1] < 0.6,
            all_probability=0.1 if label == "Benign" else 0.9,
            cell_counts=dict(result.counts),
            blasts=blasts[position - 1],
        )
        analysis.cam_overlay.save("cam.png", ContentFile(encode_png(cam_overlay(picture, gaussian_cam(size, seed)))), save=False)
        analysis.segmentation_overlay.save("segmentation.png", ContentFile(encode_png(segmentation_overlay(picture, result))), save=False)
        analysis.save()
        built.analyses[position] = analysis
    return built


def review(built: BuiltCase, reviewer, labels: dict[int, str] | None = None, *, only=None) -> None:
    """Review every analysed image, or those at the positions in ``only`` (its AI
    label unless ``labels`` maps its position to another)."""
    labels = labels or {}
    for position, analysis in built.analyses.items():
        if only is not None and position not in only:
            continue
        label = labels.get(position, analysis.label)
        ReviewFactory(analysis=analysis, reviewer=reviewer, label=label)


def sign_out(built: BuiltCase, signer, *, reason: str = "", **interpretation) -> SignOut:
    """Record a sign-out as the review area does (a SignOut row and the case fields).

    The sign-out view itself (TOTP, checks) is the review area's and has its
    own tests; the end-to-end report test goes through it. ``interpretation``:
    SignOut fields (diagnosis, diagnosis_subtype, further_studies, diagnosis_comment,
    signer_name, signer_credentials)."""
    from django.utils import timezone

    from review import services as review_service

    case = Case.objects.get(pk=built.case.pk)
    items = review_service.review_items(case)
    version = case.sign_out_version + 1
    now = timezone.now()
    labels = {
        str(item.image.pk): {
            "position": item.image.position,
            "label": item.current_label,
            "exclusion": item.exclusion,
            "ai_label": item.ai_label,
            "reviewer": item.latest_review.reviewer.email if item.latest_review else None,
            "comment": item.latest_review.comment if item.latest_review else "",
        }
        for item in items
        if item.analysis is not None
    }
    summary = case_figures(case)
    summary.pop("signed_result", None)
    summary["reviewed_distribution"] = {}
    row = SignOut.objects.create(case=case, version=version, signed_by=signer, signed_at=now, labels=labels,
                                 summary=summary, amendment_reason=reason, **interpretation)
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.SIGNED_OUT, signed_out_by=signer, signed_out_at=now,
                                           sign_out_version=version)
    built.case.refresh_from_db()
    return row
