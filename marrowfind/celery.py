"""The Celery application. Configuration comes from Django settings under the
``CELERY_`` namespace (cookiecutter-django style); each installed app's
``tasks.py`` is found by ``autodiscover_tasks()``."""

from __future__ import annotations

import os

from celery import Celery, signals

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


@signals.worker_init.connect
def _fail_fast_without_a_broker(sender=None, **kwargs) -> None:
    """A worker pointed at an unreachable broker stops at once with a message that says so."""
    from django.conf import settings

    from marrowfind.brokerurl import redacted

    if settings.CELERY_EMBEDDED_BROKER:
        return
    connection = app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=settings.CELERY_BROKER_CONNECTION_MAX_RETRIES, interval_start=0.5,
                                     interval_step=0.5, interval_max=1.0, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: stop, saying why
        raise SystemExit(
            f"marrow-find worker: the broker at {redacted(settings.CELERY_BROKER_URL)} is unreachable "
            f"({exc.__class__.__name__}: {exc}); start Redis or correct CELERY_BROKER_URL"
        ) from None
    finally:
        connection.release()
