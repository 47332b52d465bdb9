"""Checking a report: the code in its QR, or the SHA-256 of an uploaded PDF.

What the verify page states of an authentic signed report is what the holder
needs to check the paper against: accession number, version and status, when
and by whom it was signed, the diagnosis category, the blast % and the
differential, all read from the signed version (``review.SignOut``) the
report was made from, the very figures its PDF prints. Never a patient
identifier, and never the free-text comments (they may name the patient)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from enum import Enum

from django.db.models import QuerySet

from diagnostics.services.case_record import SignedResult, signed_result
from ml.labels import display_name
from reports.models import Report, ReportStatus
from reports.rendering import CODE_LENGTH
from review.models import SignOut

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- verification


class VerifyState(str, Enum):
    CURRENT = "current"  # authentic, the final report in force
    SUPERSEDED = "superseded"  # authentic, but a later version replaced it
    DRAFT = "draft"  # made by this site, but a draft: never a valid report
    UNKNOWN = "unknown"  # not a report this site issued (or altered)


@dataclass(frozen=True)
class Verification:
    state: VerifyState
    report: Report | None = None
    newer: Report | None = None  # the report in force when this one is superseded

    @property
    def authentic(self) -> bool:
        return self.state in (VerifyState.CURRENT, VerifyState.SUPERSEDED)


@dataclass(frozen=True)
class VerifiedFigures:
    """The signed result of an authentic report, as the verify page shows it."""

    signed: SignedResult
    per_class: list[tuple[str, int]]  # (display name, images) per signed label
    cells: list[tuple[str, int | None]]  # (what, count): WBC, RBC, platelets, blasts
    differential: list[tuple[str, int]]  # (cell type, cells), when the signed figures carry one

    @property
    def blast_percent(self) -> float | None:
        return self.signed.blast_percent


def verified_figures(verification: Verification) -> VerifiedFigures | None:
    """The signed figures behind an authentic report (None for a draft or an unknown code)."""
    report = verification.report
    if not verification.authentic or report is None:
        return None
    sign_out = SignOut.objects.filter(case_id=report.case_id, version=report.version).select_related("signed_by").first()
    signed = signed_result(sign_out)
    if signed is None:
        return None
    figures = signed.figures
    return VerifiedFigures(
        signed=signed,
        per_class=[(display_name(name), n) for name, n in signed.per_class.items()],
        cells=[("White cells", figures.get("wbc")), ("Red cells", figures.get("rbc")),
               ("Platelets", figures.get("platelet")), ("Blasts", signed.blasts)],
        differential=[(display_name(name), n) for name, n in signed.differential.items() if n],
    )


def _verdict(report: Report | None) -> Verification:
    if report is None:
        return Verification(VerifyState.UNKNOWN)
    if report.status == ReportStatus.DRAFT:
        return Verification(VerifyState.DRAFT, report)
    if report.status == ReportStatus.SUPERSEDED or report.superseded_by_id:
        newer = report.superseded_by
        while newer is not None and newer.superseded_by_id:  # follow to the one in force
            newer = newer.superseded_by
        return Verification(VerifyState.SUPERSEDED, report, newer)
    return Verification(VerifyState.CURRENT, report)


def _lookup() -> QuerySet[Report]:
    return Report.objects.defer("pdf").select_related("case", "case__lab", "signed_by", "superseded_by")


def check_code(report_id: str, code: str) -> Verification:
    """The QR code's claim: does report ``report_id`` exist with this content code?"""
    try:
        report = _lookup().get(pk=uuid.UUID(str(report_id)))
    except (Report.DoesNotExist, ValueError):
        return Verification(VerifyState.UNKNOWN)
    if not report.content_sha256 or not hmac.compare_digest(
        report.content_sha256[:CODE_LENGTH], str(code).lower()[:64]
    ):
        return Verification(VerifyState.UNKNOWN)
    return _verdict(report)


def check_pdf_bytes(data: bytes) -> Verification:
    """An uploaded file is authentic only if its SHA-256 is that of a report we issued."""
    digest = hashlib.sha256(data).hexdigest()
    return _verdict(_lookup().filter(sha256=digest).first())


def check_pdf_file(chunks) -> Verification:
    """Like :func:`check_pdf_bytes`, hashing an uploaded file chunk by chunk."""
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return _verdict(_lookup().filter(sha256=hasher.hexdigest()).first())
