"""``python -m ml predict`` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, str]:
    """A small real checkpoint: resnet18, random init (seeded), subtypes + binary head, 64 px input."""
    from ml.checkpoint import ModelCard, save_checkpoint
    from ml.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights=None)
    card = ModelCard(arch="resnet18", class_names=list(SUBTYPES), binary_map=dict(SUBTYPE_BINARY_MAP),
                     input_size=64, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    return path, save_checkpoint(path, model, card)


def _run(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MARROWFIND_MODEL"}
    env.update(env_extra or {})
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "ml", "predict", *args], check=False, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _write_pngs(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        height, width = (60 + 7 * index, 80)
        path = folder / f"smear-{index:02d}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_generated_images_give_one_json_line_each_with_cam_and_a_clear_error_for_a_bad_one(
    checkpoint, tmp_path
) -> None:
    from ml.checkpoint import file_sha256

    model_path, _ = checkpoint
    images = _write_pngs(tmp_path, 9)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    inputs = [*images[:4], bad, *images[4:]]
    cam_dir = tmp_path / "cams"

    result = _run([*map(str, inputs), "--model", str(model_path), "--cam-dir", str(cam_dir)])

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    records = _records(result.stdout)
    assert [r["file"] for r in records] == [str(p) for p in inputs]
    error = records[4]
    assert error["code"] and error["error"] and "label" not in error
    assert f"error: {bad}:" in result.stderr
    sha = file_sha256(model_path)
    for path, record in zip(inputs, records):
        assert record["model_sha256"] == sha
        if path == bad:
            continue
        assert record["label"] in SUBTYPES
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert isinstance(record["low_confidence"], bool)
        assert 0.0 <= record["all_probability"] <= 1.0
        with Image.open(record["cam"]) as overlay, Image.open(path) as original:
            assert overlay.size == original.size
            assert overlay.format == "PNG"
    assert "100%" in result.stderr  # the progress bar of a 10-image run


def test_model_from_environment_without_cam_dir(checkpoint, tmp_path) -> None:
    images = _write_pngs(tmp_path, 2)
    result = _run([*map(str, images), "--quiet"], env_extra={"MARROWFIND_MODEL": str(checkpoint[0])})
    assert result.returncode == 0, result.stderr
    records = _records(result.stdout)
    assert len(records) == 2 and all(r["cam"] is None and r["label"] in SUBTYPES for r in records)
    assert "100%" not in result.stderr


def test_missing_model_says_how_to_get_one(tmp_path) -> None:
    images = _write_pngs(tmp_path, 1)
    result = _run([str(images[0])])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--model" in result.stderr and "MARROWFIND_MODEL" in result.stderr
    assert "python -m ml train" in result.stderr
    assert result.stdout == ""


@pytest.mark.realdata
def test_real_cbc_test_images(checkpoint, real_data, tmp_path) -> None:
    from ml.imageio import load_image

    files = sorted((real_data / "cbc" / "Testing" / "Images").glob("*.jpg"))[:3]
    result = _run([*map(str, files), "--model", str(checkpoint[0]), "--cam-dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    records = _records(result.stdout)
    assert [r["file"] for r in records] == [str(f) for f in files]
    for path, record in zip(files, records):
        assert record["label"] in SUBTYPES
        overlay = load_image(record["cam"])
        assert overlay.shape == load_image(path).shape
