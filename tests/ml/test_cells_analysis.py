"""ml.cells: crops, per-cell calls and the image differential, on a synthetic smear."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.cells import (
    CellAnalysis,
    CellCall,
    CellClassifier,
    aggregate,
    analyse_cells,
    cell_crops,
    square_crop,
)
from ml.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from ml.labels import CELL_TYPES, NUCLEATED_WHITE
from ml.models import build_model
from ml.segment import segment
from ml.synthetic import make_smear

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _classifier_always(label: str, tmp_path) -> CellClassifier:
    """A real checkpoint whose head answers ``label`` for every input (bias dominates)."""
    model = build_model("resnet18", CELL_TYPES, weights=None)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-5.0)
        model.classifier.bias[CELL_TYPES.index(label)] = 5.0
    card = ModelCard.for_model(model, task="cell", input_size=32)
    path = tmp_path / "cells.pt"
    save_checkpoint(path, model, card)
    return CellClassifier.load(path)


def test_square_crop_mirrors_outside_the_image_and_resizes():
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    crop = square_crop(img, (1.0, 1.0), 10, None)
    assert crop.shape == (10, 10, 3)
    assert square_crop(img, (15, 10), 12, 48).shape == (48, 48, 3)


def test_every_white_cell_is_called_and_counted(tmp_path):
    smear = make_smear(5, "Pre", size=(240, 320), n_wbc=3)
    seg = segment(smear.image)
    n_wbc = seg.counts["wbc"]
    assert n_wbc >= 2
    crops = cell_crops(smear.image, seg, size=64)
    assert len(crops) == n_wbc and all(c.shape == (64, 64, 3) for c in crops)

    blasts = analyse_cells(smear.image, seg, _classifier_always("blast", tmp_path))
    assert isinstance(blasts, CellAnalysis) and len(blasts.cells) == n_wbc
    assert blasts.counts["blast"] == blasts.blasts == blasts.nucleated == n_wbc
    assert blasts.blast_fraction == pytest.approx(1.0)
    assert set(blasts.counts) == set(CELL_TYPES)
    call = blasts.cells[0]
    assert isinstance(call, CellCall) and call.kind == "wbc" and call.label == "blast"
    assert call.confidence > 0.99 and not call.low_confidence
    assert abs(sum(call.probabilities.values()) - 1.0) < 1e-4
    x0, y0, x1, y1 = call.bbox
    seg_cell = next(c for c in seg.cells if c.index == call.index)
    assert (y0, x0, y1, x1) == seg_cell.bbox
    assert call.contour and all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in call.contour)
    assert "scale" in blasts.scale_note


def test_non_blast_cells_give_zero_blasts_and_artefacts_leave_the_denominator(tmp_path):
    smear = make_smear(6, "Benign", size=(240, 320), n_wbc=3)
    seg = segment(smear.image)
    lymph = analyse_cells(smear.image, seg, _classifier_always("lymphocyte", tmp_path / "a"))
    assert lymph.blasts == 0 and lymph.blast_fraction == 0.0 and lymph.nucleated == len(lymph.cells) > 0
    junk = analyse_cells(smear.image, seg, _classifier_always("artefact", tmp_path / "b"))
    assert "artefact" not in NUCLEATED_WHITE
    assert junk.nucleated == 0 and junk.blast_fraction is None
    case = aggregate([lymph, junk])
    assert case["nucleated"] == lymph.nucleated and case["blasts"] == 0 and case["images"] == 2


def test_low_confidence_flag_follows_the_threshold(tmp_path):
    smear = make_smear(7, "Pre", size=(240, 320), n_wbc=2)
    seg = segment(smear.image)
    clf = _classifier_always("blast", tmp_path)
    assert all(c.low_confidence for c in analyse_cells(smear.image, seg, clf, low_confidence=0.9999999).cells)


def test_a_non_cell_model_is_refused(tmp_path):
    model = build_model("resnet18", ["Benign", "Early", "Pre", "Pro"], weights=None)
    save_checkpoint(tmp_path / "img.pt", model, ModelCard.for_model(model))
    with pytest.raises(ValueError, match="CELL_TYPES"):
        CellClassifier.load(tmp_path / "img.pt")


def test_old_cards_without_validation_or_scope_still_load(tmp_path):
    model = build_model("resnet18", ["a", "b"], weights=None)
    card = ModelCard.for_model(model)
    data = card.to_dict()
    del data["validation"], data["scope"]
    assert ModelCard.from_dict(data).validation == {} and ModelCard.from_dict(data).scope == {}
    save_checkpoint(tmp_path / "m.pt", model, ModelCard.for_model(model, validation={"held_out": True}))
    assert load_checkpoint(tmp_path / "m.pt")[1].validation == {"held_out": True}
