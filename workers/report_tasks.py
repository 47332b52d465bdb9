"""Celery tasks that render reports (cpu queue)."""
