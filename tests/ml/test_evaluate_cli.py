"""``python -m ml evaluate``: JSON on stdout and in --json, plots in --plots."""

from __future__ import annotations

import json

from ml.cli import main
from tests.ml._evalkit import save_probe_checkpoint, write_colour_folder


def test_evaluate_command_writes_json_and_plots(tmp_path, capsys):
    data = write_colour_folder(tmp_path / "data", n_per_class=10)
    ckpt = save_probe_checkpoint(data, tmp_path / "model.pt")
    report_path, plots = tmp_path / "eval.json", tmp_path / "plots"
    code = main(["evaluate", "--model", str(ckpt), "--data", str(data), "--json", str(report_path),
                 "--plots", str(plots), "--cam-examples", "3", "--quiet"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    stored = json.loads(report_path.read_text())
    assert printed == stored
    for key in ("accuracy", "f1_weighted", "f1_macro", "kappa", "ece", "per_class", "accuracy_shifted",
                "shortcut_baseline_accuracy", "corner_patch_accuracy", "robustness"):
        assert key in stored, key
    assert set(stored["robustness"]) == {"stain_colour", "stain", "colour", "blur", "jpeg"}
    assert (plots / "confusion_matrix.png").is_file() and (plots / "roc_curves.png").is_file()
    assert len(list((plots / "gradcam").glob("*.png"))) == 3


def test_evaluate_without_stored_split_needs_split_all(tmp_path, capsys):
    from ml.checkpoint import ModelCard, save_checkpoint
    from ml.models import build_model

    data = write_colour_folder(tmp_path / "data", n_per_class=4)
    model = build_model("resnet18", ["a", "b", "c"])
    save_checkpoint(tmp_path / "m.pt", model, ModelCard.for_model(model, input_size=32))
    assert main(["evaluate", "--model", str(tmp_path / "m.pt"), "--data", str(data), "--quiet",
                 "--no-robustness"]) == 2
    assert "--split all" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "m.pt"), "--data", str(data), "--split", "all",
                 "--quiet", "--no-robustness"]) == 0
