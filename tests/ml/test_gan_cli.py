"""``python -m ml gan train|sample``."""

from __future__ import annotations

import json

from PIL import Image

from ml.cli import main
from tests.ml._evalkit import write_colour_folder


def test_gan_train_then_sample(tmp_path, capsys):
    data = write_colour_folder(tmp_path / "data", n_per_class=6, size=40)
    gan = tmp_path / "gan.pt"
    assert main(["gan", "train", "--data", str(data), "--out", str(gan), "--epochs", "1", "--batch-size", "8",
                 "--grid-dir", str(tmp_path / "grids"), "--quiet"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(trained["grids"]) == 3 and all(Image.open(g).size[0] > 64 for g in trained["grids"])

    assert main(["gan", "sample", "--model", str(gan), "--class", "b", "--n", "4", "--out",
                 str(tmp_path / "samples")]) == 0
    files = sorted((tmp_path / "samples").glob("b-gan-*.png"))
    assert len(files) == 4 and Image.open(files[0]).size == (64, 64)

    assert main(["gan", "sample", "--model", str(gan), "--class", "zebra", "--n", "1", "--out",
                 str(tmp_path / "x")]) == 2


def test_gan_ablation_command(tmp_path, capsys):
    data = write_colour_folder(tmp_path / "data", n_per_class=8, size=40)
    report = tmp_path / "ablation.json"
    assert main(["gan", "ablation", "--data", str(data), "--out", str(tmp_path / "abl"), "--arch", "resnet18",
                 "--weights", "none", "--img-size", "32", "--epochs", "1", "--gan-epochs", "1",
                 "--batch-size", "8", "--json", str(report), "--quiet"]) == 0
    result = json.loads(report.read_text())
    assert {"baseline", "gan", "delta_accuracy", "delta_kappa", "helped"} <= set(result)
