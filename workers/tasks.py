"""Celery tasks of the analysis pipeline (thin over workers.pipeline and ml/)."""
