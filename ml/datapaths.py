"""Where the real (not committed) data sets live: one setting for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "MARROWFIND_DATA_DIR"


def shared_data_dir() -> Path:
    """``$MARROWFIND_DATA_DIR``, or ``../shared/data`` beside the repository."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if value:
        return Path(value).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()
