"""A blast-or-not cell model evaluates on C-NMC files: hem -> not_blast, all -> blast."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ml.checkpoint import ModelCard, save_checkpoint
from ml.evaluate import evaluate_checkpoint
from ml.labels import CELL_CLASSES
from ml.models import build_model


def test_cell_model_on_cnmc_layout(tmp_path):
    rng = np.random.default_rng(0)
    for patient, label in (("1", "all"), ("2", "all"), ("H1", "hem"), ("H2", "hem")):
        for cell in range(3):
            image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / f"UID_{patient}_{cell}_1_{label}.png")
    model = build_model("resnet18", CELL_CLASSES)
    ckpt = tmp_path / "cell.pt"
    save_checkpoint(ckpt, model, ModelCard.for_model(model, input_size=32, task="cell"))

    report = evaluate_checkpoint(ckpt, tmp_path, layout="cnmc", split="all", progress=False,
                                 robustness=False, shortcuts=False, cam_examples=0)
    assert report["n"] == 12 and report["class_names"] == list(CELL_CLASSES)
    assert report["per_class"]["not_blast"]["support"] == 6 and report["per_class"]["blast"]["support"] == 6
