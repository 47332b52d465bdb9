"""Registered models for tests, fast.

A real (untrained) ``ml/`` checkpoint is written once per test session into a
temporary folder; each test that needs a model registers that file through the
same registry code the ``register_model`` command uses. Untrained weights give
arbitrary labels, which is all the pipeline tests need: they check the
plumbing (one analysis per image, overlays, counts, states), not accuracy.
The card says ``demo=True`` so every page shows the demo banner, as it must
for any model not trained on real data.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

TEST_ARCH = "resnet18"
TEST_INPUT_SIZE = 64  # small on purpose: the pipeline tests run on 2 shared CPU cores

_lock = threading.Lock()
_paths: dict[tuple[str, str, int, int], Path] = {}
_folder: Path | None = None


def _session_folder() -> Path:
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="mf-test-models-"))
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def checkpoint_path(task: str = "image", *, arch: str = TEST_ARCH, input_size: int = TEST_INPUT_SIZE, seed: int = 0) -> Path:
    """A checkpoint file for ``task`` ("image": the four subtypes with the ALL
    binary head; "cell": not_blast/blast), made on first use in this session."""
    key = (task, arch, input_size, seed)
    with _lock:
        if key not in _paths:
            import torch

            from ml.checkpoint import ModelCard, save_checkpoint
            from ml.labels import CELL_CLASSES, SUBTYPE_BINARY_MAP, SUBTYPES
            from ml.models import build_model

            torch.manual_seed(seed)
            if task == "cell":
                model = build_model(arch, CELL_CLASSES, weights=None)
            else:
                model = build_model(arch, SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights=None)
            card = ModelCard.for_model(
                model,
                task=task,
                demo=True,
                input_size=input_size,
                training={"note": "untrained test fixture (tests/modelfixtures.py)", "seed": seed},
                metrics={"accuracy": None},
            )
            path = _session_folder() / f"test-{task}-{arch}-{input_size}-{seed}.pt"
            save_checkpoint(path, model, card)
            _paths[key] = path
        return _paths[key]


def register_test_model(task: str = "image", *, activate: bool = True, seed: int = 0, name: str | None = None):
    """Register (idempotently) and by default activate the session's test checkpoint; returns the ModelVersion."""
    from diagnostics.services.models import register_checkpoint

    version, _ = register_checkpoint(
        checkpoint_path(task, seed=seed), name=name or f"test {task} model {seed}", activate=activate
    )
    return version
