"""ml.metrics is a leaf (no torch, no other ml module) and its distances behave as defined."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from ml import metrics


def test_ml_metrics_imports_no_torch_and_no_other_ml_module():
    tree = ast.parse(Path(metrics.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {n for n in names if n.split(".")[0] in ("torch", "ml", "django")}, names


def test_no_ml_module_imports_a_private_function_of_another():
    offenders = []
    for path in Path(metrics.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ml"):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, offenders


def test_frechet_distance_is_zero_on_the_same_set_and_the_squared_mean_shift_otherwise():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 6))
    assert metrics.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([2.0, 0, 0, 0, 0, 0])
    assert metrics.frechet_distance(real, real + shift) == pytest.approx(4.0, rel=1e-3)


def test_kernel_distance_separates_a_shifted_distribution():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    same = metrics.kernel_distance(a, b, seed=0)
    shifted = metrics.kernel_distance(a, b + 1.0, seed=0)
    assert abs(same) < 0.05 and shifted > 10 * max(abs(same), 1e-3)


def test_mean_sd_uses_the_sample_sd_and_skips_missing_values():
    mean, sd = metrics.mean_sd([0.8, 0.9, None, 1.0])
    assert mean == pytest.approx(0.9) and sd == pytest.approx(0.1)
