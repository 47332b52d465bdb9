"""``python -m ml segment`` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ml.synthetic import make_smear

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "ml", "segment", *args], check=False, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def smear_files(tmp_path_factory) -> tuple[list[Path], list[dict]]:
    folder = tmp_path_factory.mktemp("smears")
    paths, truths = [], []
    for seed, label in ((1, "Benign"), (2, "Pro")):
        smear = make_smear(seed, label, (224, 224))
        path = folder / f"{label}-{seed}.png"
        Image.fromarray(smear.image).save(path)
        paths.append(path)
        truths.append(smear.counts)
    return paths, truths


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_counts_overlays_and_cells(smear_files, tmp_path: Path) -> None:
    paths, truths = smear_files
    overlay_dir = tmp_path / "overlays"
    proc = _run([*map(str, paths), "--overlay-dir", str(overlay_dir), "--pixels-per-micron", "4", "--cells"])
    assert proc.returncode == 0, proc.stderr
    records = _lines(proc.stdout)
    assert [r["file"] for r in records] == [str(p) for p in paths]
    for record, truth in zip(records, truths):
        assert record["counts"]["wbc"] == truth["wbc"]
        assert abs(record["counts"]["rbc"] - truth["rbc"]) <= max(2, truth["rbc"] // 10)
        assert record["blasts"] is None  # not determined without a cell model
        assert record["pixels_per_micron"] == 4.0 and record["scale_estimated"] is False
        assert len(record["cells"]) == sum(record["counts"].values())
        overlay = Path(record["overlay"])
        assert overlay.parent == overlay_dir
        with Image.open(overlay) as image:
            assert image.size == (224, 224)


def test_bad_files_are_reported_and_the_run_goes_on(smear_files, tmp_path: Path) -> None:
    paths, _ = smear_files
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")
    missing = tmp_path / "missing.jpg"
    proc = _run([str(broken), str(paths[0]), str(missing)])
    assert proc.returncode == 1
    records = _lines(proc.stdout)
    assert [r["file"] for r in records] == [str(broken), str(paths[0]), str(missing)]
    assert records[0]["code"] == "not_an_image" and records[0]["error"]
    assert "counts" in records[1] and "cells" not in records[1]
    assert records[2]["code"] == "not_found"
    assert f"error: {broken}:" in proc.stderr and "2 of 3 images failed" in proc.stderr


def test_tissue_mode_counts_nuclei(smear_files) -> None:
    paths, _ = smear_files
    proc = _run(["--mode", "tissue", str(paths[0])])
    assert proc.returncode == 0, proc.stderr
    (record,) = _lines(proc.stdout)
    assert record["mode"] == "tissue" and set(record["counts"]) == {"nucleus"}


def test_progress_bar_on_long_runs(smear_files) -> None:
    paths, _ = smear_files
    proc = _run([str(paths[0])] * 8)
    assert proc.returncode == 0
    assert len(_lines(proc.stdout)) == 8
    assert "8/8" in proc.stderr  # tqdm's bar went to stderr, stdout stays pure JSON lines


def test_bad_scale_is_refused(smear_files) -> None:
    paths, _ = smear_files
    proc = _run([str(paths[0]), "--pixels-per-micron", "-1"])
    assert proc.returncode == 2 and "pixels-per-micron" in proc.stderr


def test_cell_model_fills_in_blasts(smear_files, tmp_path: Path) -> None:
    """With a cell-level checkpoint (here a tiny untrained one) blasts become a number, never null."""
    import torch

    from ml.checkpoint import ModelCard, save_checkpoint
    from ml.labels import CELL_CLASSES
    from ml.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", CELL_CLASSES, weights=None)
    card = ModelCard(arch="resnet18", class_names=list(CELL_CLASSES), binary_map=None, input_size=32,
                     mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], task="cell")
    checkpoint = tmp_path / "cell.pt"
    save_checkpoint(checkpoint, model, card)
    paths, _truths = smear_files
    proc = _run([str(paths[1]), "--pixels-per-micron", "4", "--cell-model", str(checkpoint), "--cells"])
    assert proc.returncode == 0, proc.stderr
    (record,) = _lines(proc.stdout)
    assert isinstance(record["blasts"], int) and 0 <= record["blasts"] <= record["counts"]["wbc"]
    wbc = [cell for cell in record["cells"] if cell["kind"] == "wbc"]
    assert all(0.0 <= cell["blast_probability"] <= 1.0 for cell in wbc)
