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
    "API_THROTTLE_ANON", "API_THROTTLE_USER", "API_THROTTLE_UPLOAD", "API_THROTTLE_TOKEN", "LOG_LEVEL",
    "CLASSIFY_QUEUE", "MARROWFIND_WARM_UP", "TRUSTED_PROXY_COUNT", "CACHE_URL",
)
# What an entry point (manage.py, wsgi, a Celery worker) does: prepare the embedded folders, then start Django.
ENTRY_POINT = "from marrowfind import embedded; embedded.prepare(); import django; django.setup(); print('started')"
IMPORT_ONLY = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.MARROWFIND_WARM_UP, settings.LOG_LEVEL); print('started')"
)


def start_django(tmp_path: Path, code: str = ENTRY_POINT, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARS}
    clean.update({"MARROWFIND_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "marrowfind.settings"}, **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean (use 1/0, true/false, yes/no, on/off)"),
        ({"WORKER_BATCH_SIZE": "sixteen"}, "WORKER_BATCH_SIZE='sixteen' is not an integer"),
        ({"WORKER_BATCH_SIZE": "0"}, "WORKER_BATCH_SIZE='0' must be at least 1"),
        ({"LOW_CONFIDENCE_THRESHOLD": "1.5"}, "LOW_CONFIDENCE_THRESHOLD='1.5' must be at most 1.0"),
        ({"DIFFERENTIAL_TARGET_MARROW": "0"}, "DIFFERENTIAL_TARGET_MARROW='0' must be at least 1"),
        ({"DIFFERENTIAL_TARGET_BLOOD": "a hundred"}, "DIFFERENTIAL_TARGET_BLOOD='a hundred' is not an integer"),
        ({"DATABASE_URL": "mongo://db/marrowfind"}, "DATABASE_URL is not a usable database URL"),
        ({"MEDIA_SERVE_MODE": "apache"}, "MEDIA_SERVE_MODE='apache' is not one of: django, nginx"),
        ({"DATABASE_URL": "postgres://db/marrowfind", "DEBUG": "0"}, "SECRET_KEY must be set when DATABASE_URL is set"),
        ({"DATABASE_URL": "postgres://db/marrowfind", "SECRET_KEY": "short"}, "SECRET_KEY is too short"),
        ({"CELERY_TASK_SOFT_TIME_LIMIT": "300", "CELERY_TASK_TIME_LIMIT": "300"},
         "CELERY_TASK_TIME_LIMIT must be greater than CELERY_TASK_SOFT_TIME_LIMIT"),
        ({"API_THROTTLE_ANON": "60 per minute"}, "API_THROTTLE_ANON='60 per minute' is not a rate"),
        ({"API_THROTTLE_USER": "0/min"}, "API_THROTTLE_USER='0/min' is not a rate"),
        ({"API_THROTTLE_UPLOAD": "120/fortnight"}, "API_THROTTLE_UPLOAD='120/fortnight' is not a rate"),
        ({"API_THROTTLE_TOKEN": "many/hour"}, "API_THROTTLE_TOKEN='many/hour' is not a rate"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose' is not one of: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"CLASSIFY_QUEUE": "gpus"}, "CLASSIFY_QUEUE='gpus' is not one of: gpu, cpu, priority"),
        # A typo used to mean "on": any value other than 0/false/no/off warmed up.
        ({"MARROWFIND_WARM_UP": "of"}, "MARROWFIND_WARM_UP='of' is not a boolean"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT='-1' must be at least 0"),
        ({"TRUSTED_PROXY_COUNT": "nginx"}, "TRUSTED_PROXY_COUNT='nginx' is not an integer"),
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


def test_good_values_are_read(tmp_path: Path) -> None:
    result = start_django(
        tmp_path, LOG_LEVEL="warning", MARROWFIND_WARM_UP="off", API_THROTTLE_ANON="10/hour",
        code=ENTRY_POINT.replace("print('started')", "from django.conf import settings as s; "
                                 "print(s.LOG_LEVEL, s.MARROWFIND_WARM_UP, s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['anon'])"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["WARNING", "False", "10/hour"]


def test_importing_the_settings_creates_no_folder(tmp_path: Path) -> None:
    var = tmp_path / "var"  # does not exist
    result = start_django(var, code=IMPORT_ONLY, SECRET_KEY="k" * 40)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "started" in result.stdout
    assert not var.exists()
    assert list(tmp_path.iterdir()) == []


def test_without_a_key_or_prepared_folder_the_message_says_how_to_start(tmp_path: Path) -> None:
    var = tmp_path / "var"
    result = start_django(var, code=IMPORT_ONLY)
    assert result.returncode != 0
    assert "no SECRET_KEY and no generated key" in result.stderr
    assert not var.exists()


def test_an_entry_point_prepares_the_embedded_folders(tmp_path: Path) -> None:
    var = tmp_path / "var"
    result = start_django(var)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (var / "secret_key").is_file()
    assert all((var / "broker" / sub).is_dir() for sub in ("queue", "processed", "control"))
