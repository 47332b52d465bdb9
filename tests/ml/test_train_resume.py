"""Resume: an interrupted run continues from its state file; a finished one from its checkpoint."""

from __future__ import annotations

import pytest

from ml.checkpoint import load_checkpoint
from ml.train import TrainConfig, state_path_for, train
from tests.ml._evalkit import write_colour_folder


class Interrupted(Exception):
    pass


def _config(data, out, **kw) -> TrainConfig:
    base = {"data": data, "out": out, "arch": "resnet18", "weights": None, "img_size": 32, "epochs": 3, "batch_size": 8,
                "progress": False, "val_fraction": 0.25, "test_fraction": 0.25, "seed": 5}
    base.update(kw)
    return TrainConfig(**base)


def _stop_after_first_epoch(record: dict) -> None:
    if record["epoch"] == 1:
        raise Interrupted


@pytest.fixture()
def data(tmp_path):
    return write_colour_folder(tmp_path / "data", n_per_class=8)


def test_interrupted_run_resumes_from_its_state_file(data, tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(Interrupted):
        train(_config(data, out), on_epoch_end=_stop_after_first_epoch)
    assert state_path_for(out).is_file() and not out.exists()

    result = train(_config(data, out, resume=out))
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert not state_path_for(out).exists()  # a finished run cleans up after itself
    _, card = load_checkpoint(out)
    fresh = train(_config(data, tmp_path / "fresh.pt", epochs=1))
    _, fresh_card = load_checkpoint(fresh.checkpoint)
    assert card.training["split"] == fresh_card.training["split"]  # same seed, same split


def test_finished_checkpoint_continues_to_the_new_total(data, tmp_path):
    out = tmp_path / "m.pt"
    train(_config(data, out, epochs=1))
    _, first = load_checkpoint(out)
    result = train(_config(data, tmp_path / "more.pt", epochs=2, resume=out, seed=9))
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[0] == first.training["history"][0]
    _, card = load_checkpoint(result.checkpoint)
    assert card.training["split"] == first.training["split"]  # the stored split, not seed 9's


def test_resume_from_nothing_is_a_clear_error(data, tmp_path):
    from ml.errors import CheckpointError

    with pytest.raises(CheckpointError, match="cannot resume"):
        train(_config(data, tmp_path / "x.pt", resume=tmp_path / "missing.pt"))
