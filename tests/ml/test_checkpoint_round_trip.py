"""Saving and loading a checkpoint gives back the same model, card and file hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.checkpoint import (
    CHECKPOINT_FORMAT,
    ModelCard,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES
from ml.models import build_model, imagenet_normalization

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained_looking_model(arch: str = "resnet18"):
    model = build_model(arch, SUBTYPES, binary_map=SUBTYPE_BINARY_MAP)
    # Move the BatchNorm running statistics away from their defaults, as training would.
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 64, 64))
    return model.eval()


def _card(model, **fields) -> ModelCard:
    return ModelCard.for_model(
        model,
        training={"data": "synthetic smears", "n_train": 120, "epochs": 3, "seed": 0,
                  "split": {"val": ["Benign-0001.png", "Pro-0002.png"]}},
        metrics={"accuracy": np.float64(0.75), "kappa": 0.61, "f1_weighted": np.float32(0.5)},
        **fields,
    )


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_round_trip(tmp_path: Path, arch: str) -> None:
    model = _trained_looking_model(arch)
    card = _card(model, demo=True)
    path = tmp_path / "models" / "demo.ckpt"
    digest = save_checkpoint(path, model, card)

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)
    assert file_sha256(path) == digest  # stable on re-reading
    assert [p.name for p in path.parent.iterdir()] == ["demo.ckpt"]  # no temporary file left behind

    loaded, loaded_card = load_checkpoint(path)
    assert not loaded.training
    assert loaded_card == ModelCard.from_dict(card.to_dict())
    assert loaded_card.metrics == {"accuracy": 0.75, "kappa": 0.61, "f1_weighted": 0.5}
    assert type(loaded_card.metrics["accuracy"]) is float
    assert loaded_card.training["split"]["val"] == ["Benign-0001.png", "Pro-0002.png"]
    assert (loaded_card.arch, loaded_card.demo, loaded_card.task) == (arch, True, "image")
    assert loaded_card.class_names == list(SUBTYPES) and loaded_card.binary_map == SUBTYPE_BINARY_MAP
    mean, std = imagenet_normalization(arch)
    assert (loaded_card.mean, loaded_card.std, loaded_card.input_size) == (list(mean), list(std), 224)
    assert loaded_card.created_at == card.created_at and loaded_card.created_at.endswith("+00:00")

    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected_logits, expected_binary = model.forward_both(x)
        logits, binary = loaded.forward_both(x)
    assert torch.equal(logits, expected_logits) and torch.equal(binary, expected_binary)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_same_model_and_card_give_the_same_version_hash(tmp_path: Path) -> None:
    model = _trained_looking_model()
    card = _card(model)
    first = save_checkpoint(tmp_path / "a.ckpt", model, card)
    assert save_checkpoint(tmp_path / "b.ckpt", model, card) == first
    card.metrics["accuracy"] = 0.76
    assert save_checkpoint(tmp_path / "c.ckpt", model, card) != first


def test_channels_last_model_saves_plain_tensors(tmp_path: Path) -> None:
    model = _trained_looking_model().to(memory_format=torch.channels_last)
    path = tmp_path / "cl.ckpt"
    save_checkpoint(path, model, _card(model))
    loaded, _ = load_checkpoint(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x.contiguous(memory_format=torch.channels_last)))


def test_file_holds_only_plain_data(tmp_path: Path) -> None:
    model = _trained_looking_model()
    path = tmp_path / "plain.ckpt"
    save_checkpoint(path, model, _card(model))
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["format_version"] == 1
    assert set(payload) == {"format", "format_version", "card", "state_dict"}
    assert payload["card"]["arch"] == "resnet18"


def test_card_for_a_cell_model_without_binary_head(tmp_path: Path) -> None:
    model = build_model("resnet18", ["not_blast", "blast"]).eval()
    card = ModelCard.for_model(model, task="cell")
    path = tmp_path / "cell.ckpt"
    save_checkpoint(path, model, card)
    loaded, loaded_card = load_checkpoint(path)
    assert loaded.binary_classifier is None and loaded_card.binary_map is None and loaded_card.task == "cell"
