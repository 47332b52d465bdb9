"""Writing the audit trail: who did what to which object, and when."""

from __future__ import annotations

from typing import Any

from diagnostics.models import AuditEvent, Case, ModelVersion


def record(
    verb: str,
    *,
    actor=None,
    actor_label: str = "",
    case: Case | None = None,
    lab=None,
    obj: Any = None,
    model_version: ModelVersion | None = None,
    **detail: Any,
) -> AuditEvent:
    if lab is None and case is not None:
        lab = case.lab
    return AuditEvent.objects.create(
        verb=verb,
        actor=actor if (actor is not None and actor.is_authenticated) else None,
        actor_label=actor_label or (str(actor) if actor is not None and actor.is_authenticated else ""),
        case=case,
        lab=lab,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        model_version=model_version,
        detail=detail,
    )
