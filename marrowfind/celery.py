"""The Celery application. Configuration comes from Django settings under the
``CELERY_`` namespace (cookiecutter-django style); each installed app's
``tasks.py`` is found by ``autodiscover_tasks()``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marrowfind.settings")

app = Celery("marrowfind")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
