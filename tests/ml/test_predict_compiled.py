"""The compiled predictor (torch.compile) gives the eager path's labels and maps, survives a
compiler failure, and a second process start reuses the on-disk compile cache.

Real images (all4class, one field per subtype, plus CBC fields of another size so
that the CAM is resized and the last chunk is padded) where the data is present;
the tests skip with the reason otherwise. ResNet-18 with seeded random weights:
the test is about the compile mechanism, not about accuracy. Compiled and eager
run the same module (ml.predict.ClassifyCam), so any difference comes from the
compiler.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.cam import pearson_r
from ml.datapaths import REPO_ROOT, shared_data_dir
from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES

ARCH = "resnet18"
BATCH = 4
MIN_R = 0.99

pytestmark = pytest.mark.timeout(900)


def _card(input_size: int = 224):
    from ml.checkpoint import ModelCard

    return ModelCard(arch=ARCH, class_names=list(SUBTYPES), binary_map=dict(SUBTYPE_BINARY_MAP),
                     input_size=input_size, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


def _model():
    from ml.models import build_model

    torch.manual_seed(0)
    return build_model(ARCH, SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights=None)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compile-cache")


@pytest.fixture(scope="module")
def real_images() -> list[np.ndarray]:
    from ml.imageio import load_image

    root = shared_data_dir()
    smears = root / "all4class"
    cbc = root / "cbc" / "Testing" / "Images"
    if not smears.is_dir() or not cbc.is_dir():
        pytest.skip(f"real data not found under {root} (set MARROWFIND_DATA_DIR)")
    files = [min((smears / name).glob("*.jpg")) for name in SUBTYPES if (smears / name).is_dir()]
    files += sorted(cbc.glob("*.jpg"))[:2]
    if len(files) < 6:
        pytest.skip(f"too few images under {root}")
    return [load_image(path) for path in files]  # 4 at 224 px + 2 at 640x480: chunks of 4 and 2


@pytest.mark.parametrize(("precision", "min_agreement"), [("fp32", 1.0), ("bf16", 0.99)])
def test_compiled_labels_maps_and_features_match_eager(real_images, cache_dir, precision, min_agreement) -> None:
    from ml.predict import Predictor

    model, card = _model(), _card()
    eager = Predictor(copy.deepcopy(model), card, device="cpu", precision=precision, batch_size=BATCH)
    compiled = Predictor(copy.deepcopy(model), card, device="cpu", precision=precision, batch_size=BATCH,
                         compile="on", compile_cache_dir=cache_dir).warm_up()
    assert eager.compile_state == "off"
    assert compiled.compile_state == "ready", compiled.compile_error
    reference = eager.predict(real_images)
    got = compiled.predict(real_images)
    again = compiled.predict(real_images[:1])  # a chunk of one: the same graph (padded to two)
    assert compiled.compile_state == "ready", compiled.compile_error

    agreement = np.mean([a.label == b.label for a, b in zip(reference, got)])
    assert agreement >= min_agreement, [(a.label, b.label) for a, b in zip(reference, got)]
    rs = [pearson_r(a.cam, b.cam) for a, b in zip(reference, got)]
    assert min(rs) >= MIN_R, rs
    for a, b in zip(reference, got):
        assert b.cam.shape == a.cam.shape and b.features.shape == a.features.shape == (model.feature_channels,)
        assert np.corrcoef(a.features, b.features)[0, 1] >= MIN_R
    assert again[0].label == got[0].label
    np.testing.assert_allclose(again[0].features, got[0].features, rtol=1e-3, atol=1e-3)
    if precision == "bf16":  # the compiled bf16 maps also match the fp32 maps
        fp32 = Predictor(copy.deepcopy(model), card, device="cpu", precision="fp32", batch_size=BATCH).predict(real_images)
        assert min(pearson_r(a.cam, b.cam) for a, b in zip(fp32, got)) >= MIN_R


def _start_a_process(cache: Path) -> dict:
    script = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        import torch
        torch.set_num_threads(2)
        from torch._dynamo.utils import counters
        from tests.ml.test_predict_compiled import _card, _model
        from ml.predict import Predictor
        started = time.perf_counter()
        predictor = Predictor(_model(), _card(), device="cpu", precision="fp32", batch_size={BATCH},
                              compile="on", compile_cache_dir={str(cache)!r}).warm_up()
        print(json.dumps({{"state": predictor.compile_state, "seconds": time.perf_counter() - started,
                          "hit": counters["inductor"]["fxgraph_cache_hit"],
                          "miss": counters["inductor"]["fxgraph_cache_miss"]}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env,
                          timeout=800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_second_process_start_reuses_the_compile_cache(cache_dir) -> None:
    """A worker restart: a fresh process compiling the same model finds inductor's code in the folder.

    Two identical processes, the first filling the folder: the in-process tests above
    compile under other settings (threads, precision), so their entries are not the
    ones a worker restart looks up.
    """
    first = _start_a_process(cache_dir / "restart")
    assert first["state"] == "ready" and first["miss"] >= 1, first
    second = _start_a_process(cache_dir / "restart")
    assert second["state"] == "ready"
    assert second["hit"] >= 1 and second["miss"] == 0, f"the second start compiled again: {second}"
    print(f"\nsecond process start: warm-up {second['seconds']:.1f} s on the cache")


def test_a_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch, caplog) -> None:
    import ml.predict
    from ml.predict import Predictor

    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    monkeypatch.setattr(ml.predict, "COMPILE_BACKEND", broken_backend)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    model, card = _model(), _card(input_size=64)
    eager = Predictor(copy.deepcopy(model), card, device="cpu", precision="fp32", batch_size=2).predict(images)
    predictor = Predictor(copy.deepcopy(model), card, device="cpu", precision="fp32", batch_size=2, compile="on")
    with caplog.at_level(logging.WARNING, logger="ml.predict"):
        predictor.warm_up()
        first = predictor.predict(images)
        predictor.warm_up()
        second = predictor.predict(images)
    warnings = [r for r in caplog.records if r.name == "ml.predict" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "no C++ compiler" in warnings[0].getMessage() and predictor.compile_state == "failed"
    for got in (first, second):
        assert [p.label for p in got] == [p.label for p in eager]
        for a, b in zip(got, eager):
            np.testing.assert_allclose(a.cam, b.cam, atol=1e-6)


def test_background_warm_up_returns_at_once_and_batches_run_eager_meanwhile(monkeypatch) -> None:
    """The worker's warm-up must not hold up the child's start (Celery's process start-up timeout)."""
    import threading

    import ml.predict
    from ml.predict import Predictor

    release = threading.Event()

    def slow_backend(graph_module, example_inputs):
        release.wait(60)  # a compiler that takes as long as the test wants
        return graph_module.forward

    monkeypatch.setattr(ml.predict, "COMPILE_BACKEND", slow_backend)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    predictor = Predictor(_model(), _card(input_size=64), device="cpu", precision="fp32", batch_size=2, compile="on")
    predictor.warm_up(wait=False)
    assert predictor.compile_state == "compiling"
    during = predictor.predict(images)  # eager while the compiler works
    assert predictor.compile_state == "compiling" and len(during) == 2
    release.set()
    predictor.warm_up(wait=True)
    assert predictor.compile_state == "ready"
    after = predictor.predict(images)
    assert [p.label for p in after] == [p.label for p in during]


def test_compile_modes_and_the_auto_rule(monkeypatch) -> None:
    from ml import compiled
    from ml.predict import Predictor

    cpu = torch.device("cpu")
    assert compiled.should_compile("off", cpu) is False
    assert compiled.should_compile("on", cpu) is True
    assert compiled.should_compile("auto", torch.device("cuda")) is True
    monkeypatch.setattr(compiled, "cpu_compile_measured_faster", lambda: False)
    assert compiled.should_compile("auto", cpu) is False
    monkeypatch.setattr(compiled, "cpu_compile_measured_faster", lambda: True)
    assert compiled.should_compile("auto", cpu) is True
    with pytest.raises(ValueError, match="compile mode"):
        compiled.should_compile("sometimes", cpu)
    with pytest.raises(ValueError, match="compile mode"):
        Predictor(_model(), _card(input_size=64), device="cpu", compile="yes")
