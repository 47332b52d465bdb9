"""The tiny training run the smoke tests use (real Taleqani subset in CI, synthetic smears elsewhere)."""

from __future__ import annotations

from pathlib import Path

from ml.train import TrainConfig


def smoke_config(data: Path, out: Path, **overrides) -> TrainConfig:
    settings = {
        "data": data, "out": out, "arch": "resnet18", "weights": None, "img_size": 64, "epochs": 2,
        "batch_size": 8, "lr": 3e-3, "val_fraction": 0.3, "test_fraction": 0.0, "progress": False,
        "save_state": False, "seed": 0, "curve": out.with_suffix(".png"),
    }
    settings.update(overrides)
    return TrainConfig(**settings)
