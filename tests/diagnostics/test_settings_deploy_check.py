"""`manage.py check --deploy --fail-level WARNING` is clean with production settings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_deploy_check_is_clean_with_production_environment(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SECURE_HTTPS", "STATIC_STORAGE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
                       "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "marrowfind.settings",
            "MARROWFIND_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://marrowfind:secret@db.internal:5432/marrowfind",
            "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "marrowfind.example.org",
            "CSRF_TRUSTED_ORIGINS": "https://marrowfind.example.org",
            "SITE_URL": "https://marrowfind.example.org",  # a loopback one warns (tests/reports/test_site_url_check.py)
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout
