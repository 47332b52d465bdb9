"""``python -m ml train``: writes a checkpoint, prints a JSON summary, and fails clearly."""

from __future__ import annotations

import json

from ml.checkpoint import file_sha256, load_checkpoint
from ml.cli import main
from tests.ml._evalkit import write_colour_folder


def test_train_command_writes_checkpoint_and_summary(tmp_path, capsys):
    data = write_colour_folder(tmp_path / "data", n_per_class=8)
    out = tmp_path / "model.pt"
    code = main(["train", "--data", str(data), "--arch", "resnet18", "--weights", "none", "--img-size", "32",
                 "--epochs", "1", "--batch-size", "8", "--balance", "sampler", "--out", str(out),
                 "--curve", str(tmp_path / "curve.png"), "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["checkpoint"] == str(out) and summary["sha256"] == file_sha256(out)
    assert summary["split_sizes"]["train"] + summary["split_sizes"]["val"] + summary["split_sizes"]["test"] == 24
    _, card = load_checkpoint(out)
    assert card.training["config"]["balance"] == "sampler"
    assert (tmp_path / "curve.png").is_file()


def test_bad_layout_is_reported_not_raised(tmp_path, capsys):
    (tmp_path / "only").mkdir()
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--quiet"])
    assert code == 2
    assert "error:" in capsys.readouterr().err
