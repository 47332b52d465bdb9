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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and item.get_closest_marker("services"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"services test skipped but MARROWFIND_REQUIRE_SERVICES=1: {reason}"
