"""The Celery application. Configuration comes from Django settings under the
``CELERY_`` namespace (cookiecutter-django style); each installed app's
``tasks.py`` is found by ``autodiscover_tasks()``."""

from __future__ import annotations

import os

from celery import Celery

from marrowfind import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marrowfind.settings")


app = Celery("marrowfind")


@app.on_configure.connect
def _prepare_embedded_folders(sender=None, **kwargs) -> None:
    """The first use of the app's configuration (a worker or beat starting, the
    first task sent) makes the embedded folders before the settings are read:
    importing the settings creates nothing."""
    embedded.prepare()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
