"""The worker side: what a Celery worker process adds to the apps.

The tasks live in each app's ``tasks.py`` (found by ``autodiscover_tasks``);
this app connects the worker start-up signals that load the active models
once per worker process (``workers.signals``). Nothing in the apps imports it.
"""

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Marrow-Find workers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workers import signals  # noqa: F401  (connects the worker_process_init model warm-up)
