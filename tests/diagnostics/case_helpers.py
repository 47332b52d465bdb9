"""A case with analysed, failed and queued images (rows and real files), for the case page tests."""

from __future__ import annotations

from diagnostics.models import CaseStatus, ImageStatus, Specimen
from tests.factories import (
    AnalysisFactory,
    BatchFactory,
    CaseFactory,
    ModelVersionFactory,
    SlideImageFactory,
)


def analysed_case(lab, *, specimen: str = Specimen.BONE_MARROW, status: str = CaseStatus.AWAITING_REVIEW,
                  counts: list[tuple[int, int | None]] = ((20, 5), (10, 3)), model_version=None, **kwargs):
    """One done image per ``(wbc, blasts)`` pair (with CAM and segmentation overlay files), plus one failed image."""
    case = CaseFactory(lab=lab, specimen=specimen, status=status, **kwargs)
    batch = BatchFactory(case=case)
    version = model_version or ModelVersionFactory()
    labels = ["Pro", "Benign", "Pre", "Early"]
    for position, (wbc, blasts) in enumerate(counts, start=1):
        image = SlideImageFactory(batch=batch, case=case, position=position, status=ImageStatus.DONE)
        AnalysisFactory(
            image=image, model_version=version, label=labels[(position - 1) % 4], confidence=0.7,
            cell_counts={"wbc": wbc, "rbc": 100, "platelet": 4}, blasts=blasts,
        )
    SlideImageFactory(
        batch=batch, case=case, position=len(counts) + 1, status=ImageStatus.FAILED,
        error_code="truncated", error="The PNG file is cut short (its end marker is missing).",
    )
    return case
