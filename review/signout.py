"""Signing out a case, and amending a signed-out case.

A sign-out is the pathologist's signature on the labels of every image, so it
is refused unless:

* the signer is a pathologist or lab admin of the case's lab;
* the case is awaiting review (nothing still processing);
* every analysed image has a review, and the "Unidentified" bucket (low
  confidence and not labelled by a person) is empty;
* the signer has a TOTP authenticator (allauth MFA) and has passed it in the
  current session: allauth records each authentication step in the session
  (``get_authentication_records``); a record with method ``"mfa"`` is proof.

Signing writes a ``SignOut`` row (version n, the labels and summary at that
moment) and never edits an earlier one. An amendment reopens the case for
review; the next sign-out is version n+1, and the earlier version stays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.db import transaction
from django.utils import timezone

from diagnostics import access, audit
from diagnostics.models import AuditEvent, Case, CaseStatus
from diagnostics.services.case_record import (
    build_case_record,
    case_figures,
    person_name,
)
from marrowfind import dispatch
from review import services as review_service
from review.models import SignOut

log = logging.getLogger(__name__)


class SignOutRefused(Exception):
    def __init__(self, checks: list[SignOutCheck]):
        self.checks = checks
        super().__init__("; ".join(c.message for c in checks if not c.ok))


class AmendmentError(Exception):
    """An amendment that cannot be opened; the message is shown to the user."""


@dataclass(frozen=True)
class SignOutCheck:
    code: str
    ok: bool
    message: str


def mfa_passed_at(request, user) -> datetime | None:
    """When ``user`` last passed a second factor in this session, from
    allauth's own authentication records (None if never)."""
    times = [r.get("at") for r in get_authentication_records(request, user) if r.get("method") == "mfa"]
    times = [t for t in times if isinstance(t, (int, float))]
    return datetime.fromtimestamp(max(times), tz=UTC) if times else None


def has_totp(user) -> bool:
    return is_mfa_enabled(user, [Authenticator.Type.TOTP])


def sign_out_checks(case: Case, user, request, items: list | None = None) -> list[SignOutCheck]:
    """Every condition of a sign-out, each with a message the page shows."""
    if items is None:
        items = review_service.review_items(case)
    progress = review_service.review_progress(items)
    checks = [
        SignOutCheck(
            "role",
            access.can_review(user, case.lab),
            "You are a pathologist or lab admin of this lab."
            if access.can_review(user, case.lab)
            else "Only a pathologist or lab admin of this lab can sign out.",
        ),
        SignOutCheck(
            "status",
            case.status == CaseStatus.AWAITING_REVIEW,
            "The case is ready for sign-out."
            if case.status == CaseStatus.AWAITING_REVIEW
            else f"The case is {case.get_status_display().lower()}, not awaiting review.",
        ),
        SignOutCheck(
            "analysed",
            progress.analysed > 0,
            f"{progress.analysed} image(s) analysed." if progress.analysed else "No image has been analysed.",
        ),
        SignOutCheck(
            "reviewed",
            progress.analysed > 0 and progress.unreviewed == 0,
            "Every image is reviewed."
            if progress.unreviewed == 0
            else f"{progress.unreviewed} image(s) still need review.",
        ),
        SignOutCheck(
            "unidentified",
            progress.unidentified == 0,
            "Unidentified is empty."
            if progress.unidentified == 0
            else f"{progress.unidentified} low-confidence image(s) are still Unidentified.",
        ),
    ]
    totp = has_totp(user)
    checks.append(
        SignOutCheck(
            "mfa_enabled",
            totp,
            "Two-factor authentication (TOTP) is active on your account."
            if totp
            else "Activate two-factor authentication (an authenticator app) before signing out.",
        )
    )
    passed = mfa_passed_at(request, user) if totp else None
    checks.append(
        SignOutCheck(
            "mfa_passed",
            passed is not None,
            f"You passed two-factor authentication at {timezone.localtime(passed):%H:%M}."
            if passed
            else "Enter a code from your authenticator app to confirm it is you.",
        )
    )
    return checks


def can_sign_out(checks: list[SignOutCheck]) -> bool:
    return all(c.ok for c in checks)


def _pending_amendment_reason(case: Case) -> str:
    event = (
        AuditEvent.objects.filter(case=case, verb=AuditEvent.Verb.AMENDED, detail__stage="opened")
        .order_by("-created_at", "-id")
        .first()
    )
    return (event.detail or {}).get("reason", "") if event else ""


def sign_out_case(case: Case, user, request) -> SignOut:
    """Sign ``case`` out as ``user``, or raise ``SignOutRefused`` with the
    failing checks. The checks run again under the case row lock, which
    ``record_review`` also takes."""
    with transaction.atomic():
        locked = Case.objects.select_for_update().select_related("lab").get(pk=case.pk)
        items = review_service.review_items(locked)
        checks = sign_out_checks(locked, user, request, items)
        if not can_sign_out(checks):
            raise SignOutRefused(checks)
        version = locked.sign_out_version + 1
        now = timezone.now()
        labels = {
            str(item.image.pk): {
                "position": item.image.position,
                "filename": item.image.original_filename,
                "label": item.current_label,
                "exclusion": item.exclusion,
                "ai_label": item.ai_label,
                "confidence": round(float(item.analysis.confidence), 4),
                "low_confidence": item.analysis.low_confidence,
                "review_id": item.latest_review.pk,
                "reviewer": person_name(item.latest_review.reviewer),
                "model_version": item.analysis.model_version.sha256,
            }
            for item in items
            if item.analysis is not None
        }
        progress = review_service.review_progress(items)
        record = build_case_record(locked)
        # Once cells are reviewed, the blast % and the WHO flag are the reviewed differential's
        # (record.blast_source); the class of every cell, as signed, goes with them.
        summary = case_figures(locked, record)
        summary["cell_labels"] = {str(cell.cell_id): cell.label or "" for cell in record.cells}
        summary["reviewed_distribution"] = progress.distribution
        summary["failed_images"] = progress.failed
        amendment_reason = _pending_amendment_reason(locked) if version > 1 else ""
        sign_out = SignOut.objects.create(
            case=locked,
            version=version,
            signed_by=user,
            signed_at=now,
            labels=labels,
            summary=summary,
            amendment_reason=amendment_reason,
            mfa_authenticated_at=mfa_passed_at(request, user),
        )
        Case.objects.filter(pk=locked.pk).update(
            status=CaseStatus.SIGNED_OUT,
            signed_out_by=user,
            signed_out_at=now,
            sign_out_version=version,
            updated_at=now,
        )
        models_used = review_service.model_versions_used(items)
        audit.record(
            AuditEvent.Verb.SIGNED_OUT if version == 1 else AuditEvent.Verb.AMENDED,
            actor=user,
            case=locked,
            obj=sign_out,
            model_version=models_used[0] if len(models_used) == 1 else None,
            stage="signed",
            version=version,
            images=len(labels),
            overridden=progress.overridden,
            excluded=progress.excluded,
            model_versions=[m.sha256 for m in models_used],
            amendment_reason=amendment_reason,
        )
        case_id, user_id = locked.pk, user.pk
        transaction.on_commit(lambda: queue_final_report_for(case_id, user_id))
    case.refresh_from_db()
    return sign_out


def queue_final_report_for(case_id: int, user_id: int) -> None:
    """Send the final report of the case's current sign-out version (by task
    name, through ``marrowfind.dispatch``). A broker that is down is logged and
    never undoes a signature: the periodic sweeper sends the report later
    (``diagnostics.tasks.requeue_stuck_images``)."""
    version = Case.objects.values_list("sign_out_version", flat=True).get(pk=case_id)
    dispatch.render_final_report(case_id, user_id, version)


def open_amendment(case: Case, user, reason: str) -> Case:
    """Reopen a signed-out case for review. Its signed versions stay as they
    are; the next sign-out becomes version n+1 and carries ``reason``."""
    reason = reason.strip()
    if not reason:
        raise AmendmentError("Give the reason for the amendment.")
    with transaction.atomic():
        locked = Case.objects.select_for_update().select_related("lab").get(pk=case.pk)
        if not access.can_review(user, locked.lab):
            raise AmendmentError("Only a pathologist or lab admin of this lab can amend a case.")
        if locked.status != CaseStatus.SIGNED_OUT:
            raise AmendmentError("Only a signed-out case can be amended.")
        Case.objects.filter(pk=locked.pk).update(status=CaseStatus.AWAITING_REVIEW, updated_at=timezone.now())
        audit.record(
            AuditEvent.Verb.AMENDED,
            actor=user,
            case=locked,
            obj=locked,
            stage="opened",
            from_version=locked.sign_out_version,
            reason=reason,
        )
    case.refresh_from_db()
    return case


def sign_out_history(case: Case):
    return SignOut.objects.filter(case=case).select_related("signed_by").order_by("-version")
