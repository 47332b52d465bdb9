"""Case state: queueing the analysis, progress while it runs, and the case summary.

The summary is computed from the analyses in the database (never kept in a
worker's memory), so it is the same whichever worker finishes the last image
and can be recomputed at any time.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from django.db.models import Count

from diagnostics.models import (
    Case,
    CaseStatus,
    ImageStatus,
    SlideImage,
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
    """Case-level results from the analyses in the database: the case record's
    summary (``diagnostics.services.case_record``), stored as ``Case.summary``
    when the case finishes.

    * ``per_class``: images per predicted label (one analysis per image: the newest one);
    * ``cells``/``wbc``/``rbc``/``platelet``: summed segmentation counts;
    * ``blasts`` and ``blast_fraction``: only over images where blasts were
      determined by a cell-level model (``None`` when no image had one: "not
      determined" must never read as "0 blasts"); ``blast_validated``: the
      cell model passed the blast gate (``ml.gates``);
    * ``who_flag``: a bone-marrow case at or above the WHO threshold (20% blasts);
    * ``demo``: a result came from a demo image *or* cell model (not for diagnosis).
    """
    from diagnostics.services.case_record import build_case_record

    return build_case_record(case).summary()


def case_uses_demo_model(case: Case) -> bool:
    """True when a result of the case came from a demo image or cell model (pages and reports say so)."""
    from diagnostics.services.case_record import build_case_record

    return build_case_record(case).demo
