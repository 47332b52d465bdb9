"""Every way a checkpoint can be wrong raises CheckpointError with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ml.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from ml.errors import CheckpointError
from ml.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def good_payload(tmp_path_factory: pytest.TempPathFactory) -> dict:
    model = build_model("resnet18", ["hem", "all"])
    path = tmp_path_factory.mktemp("ckpt") / "good.ckpt"
    save_checkpoint(path, model, ModelCard.for_model(model))
    return torch.load(path, weights_only=True)


def _write(path: Path, payload: object) -> Path:
    torch.save(payload, path)
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="No checkpoint file at"):
        load_checkpoint(tmp_path / "gone.ckpt")


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint file"):
        load_checkpoint(path)


def test_raw_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = _write(tmp_path / "raw.pth", build_model("resnet18").state_dict())
    with pytest.raises(CheckpointError, match="not a Marrow-Find checkpoint.*build_model\\(weights=path\\)"):
        load_checkpoint(path)


def test_wrong_format_tag(tmp_path: Path, good_payload: dict) -> None:
    path = _write(tmp_path / "other.ckpt", {**good_payload, "format": "someone-elses-checkpoint"})
    with pytest.raises(CheckpointError, match="format tag 'someone-elses-checkpoint'"):
        load_checkpoint(path)


def test_newer_format_version(tmp_path: Path, good_payload: dict) -> None:
    path = _write(tmp_path / "future.ckpt", {**good_payload, "format_version": 2})
    with pytest.raises(CheckpointError, match="format version 2"):
        load_checkpoint(path)


def test_unknown_arch(tmp_path: Path, good_payload: dict) -> None:
    card = {**good_payload["card"], "arch": "alexnet"}
    path = _write(tmp_path / "alex.ckpt", {**good_payload, "card": card})
    with pytest.raises(CheckpointError, match="unknown arch 'alexnet'"):
        load_checkpoint(path)


def test_state_dict_that_does_not_fit_the_card(tmp_path: Path, good_payload: dict) -> None:
    card = {**good_payload["card"], "class_names": ["hem", "all", "unsure"]}  # 3 classes, weights for 2
    path = _write(tmp_path / "three.ckpt", {**good_payload, "card": card})
    with pytest.raises(CheckpointError, match="(?s)do not fit a resnet18.*classifier.weight"):
        load_checkpoint(path)


def test_state_dict_with_a_missing_tensor(tmp_path: Path, good_payload: dict) -> None:
    state_dict = dict(good_payload["state_dict"])
    del state_dict["features.layer4.1.bn2.running_var"]
    path = _write(tmp_path / "holey.ckpt", {**good_payload, "state_dict": state_dict})
    with pytest.raises(CheckpointError, match="(?s)Missing key.*features.layer4.1.bn2.running_var"):
        load_checkpoint(path)


def test_card_with_unknown_or_missing_fields(tmp_path: Path, good_payload: dict) -> None:
    path = _write(tmp_path / "extra.ckpt", {**good_payload, "card": {**good_payload["card"], "colour": "red"}})
    with pytest.raises(CheckpointError, match="unknown fields \\['colour'\\]"):
        load_checkpoint(path)
    card = dict(good_payload["card"])
    del card["class_names"]
    path = _write(tmp_path / "short.ckpt", {**good_payload, "card": card})
    with pytest.raises(CheckpointError, match="incomplete.*class_names"):
        load_checkpoint(path)


class _RunsCodeWhenUnpickled:
    """Unpickling this calls os.mkdir(marker): a stand-in for any command an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_hostile_pickle_is_refused_without_running(tmp_path: Path, good_payload: dict) -> None:
    marker = tmp_path / "code-ran"
    path = _write(tmp_path / "hostile.ckpt", {**good_payload, "card": _RunsCodeWhenUnpickled(marker)})
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_card_must_describe_the_model(tmp_path: Path) -> None:
    model = build_model("resnet18", ["hem", "all"])
    card = ModelCard.for_model(model, class_names=["all", "hem"])
    with pytest.raises(CheckpointError, match="does not describe the model"):
        save_checkpoint(tmp_path / "x.ckpt", model, card)
    assert not (tmp_path / "x.ckpt").exists()


def test_card_values_must_be_json_compatible(tmp_path: Path) -> None:
    model = build_model("resnet18", ["hem", "all"])
    card = ModelCard.for_model(model, training={"optimizer": torch.optim.SGD})
    with pytest.raises(CheckpointError, match="JSON-compatible"):
        save_checkpoint(tmp_path / "x.ckpt", model, card)
    assert list(tmp_path.iterdir()) == []
