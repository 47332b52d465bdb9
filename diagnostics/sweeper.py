"""The periodic sweeper (``diagnostics.tasks.requeue_stuck_images``, every two minutes on beat):
give back work whose worker vanished, find work whose message was lost, and the final
report of every signed case that has none. Every change is a conditional UPDATE on the
stale condition (``STUCK_IMAGE_AFTER_S``), so two sweepers at once cannot double-send."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from diagnostics.models import Analysis, Case, CaseStatus, ImageStatus, SlideImage
from diagnostics.pipeline import (
    MAX_IMAGE_ATTEMPTS,
    _claims_of_gone_workers,
    _stale_before,
    fail_image,
    finalize_case_if_complete,
)
from diagnostics.services.cases import STAGE_CLASSIFIED, STAGE_CLASSIFY, STAGE_SEGMENT


@dataclass
class RequeuePlan:
    cases: list[int] = field(default_factory=list)  # send process_case (queued images to (re)send)
    segment: list[int] = field(default_factory=list)  # Analysis ids to send to segment_image again
    failed: list[int] = field(default_factory=list)  # images given up on
    # (case id, signer id, sign-out version) of signed cases whose final report is missing
    reports: list[tuple[int, int | None, int]] = field(default_factory=list)
    tiles: list[int] = field(default_factory=list)  # Analysis ids to send to make_tiles (viewer tiles missing)


def requeue_stuck_images(now=None) -> RequeuePlan:
    """Give back work whose worker vanished, and find work whose message was lost.

    * ``processing`` in classification with a stale claim: back to ``queued``
      (claim cleared), so ``process_case`` sends it again; after
      ``MAX_IMAGE_ATTEMPTS`` claims the image fails instead.
    * ``processing`` in (or waiting for) segmentation with a stale claim: the
      claim is reset to "classified" and its Analysis is sent to
      ``segment_image`` again.
    * ``queued`` images whose message was sent longer ago than the stale limit
      (or never, e.g. the broker was down at upload): their case is sent to
      ``process_case`` again.
    Every change is a conditional UPDATE on the stale condition, so two
    sweepers at once cannot double-send the same image.
    """
    now = now or timezone.now()
    stale = _stale_before(now)
    plan = RequeuePlan()
    # Stale: older than the long limit, or held by a worker that is gone (kill -9: its heartbeat expired).
    gone = _claims_of_gone_workers(now)
    is_stale = Q(claimed_at__lt=stale) | Q(claimed_by__in=gone)
    in_classification = Q(status=ImageStatus.PROCESSING, stage__in=["", STAGE_CLASSIFY]) & is_stale
    for image_id in SlideImage.objects.filter(in_classification, attempts__gte=MAX_IMAGE_ATTEMPTS).values_list("pk", flat=True):
        if fail_image(
            image_id,
            "too_many_attempts",
            f"Gave up after {MAX_IMAGE_ATTEMPTS} attempts: the worker stopped each time while analysing this image.",
            actor_label="sweeper",
        ):
            plan.failed.append(image_id)
    given_back = SlideImage.objects.filter(in_classification, attempts__lt=MAX_IMAGE_ATTEMPTS)
    requeued_cases = set(given_back.values_list("case_id", flat=True))
    given_back.update(status=ImageStatus.QUEUED, stage="", claimed_at=None, claimed_by="")
    stuck_segmentation = SlideImage.objects.filter(
        is_stale, status=ImageStatus.PROCESSING, stage__in=[STAGE_CLASSIFIED, STAGE_SEGMENT]
    )
    for image in stuck_segmentation.only("pk", "claimed_at"):
        analysis = Analysis.objects.filter(image_id=image.pk).order_by("-created_at").first()
        if analysis is None:  # cannot happen by construction; classify it again
            SlideImage.objects.filter(pk=image.pk, claimed_at=image.claimed_at).update(
                status=ImageStatus.QUEUED, stage="", claimed_at=None, claimed_by=""
            )
            continue
        if SlideImage.objects.filter(pk=image.pk, status=ImageStatus.PROCESSING, claimed_at=image.claimed_at).update(
            stage=STAGE_CLASSIFIED, claimed_at=now, claimed_by=""
        ):
            plan.segment.append(analysis.pk)
    lost = SlideImage.objects.filter(status=ImageStatus.QUEUED).filter(
        Q(claimed_at__isnull=True, created_at__lt=stale) | Q(claimed_at__lt=stale)
    )
    plan.cases = sorted(requeued_cases | set(lost.values_list("case_id", flat=True)))
    for case_id in {c for c in SlideImage.objects.filter(pk__in=plan.failed).values_list("case_id", flat=True)}:
        finalize_case_if_complete(case_id, actor_label="sweeper")
    plan.reports = signed_cases_without_report(stale)
    plan.tiles = analyses_without_tiles(stale)
    return plan


TILES_PER_SWEEP = 50


def analyses_without_tiles(analysed_before, limit: int = TILES_PER_SWEEP) -> list[int]:
    """The newest analysis of each finished image, made before ``analysed_before``, that has
    no viewer tiles and no recorded failure to make them (the message was lost, or the
    analysis predates the viewer): at most ``limit`` a sweep, oldest first."""
    newer = Analysis.objects.filter(image=OuterRef("image"), created_at__gt=OuterRef("created_at"))
    return list(
        Analysis.objects.filter(tiles={}, image__status=ImageStatus.DONE, created_at__lt=analysed_before)
        .exclude(Exists(newer))
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def signed_cases_without_report(signed_before) -> list[tuple[int, int | None, int]]:
    """Cases signed out before ``signed_before`` that have no final (or superseded)
    report of their current sign-out version: the report task was never sent
    (the broker was down at sign-out) or its message was lost. Nothing signed is
    left without its PDF: the sweeper sends these again (the task is idempotent).

    Reports are the reports app's rows; the core counts them through the
    ``Case.reports`` reverse relation and never imports that app."""
    made = Count("reports", filter=Q(reports__version=F("sign_out_version")) & ~Q(reports__status="draft"))
    missing = (
        Case.objects.filter(status=CaseStatus.SIGNED_OUT, sign_out_version__gte=1, signed_out_at__lt=signed_before)
        .annotate(made=made)
        .filter(made=0)
        .order_by("pk")
    )
    return [(case.pk, case.signed_out_by_id, case.sign_out_version) for case in missing.only("pk", "signed_out_by", "sign_out_version")]
