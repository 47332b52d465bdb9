"""Case state: queueing the analysis, progress while it runs, and the case summary.

The summary is computed from the analyses in the database (never kept in a
worker's memory), so it is the same whichever worker finishes the last image
and can be recomputed at any time.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from django.conf import settings
from django.db.models import Count

from diagnostics.models import (
    Analysis,
    Case,
    CaseStatus,
    ImageStatus,
    ModelVersion,
    SlideImage,
    Specimen,
)
from marrowfind import dispatch

logger = logging.getLogger(__name__)

# Pipeline stages an image goes through, in order (SlideImage.stage while processing).
STAGE_CLASSIFY = "classify"  # claimed by classify_chunk (gpu queue): decode, classify, CAM
STAGE_CLASSIFIED = "classified"  # Analysis written, waiting for segment_image (cpu queue)
STAGE_SEGMENT = "segmentation"  # claimed by segment_image: segmentation, cell model, overlay
STAGE_LABELS = {
    "queued": "Waiting for a worker",
    STAGE_CLASSIFY: "Classification and CAM",
    STAGE_CLASSIFIED: "Waiting for segmentation",
    STAGE_SEGMENT: "Segmentation and cell counts",
    "done": "Done",
    "failed": "Failed",
}
ACTIVE_CASE_STATUSES = (CaseStatus.UPLOADED, CaseStatus.QUEUED, CaseStatus.PROCESSING)


def queue_case_processing(case_id: int) -> None:
    """Send ``process_case`` once the current transaction commits.

    ``robust``: the upload has committed by then, so a broker that is down must
    not turn it into an error page. The images stay "queued" and the periodic
    ``requeue_stuck_images`` sweeper sends the case again later.
    """

    dispatch.process_case(case_id)


def image_stage(image: SlideImage) -> str:
    """One word for where an image is: queued, classify, classified, segmentation, done, failed."""
    if image.status == ImageStatus.PROCESSING:
        return image.stage or STAGE_CLASSIFY
    return image.status


def case_progress(case: Case) -> dict[str, Any]:
    """Done/total and the number of images at each stage (the JSON progress endpoint and the page)."""
    stages: Counter[str] = Counter()
    rows = case.images.values("status", "stage").annotate(n=Count("id"))
    for row in rows:
        stage = (row["stage"] or STAGE_CLASSIFY) if row["status"] == ImageStatus.PROCESSING else row["status"]
        stages[stage] += row["n"]
    total = sum(stages.values())
    done = stages.get(ImageStatus.DONE, 0)
    failed = stages.get(ImageStatus.FAILED, 0)
    finished = done + failed
    return {
        "case": case.pk,
        "accession_number": case.accession_number,
        "status": case.status,
        "status_display": case.get_status_display(),
        "total": total,
        "done": done,
        "failed": failed,
        "finished": finished,
        "remaining": total - finished,
        "percent": round(100.0 * finished / total, 1) if total else 0.0,
        "stages": {stage: stages.get(stage, 0) for stage in STAGE_LABELS},
        "active": case.status in ACTIVE_CASE_STATUSES and total > finished,
        "started_at": case.processing_started_at.isoformat() if case.processing_started_at else None,
        "finished_at": case.processing_finished_at.isoformat() if case.processing_finished_at else None,
    }


def stage_rows(progress: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages with their labels and counts, in pipeline order, for templates."""
    return [{"key": key, "label": label, "count": progress["stages"][key]} for key, label in STAGE_LABELS.items()]


def summarise_case(case: Case) -> dict[str, Any]:
    """Case-level results from the analyses in the database.

    * ``per_class``: images per predicted label (one analysis per image: the newest one);
    * ``cells``/``wbc``/``rbc``/``platelet``: summed segmentation counts;
    * ``blasts`` and ``blast_fraction``: only over images where blasts were
      determined by a cell-level model (``None`` when no image had one: "not
      determined" must never read as "0 blasts"); the fraction is blasts over
      the white cells *of those images*;
    * ``who_flag``: a bone-marrow case at or above the WHO threshold (20% blasts);
    * ``demo``: any result came from a demo model (not for diagnosis).
    """
    images = list(case.images.all())
    latest: dict[int, Analysis] = {}
    for analysis in (
        Analysis.objects.filter(image__case=case).select_related("model_version").order_by("image_id", "created_at")
    ):
        latest[analysis.image_id] = analysis  # newest wins
    per_class: Counter[str] = Counter()
    binary: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    blasts = 0
    blast_wbc = 0
    blasts_determined = False
    demo = False
    low_confidence = 0
    for image in images:
        analysis = latest.get(image.pk)
        if analysis is None or image.status != ImageStatus.DONE:
            continue
        per_class[analysis.label] += 1
        binary_map = analysis.model_version.binary_map or {}
        if analysis.label in binary_map:
            binary["ALL" if binary_map[analysis.label] else "normal"] += 1
        low_confidence += int(analysis.low_confidence)
        demo = demo or analysis.model_version.is_demo
        for kind, number in (analysis.cell_counts or {}).items():
            counts[kind] += int(number)
        if analysis.blasts is not None:
            blasts_determined = True
            blasts += analysis.blasts
            blast_wbc += int((analysis.cell_counts or {}).get("wbc", 0))
    blast_fraction = (blasts / blast_wbc) if blasts_determined and blast_wbc else None
    who_flag = bool(
        case.specimen == Specimen.BONE_MARROW
        and blast_fraction is not None
        and blast_fraction >= settings.WHO_BLAST_THRESHOLD
    )
    statuses = Counter(image.status for image in images)
    return {
        "images": len(images),
        "analysed": statuses.get(ImageStatus.DONE, 0),
        "failed": statuses.get(ImageStatus.FAILED, 0),
        "per_class": dict(sorted(per_class.items())),
        "binary": dict(sorted(binary.items())),
        "low_confidence": low_confidence,
        "cells": sum(counts.values()),
        "wbc": counts.get("wbc", 0),
        "rbc": counts.get("rbc", 0),
        "platelet": counts.get("platelet", 0),
        "blasts": blasts if blasts_determined else None,
        "blast_wbc": blast_wbc if blasts_determined else None,
        "blast_fraction": round(blast_fraction, 4) if blast_fraction is not None else None,
        "who_threshold": settings.WHO_BLAST_THRESHOLD,
        "who_flag": who_flag,
        "demo": demo,
    }


def case_uses_demo_model(case: Case) -> bool:
    """True when any analysis of the case came from a demo model (pages and reports say so)."""
    return ModelVersion.objects.filter(analyses__image__case=case, is_demo=True).exists()
