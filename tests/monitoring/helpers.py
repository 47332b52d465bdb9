"""Rows the monitoring queries read, made directly (as the workers would write them)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone

from diagnostics import audit
from diagnostics.models import (
    Analysis,
    AuditEvent,
    ImageStatus,
    ModelVersion,
    SlideImage,
    TaskRun,
)
from tests.factories import (
    AnalysisFactory,
    BatchFactory,
    CaseFactory,
    ModelVersionFactory,
    SlideImageFactory,
)


def make_site_admin(username: str = "siteadmin"):
    user = get_user_model().objects.create_user(username=username, email=f"{username}@example.org", password="x" * 12)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def make_images(lab, n: int, *, status: str = ImageStatus.DONE, accession: str | None = None) -> list[SlideImage]:
    case = CaseFactory(lab=lab, **({"accession_number": accession} if accession else {}))
    batch = BatchFactory(case=case)
    return [SlideImageFactory(batch=batch, case=case, position=i + 1, status=status) for i in range(n)]


def make_analysis(image: SlideImage, timings: dict[str, float], *, at: datetime | None = None,
                  model: ModelVersion | None = None) -> Analysis:
    return AnalysisFactory(
        image=image,
        model_version=model or ModelVersion.objects.first() or ModelVersionFactory(),
        label="Benign",
        confidence=0.9,
        timings=timings,
        created_at=at or timezone.now(),
        overlays=False,
    )


def make_task_run(task_name: str, *, at: datetime | None = None, seconds: float = 0.5, image_count: int = 1,
                  ok: bool = True, error: str = "", retries: int = 0, worker: str = "w1@host", queue: str = "cpu",
                  case=None) -> TaskRun:
    at = at or timezone.now()
    return TaskRun.objects.create(
        task_name=task_name, task_id="t", queue=queue, worker=worker, case=case, image_count=image_count, ok=ok,
        error=error, retries=retries, timings={"task": seconds}, started_at=at, finished_at=at,
    )


def fail_image(image: SlideImage, code: str, reason: str, *, attempts: int = 1, at: datetime | None = None) -> AuditEvent:
    """What diagnostics.pipeline.fail_image leaves behind: the image row and its audit event."""
    SlideImage.objects.filter(pk=image.pk).update(status=ImageStatus.FAILED, error_code=code, error=reason, attempts=attempts)
    event = audit.record(AuditEvent.Verb.ANALYSIS_FAILED, actor_label="worker test", case=image.case, obj=image,
                         code=code, reason=reason, position=image.position, filename=image.original_filename)
    if at is not None:
        AuditEvent.objects.filter(pk=event.pk).update(created_at=at)
    return event
