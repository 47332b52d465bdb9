"""``python -m ml train-cells`` is registered and takes its options (training itself: bench/cells.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.cli import build_parser, main


def test_train_cells_parses_its_options(tmp_path):
    args = build_parser().parse_args(["train-cells", "--out", str(tmp_path / "m.pt"), "--input-size", "96",
                                      "--all4class-every", "12", "--data", str(tmp_path)])
    assert args.command == "train-cells" and args.input_size == 96 and args.all4class_every == 12
    assert args.out == tmp_path / "m.pt" and args.data == Path(tmp_path) and callable(args.func)


def test_train_cells_needs_an_output_path(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-cells"])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_train_cells_on_a_folder_without_the_data_sets_fails_with_a_message(tmp_path, capsys):
    assert main(["train-cells", "--out", str(tmp_path / "m.pt"), "--data", str(tmp_path), "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err
