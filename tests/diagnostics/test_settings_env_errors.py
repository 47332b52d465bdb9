"""Settings are parsed strictly: a bad environment value stops the start with a clear message.

Each case starts a fresh Python process (settings are read once per process),
with a clean environment apart from the one bad variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_VARS = (
    "DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "MEDIA_ROOT", "SECURE_HTTPS",
    "STATIC_STORAGE", "WORKER_BATCH_SIZE", "CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT",
)


def start_django(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARS}
    clean.update({"MARROWFIND_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "marrowfind.settings"}, **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean (use 1/0, true/false, yes/no, on/off)"),
        ({"WORKER_BATCH_SIZE": "sixteen"}, "WORKER_BATCH_SIZE='sixteen' is not an integer"),
        ({"WORKER_BATCH_SIZE": "0"}, "WORKER_BATCH_SIZE='0' must be at least 1"),
        ({"LOW_CONFIDENCE_THRESHOLD": "1.5"}, "LOW_CONFIDENCE_THRESHOLD='1.5' must be at most 1.0"),
        ({"DATABASE_URL": "mongo://db/marrowfind"}, "DATABASE_URL is not a usable database URL"),
        ({"MEDIA_SERVE_MODE": "apache"}, "MEDIA_SERVE_MODE='apache' is not one of: django, nginx"),
        ({"DATABASE_URL": "postgres://db/marrowfind", "DEBUG": "0"}, "SECRET_KEY must be set when DATABASE_URL is set"),
        ({"DATABASE_URL": "postgres://db/marrowfind", "SECRET_KEY": "short"}, "SECRET_KEY is too short"),
        ({"CELERY_TASK_SOFT_TIME_LIMIT": "300", "CELERY_TASK_TIME_LIMIT": "300"},
         "CELERY_TASK_TIME_LIMIT must be greater than CELERY_TASK_SOFT_TIME_LIMIT"),
    ],
)
def test_bad_value_stops_the_start_with_a_clear_message(tmp_path: Path, env: dict, message: str) -> None:
    result = start_django(tmp_path, **env)
    assert result.returncode != 0, result.stdout
    assert "started" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr, result.stderr[-2000:]


def test_the_embedded_defaults_start(tmp_path: Path) -> None:
    result = start_django(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "started" in result.stdout
    assert (tmp_path / "secret_key").is_file()  # generated and kept for the embedded mode
