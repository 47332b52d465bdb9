"""ml.scope: each kind of out-of-scope image is flagged with its reason; smear fields pass."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from ml.scope import SCOPE_CODES, check_scope, feature_distance, fit_feature_stats
from ml.synthetic import make_smear


def _smear() -> np.ndarray:
    return make_smear(3, "Pre", size=(224, 224)).image


def _text_screenshot() -> np.ndarray:
    im = Image.new("RGB", (800, 600), "white")
    draw = ImageDraw.Draw(im)
    for i in range(20):
        draw.text((10, 10 + 28 * i), "Case 123: blast 5.0 %, below the 20 % threshold", fill="black")
    return np.asarray(im)


def _single_cell_on_black() -> np.ndarray:
    img = np.zeros((300, 300, 3), np.uint8)
    cv2.circle(img, (150, 150), 70, (150, 110, 190), -1)
    cv2.circle(img, (150, 150), 50, (90, 40, 140), -1)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: np.full((240, 320, 3), (200, 120, 150), np.uint8), "blank"),
        (lambda: np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), "not_smear_stain"),
        (_text_screenshot, "screenshot"),
        (_single_cell_on_black, "single_cell"),
        (lambda: cv2.GaussianBlur(_smear(), (0, 0), 4), "out_of_focus"),
    ],
    ids=["flat", "noise", "text", "single_cell", "blurred"],
)
def test_out_of_scope_kind_is_flagged_with_its_reason(make, code):
    check = check_scope(make())
    assert not check.in_scope
    assert check.code == code and check.code in SCOPE_CODES
    assert check.reason and check.measures


def test_a_smear_field_is_in_scope():
    check = check_scope(_smear())
    assert check.in_scope, check
    assert check.code == "ok"


def test_feature_distance_flags_far_features_and_names_the_nearest_known_kind():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (400, 64))
    stats = fit_feature_stats(train, components=8, source="test")
    inside = feature_distance(stats, rng.normal(0, 1, (200, 64)))
    assert np.mean(inside > stats["threshold"]) < 0.05
    far = rng.normal(0, 1, 64) + 6.0
    assert feature_distance(stats, far)[0] > 3 * stats["threshold"]
    card = {"scope": {"feature_stats": stats}}
    assert check_scope(_smear(), features=far, card=card).code == "far_from_training"
    stats["known"] = {"tissue_section": (np.zeros(64) + 6.0).tolist()}
    flagged = check_scope(_smear(), features=far, card={"scope": {"feature_stats": stats}})
    assert not flagged.in_scope and flagged.code == "tissue_section"
    assert flagged.measures["feature_distance"] > flagged.measures["feature_threshold"]
    assert check_scope(_smear(), features=train[0], card=card).in_scope
