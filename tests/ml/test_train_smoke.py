"""A short training run learns: the loss falls and validation accuracy clearly beats chance.

On the real Taleqani images (CI here) and, everywhere else, on synthetic smears.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ml.checkpoint import load_checkpoint
from ml.datasets import Split, scan_imagefolder
from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES
from ml.train import train
from tests.smoketrain import smoke_config

CHANCE_4_CLASSES = 0.25


def _check_run(result, out: Path, data: Path) -> None:
    history = result.history
    assert len(history) == 2
    assert history[-1]["train_loss"] < history[0]["train_loss"], history
    assert result.metrics["accuracy"] >= CHANCE_4_CLASSES + 0.2, result.metrics
    assert result.metrics["kappa"] > 0.2

    _model, card = load_checkpoint(out)
    assert card.class_names == list(SUBTYPES) and card.binary_map == SUBTYPE_BINARY_MAP
    assert card.input_size == 64 and card.demo is False
    assert card.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert card.training["split_method"] == "contiguous"
    split = Split.from_dict(card.training["split"], scan_imagefolder(data, class_names=SUBTYPES))
    assert len(split.val) == result.metrics["n"]
    assert Image.open(out.with_suffix(".png")).size[0] > 100  # the training curve


@pytest.mark.realdata
def test_smoke_training_on_real_subset(real_smoke_model):
    result, out, data = real_smoke_model  # tests/conftest.py: smoke_config on 30 images per class
    _check_run(result, out, data)


@pytest.mark.slow
def test_smoke_training_on_synthetic_smears(tmp_path):
    from ml.synthetic import write_imagefolder

    data = write_imagefolder(tmp_path / "smears", 20, seed=1, size=(128, 128))
    out = tmp_path / "synthetic.pt"
    result = train(smoke_config(data, out, epochs=6, crop_scale=(0.85, 1.0), split="random"))
    history = result.history
    assert history[-1]["train_loss"] < history[0]["train_loss"], history
    assert result.metrics["accuracy"] >= CHANCE_4_CLASSES + 0.2, result.metrics
