"""Predictor outputs: probabilities, labels, confidence flag, CAM size, batching, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES
from ml.preprocess import batch_from_card

INPUT_SIZE = 64


def _card(arch: str = "resnet18", binary: bool = True):
    from ml.checkpoint import ModelCard

    return ModelCard(arch=arch, class_names=list(SUBTYPES),
                     binary_map=dict(SUBTYPE_BINARY_MAP) if binary else None,
                     input_size=INPUT_SIZE, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


def _model(arch: str = "resnet18", binary: bool = True, seed: int = 0):
    from ml.models import build_model

    torch.manual_seed(seed)
    return build_model(arch, SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP) if binary else None, weights=None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, str]:
    from ml.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pt"
    sha = save_checkpoint(path, _model(), _card())
    return path, sha


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Seeded images of assorted sizes and aspect ratios."""
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (50, 70), (120, 90), (64, 64), (33, 47), (200, 150), (64, 64)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_probabilities_labels_and_cams_are_well_formed(checkpoint, images) -> None:
    from ml.predict import Predictor

    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu", precision="fp32", batch_size=3)
    predictions = predictor.predict(images)
    assert len(predictions) == len(images)
    for image, p in zip(images, predictions):
        assert p.label in SUBTYPES
        assert list(p.probabilities) == list(SUBTYPES)
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.confidence == max(p.probabilities.values())
        assert p.probabilities[p.label] == p.confidence
        assert 0.0 <= p.all_probability <= 1.0
        assert p.cam.shape == image.shape[:2]
        assert p.cam.dtype == np.float32
        assert 0.0 <= p.cam.min() and p.cam.max() <= 1.0


def test_from_checkpoint_records_the_file_sha256(checkpoint) -> None:
    from ml.checkpoint import file_sha256
    from ml.predict import Predictor

    path, saved_sha = checkpoint
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert predictor.sha256 == saved_sha == file_sha256(path)
    assert predictor.class_names == list(SUBTYPES)


def test_low_confidence_flag_follows_the_threshold(checkpoint, images) -> None:
    from ml.predict import Predictor

    model_and_card = Predictor.from_checkpoint(checkpoint[0], device="cpu", precision="fp32")
    confidences = [p.confidence for p in model_and_card.predict(images, with_cam=False)]
    threshold = float(np.median(confidences))
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu", precision="fp32",
                                          low_confidence_threshold=threshold)
    flags = [p.low_confidence for p in predictor.predict(images, with_cam=False)]
    assert flags == [c < threshold for c in confidences]
    assert any(flags) and not all(flags)
    for bound, expected in ((0.0, False), (1.0, True)):
        strict = Predictor.from_checkpoint(checkpoint[0], device="cpu", low_confidence_threshold=bound)
        assert all(p.low_confidence is expected for p in strict.predict(images[:2], with_cam=False))


def test_batched_equals_one_at_a_time(checkpoint, images) -> None:
    from ml.predict import Predictor

    batched = Predictor.from_checkpoint(checkpoint[0], device="cpu", precision="fp32", batch_size=4).predict(images)
    single = Predictor.from_checkpoint(checkpoint[0], device="cpu", precision="fp32", batch_size=1).predict(images)
    for a, b in zip(batched, single):
        assert a.label == b.label
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)
        assert a.all_probability == pytest.approx(b.all_probability, abs=1e-5)
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-4)


def test_predict_proba_matches_predict_and_skips_the_cam(checkpoint, images) -> None:
    from ml.predict import Predictor

    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu", precision="fp32", batch_size=5)
    proba = predictor.predict_proba(images)
    predictions = predictor.predict(images, with_cam=False)
    assert proba.shape == (len(images), len(SUBTYPES)) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, [list(p.probabilities.values()) for p in predictions], atol=1e-6)
    assert all(p.cam is None for p in predictions)
    assert predictor.predict_proba([]).shape == (0, len(SUBTYPES))


def test_model_without_binary_head_reports_no_all_probability(images) -> None:
    from ml.predict import Predictor

    predictor = Predictor(_model(binary=False), _card(binary=False), device="cpu", precision="fp32")
    assert all(p.all_probability is None for p in predictor.predict(images[:2], with_cam=False))


def test_model_is_frozen_and_channels_last(images) -> None:
    from ml.predict import Predictor

    predictor = Predictor(_model(), _card(), device="cpu")
    assert not any(p.requires_grad for p in predictor.model.parameters())
    assert not predictor.model.training
    conv_weights = [m.weight for m in predictor.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    batch = batch_from_card(images[:2], predictor.card)
    assert batch.shape == (2, 3, INPUT_SIZE, INPUT_SIZE)
    assert batch.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("method", ["gradcam++", "eigencam", "scorecam"])
def test_library_methods_by_name_give_maps_at_image_size(method: str) -> None:
    from ml.predict import Predictor

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)]
    card = _card()
    card.input_size = 32  # ScoreCAM runs one forward pass per channel: keep it small
    predictor = Predictor(_model(), card, device="cpu", precision="fp32", cam_method=method)
    (prediction,) = predictor.predict(images)
    assert prediction.cam.shape == (40, 56)
    assert prediction.cam.dtype == np.float32
    assert 0.0 <= prediction.cam.min() and prediction.cam.max() <= 1.0
    assert not any(p.grad is not None for p in predictor.model.parameters())


def test_bad_arguments_and_images_are_refused() -> None:
    from ml.predict import Predictor

    with pytest.raises(ValueError, match="cam_method"):
        Predictor(_model(), _card(), device="cpu", cam_method="nonsense")
    predictor = Predictor(_model(), _card(), device="cpu")
    with pytest.raises(ValueError, match="H×W×3"):
        predictor.predict([np.zeros((32, 32), dtype=np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict([np.zeros((32, 32, 3), dtype=np.float32)])
