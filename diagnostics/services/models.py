"""The model registry: which checkpoint the workers use."""

from __future__ import annotations

from django.db import transaction

from diagnostics import audit
from diagnostics.models import AuditEvent, ModelVersion


def active_model_version(task: str = "image") -> ModelVersion | None:
    return ModelVersion.objects.filter(task=task, is_active=True).first()


@transaction.atomic
def activate_model_version(version: ModelVersion, *, actor=None) -> ModelVersion:
    """Make ``version`` the one active model of its task. Workers compare the
    active version's SHA-256 with the one they hold at each batch, so the
    switch needs no restart."""
    ModelVersion.objects.select_for_update().filter(task=version.task, is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.refresh_from_db()
    audit.record(AuditEvent.Verb.MODEL_ACTIVATED, actor=actor, obj=version, model_version=version)
    return version
