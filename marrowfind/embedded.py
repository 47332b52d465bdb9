"""The folders of the embedded mode (no ``DATABASE_URL``): ``var/`` with the
SQLite database, the file-system broker's folders and the generated secret key.

Importing the settings creates nothing: the entry points (``manage.py``,
``wsgi.py``/``asgi.py``, a Celery worker or beat starting, the test session)
call :func:`prepare` first. Paths are computed here from the environment so
that the settings and :func:`prepare` agree without importing each other's
side effects.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
BROKER_SUBFOLDERS = ("queue", "processed", "control")


def var_dir() -> Path:
    raw = (os.environ.get("MARROWFIND_VAR_DIR") or "").strip()
    return Path(raw or BASE_DIR / "var").resolve()


def is_embedded() -> bool:
    return not (os.environ.get("DATABASE_URL") or "").strip()


def uses_filesystem_broker() -> bool:
    return ((os.environ.get("CELERY_BROKER_URL") or "").strip() or "filesystem://").startswith("filesystem://")


def secret_key_file() -> Path:
    return var_dir() / "secret_key"


def broker_folder(sub: str) -> Path:
    return var_dir() / "broker" / sub


def prepare() -> None:
    """Create what the embedded mode needs (idempotent; nothing in production mode)."""
    if not (is_embedded() or uses_filesystem_broker()):
        return
    folder = var_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if uses_filesystem_broker():
        for sub in BROKER_SUBFOLDERS:
            broker_folder(sub).mkdir(parents=True, exist_ok=True)
    key_file = secret_key_file()
    if not (os.environ.get("SECRET_KEY") or "").strip() and not key_file.exists():
        # O_EXCL: two processes starting at once keep the same key.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
