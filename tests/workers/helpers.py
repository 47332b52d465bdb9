"""Cases with real image files for the pipeline tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.core.files.base import ContentFile

from diagnostics.models import Case, CaseStatus, SlideImage
from tests.factories import BatchFactory, CaseFactory


def smear_bytes(seed: int, size: tuple[int, int] = (128, 128)) -> bytes:
    """A synthetic smear PNG when ml.synthetic is there, else seeded noise (the plumbing tests need only pixels)."""
    try:
        from tests.imagefactory import smear_png_bytes

        return smear_png_bytes(seed=seed, size=size)
    except ImportError:
        from tests.imagefactory import png_bytes

        return png_bytes(seed=seed, size=size)


def make_case(lab, n_images: int = 3, *, files: list[bytes] | None = None, filenames: list[str] | None = None,
              status: str = CaseStatus.QUEUED, **case_kwargs) -> Case:
    """A case with ``n_images`` queued images (files written to MEDIA_ROOT), as an upload leaves it.

    ``filenames`` (default ``field-<n>.png``) must end in the files' real format: the pipeline checks it.
    """
    from ml.imageio import inspect_image

    case = CaseFactory(lab=lab, status=status, **case_kwargs)
    batch = BatchFactory(case=case)
    payloads = files if files is not None else [smear_bytes(seed) for seed in range(1, n_images + 1)]
    names = filenames or [f"field-{position}.png" for position in range(1, len(payloads) + 1)]
    for position, (data, name) in enumerate(zip(payloads, names, strict=True), start=1):
        try:
            info = inspect_image(data, filename=name)
            width, height = info.width, info.height
        except Exception:  # noqa: BLE001 deliberately broken payloads: the pipeline must cope
            width = height = 1
        image = SlideImage(
            case=case, batch=batch, position=position, original_filename=name,
            sha256=hashlib.sha256(data).hexdigest(), width=width, height=height,
        )
        image.file.save("upload" + Path(name).suffix, ContentFile(data), save=False)
        image.save()
    batch.accepted_count = len(payloads)
    batch.save()
    return case


def run_case_inline(case: Case) -> list[int]:
    """The pipeline functions in this process, in the order the tasks would run them; returns the Analysis ids."""
    from diagnostics import pipeline

    pipeline.start_case(case.pk)
    analysed: list[int] = []
    for chunk in pipeline.dispatch_queued_images(case.pk):
        pipeline.classify_chunk(chunk, on_analysed=analysed.append)
    for analysis_id in analysed:
        pipeline.segment_image(analysis_id)
    case.refresh_from_db()
    return analysed
