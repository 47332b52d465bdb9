"""Signing out a case, and amending a signed-out case.

A sign-out is the pathologist's signature on the labels of every image, so it
is refused unless:

* the signer is a pathologist or lab admin of the case's lab;
* the case is awaiting review (nothing still processing);
* every analysed image has a review, and the "Unidentified" bucket (low
  confidence and not labelled by a person) is empty;
* the signer has a TOTP authenticator (allauth MFA) and enters a fresh code
  with the signature itself (step-up, ``review.stepup``): the code used to log
  in does not count, and a code counts once;
* the signature carries an interpretation (:class:`Interpretation`: no
  evidence of ALL / consistent with B-ALL, with its subtype / suspicious,
  with the further studies advised / insufficient for diagnosis) and may
  carry a free-text comment.

Signing writes a ``SignOut`` row (version n: the labels with the reviewers'
comments, the figures, the interpretation, the signer's name and credentials
at that moment) and never edits an earlier one. An amendment (also behind a
fresh code) reopens the case for review; the next sign-out is version n+1,
the earlier version stays, and :func:`amendment_changes` says what changed.
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

from accounts.services import credentials_of
from diagnostics import access, audit
from diagnostics.models import AuditEvent, Case, CaseStatus
from diagnostics.services.case_record import (
    SignedResult,
    build_case_record,
    case_figures,
    person_name,
    signed_result,
)
from marrowfind import dispatch, textlimits
from review import services as review_service
from review.models import BAllSubtype, Diagnosis, SignOut
from review.stepup import StepUpRefused, verify_step_up  # noqa: F401 (StepUpRefused: raised through here to the views)

log = logging.getLogger(__name__)


class SignOutRefused(Exception):
    def __init__(self, checks: list[SignOutCheck]):
        self.checks = checks
        super().__init__("; ".join(c.message for c in checks if not c.ok))


class AmendmentError(Exception):
    """An amendment that cannot be opened; the message is shown to the user."""


class InterpretationError(ValueError):
    """An interpretation that cannot be signed (a B-ALL without its subtype...); the message is shown."""


@dataclass(frozen=True)
class Interpretation:
    """What the pathologist concludes, signed with the labels."""

    diagnosis: str  # a Diagnosis value
    subtype: str = ""  # a BAllSubtype value, only with Diagnosis.B_ALL
    further_studies: str = ""  # only with Diagnosis.SUSPICIOUS, and then required
    comment: str = ""

    def cleaned(self) -> Interpretation:
        """The same interpretation, stripped and checked; raises :class:`InterpretationError`."""
        diagnosis, subtype = (self.diagnosis or "").strip(), (self.subtype or "").strip()
        studies, comment = (self.further_studies or "").strip(), (self.comment or "").strip()
        if diagnosis not in Diagnosis.values:
            raise InterpretationError("Choose the interpretation to sign.")
        if diagnosis == Diagnosis.B_ALL:
            if subtype not in BAllSubtype.values:
                raise InterpretationError("Choose the B-ALL subtype (or \u201csubtype not specified\u201d).")
        elif subtype:
            raise InterpretationError("A subtype goes only with \u201cconsistent with B-ALL\u201d.")
        if diagnosis == Diagnosis.SUSPICIOUS:
            if not studies:
                raise InterpretationError("Name the further studies advised (for example flow cytometry).")
        else:
            studies = ""
        for limit, value in ((textlimits.further_studies, studies), (textlimits.diagnosis_comment, comment)):
            try:
                limit(value)
            except Exception as exc:  # django ValidationError: one readable sentence
                raise InterpretationError(" ".join(getattr(exc, "messages", [str(exc)]))) from None
        return Interpretation(diagnosis, subtype, studies, comment)


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


def sign_out_checks(case: Case, user, request=None, items: list | None = None) -> list[SignOutCheck]:
    """Every condition of a sign-out, each with a message the page shows. The
    fresh TOTP code is not a check: it is entered with the signature."""
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


def sign_out_case(case: Case, user, request, *, interpretation: Interpretation, totp_code: str) -> SignOut:
    """Sign ``case`` out as ``user`` with ``interpretation``, behind a fresh TOTP
    code. Raises ``SignOutRefused`` (failing checks), ``InterpretationError`` or
    ``StepUpRefused``; the code is only spent once the checks pass. The checks
    run again under the case row lock, which ``record_review`` also takes."""
    checks = sign_out_checks(case, user, request)
    if not can_sign_out(checks):
        raise SignOutRefused(checks)
    interpretation = interpretation.cleaned()
    stepped_up_at = verify_step_up(request, user, totp_code, action="sign_out", case=case)
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
                "comment": item.latest_review.comment,
                "model_version": item.analysis.model_version.sha256,
            }
            for item in items
            if item.analysis is not None
        }
        progress = review_service.review_progress(items)
        # The figures of the reviews as they stand now (sign_out=None): during an amendment the
        # earlier version's snapshot must not win over the reviews made for this one.
        record = build_case_record(locked, sign_out=None)
        # Once cells are reviewed, the blast % and the WHO flag are the reviewed differential's
        # (record.blast_source); the class of every cell, as signed, goes with them.
        summary = case_figures(locked, record)
        summary.pop("signed_result", None)
        summary.pop("result_source", None)
        summary["signed"], summary["signer"] = True, person_name(user)
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
            mfa_authenticated_at=stepped_up_at,
            diagnosis=interpretation.diagnosis,
            diagnosis_subtype=interpretation.subtype,
            further_studies=interpretation.further_studies,
            diagnosis_comment=interpretation.comment,
            signer_name=person_name(user) or "",
            signer_credentials=credentials_of(user),
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
            diagnosis=interpretation.diagnosis,
            diagnosis_subtype=interpretation.subtype,
            step_up_at=stepped_up_at.isoformat(),
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


def open_amendment(case: Case, user, reason: str, *, request, totp_code: str) -> Case:
    """Reopen a signed-out case for review, behind a fresh TOTP code. Its signed
    versions stay as they are; the next sign-out becomes version n+1 and carries
    ``reason``. Raises ``AmendmentError`` or ``StepUpRefused``."""
    reason = reason.strip()
    if not reason:
        raise AmendmentError("Give the reason for the amendment.")
    if not access.can_review(user, case.lab):
        raise AmendmentError("Only a pathologist or lab admin of this lab can amend a case.")
    if case.status != CaseStatus.SIGNED_OUT:
        raise AmendmentError("Only a signed-out case can be amended.")
    if not has_totp(user):
        raise AmendmentError("Activate two-factor authentication (an authenticator app) before amending.")
    stepped_up_at = verify_step_up(request, user, totp_code, action="amend", case=case)
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
            step_up_at=stepped_up_at.isoformat(),
        )
    case.refresh_from_db()
    return case


def sign_out_history(case: Case):
    return SignOut.objects.filter(case=case).select_related("signed_by").order_by("-version")


def previous_interpretation(case: Case) -> Interpretation | None:
    """The interpretation of the newest signed version (the amendment form starts from it)."""
    last = SignOut.objects.filter(case=case).order_by("-version").first()
    if last is None or not last.diagnosis:
        return None
    return Interpretation(last.diagnosis, last.diagnosis_subtype, last.further_studies, last.diagnosis_comment)


# --- what an amendment changed ----------------------------------------------------


@dataclass(frozen=True)
class Change:
    what: str  # "Diagnosis", "Image #3 (smear-3.png)", "Blast %", "Images: Pro-B ALL"...
    before: str
    after: str


def _percent_text(value: float | None) -> str:
    return "not determined" if value is None else f"{value:.1f}%"


def compare_versions(before: SignedResult, after: SignedResult, *, label_name=lambda name: name) -> list[Change]:
    """What differs between two signed versions: the interpretation, each image's
    label and comment, and the figures (blast %, WHO flag, images per label)."""
    changes: list[Change] = []
    if before.diagnosis_text != after.diagnosis_text:
        changes.append(Change("Diagnosis", before.diagnosis_text or "none recorded", after.diagnosis_text or "none recorded"))
    if before.comment != after.comment:
        changes.append(Change("Diagnostic comment", before.comment or "none", after.comment or "none"))
    keys = sorted(set(before.labels) | set(after.labels),
                  key=lambda k: (after.labels.get(k) or before.labels.get(k) or {}).get("position", 0))
    for key in keys:
        old, new = before.labels.get(key) or {}, after.labels.get(key) or {}
        row = new or old
        where = f"Image #{row.get('position', '?')}" + (f" ({row['filename']})" if row.get("filename") else "")
        if old.get("label") != new.get("label"):
            changes.append(Change(f"{where}: label", label_name(old["label"]) if old.get("label") else "not signed",
                                  label_name(new["label"]) if new.get("label") else "not signed"))
        if (old.get("comment") or "") != (new.get("comment") or ""):
            changes.append(Change(f"{where}: comment", old.get("comment") or "none", new.get("comment") or "none"))
    if before.blast_percent != after.blast_percent:
        changes.append(Change("Blast %", _percent_text(before.blast_percent), _percent_text(after.blast_percent)))
    if before.who_flag != after.who_flag:
        changes.append(Change("WHO flag", "flagged" if before.who_flag else "not flagged",
                              "flagged" if after.who_flag else "not flagged"))
    old_counts, new_counts = before.per_class, after.per_class
    for name in [*new_counts, *(n for n in old_counts if n not in new_counts)]:
        if old_counts.get(name, 0) != new_counts.get(name, 0):
            changes.append(Change(f"Images: {label_name(name)}", str(old_counts.get(name, 0)), str(new_counts.get(name, 0))))
    return changes


def amendment_changes(case: Case, version: int, *, label_name=lambda name: name) -> list[Change]:
    """What version ``version`` changed against version ``version - 1`` ([] for version 1)."""
    if version < 2:
        return []
    rows = {row.version: row for row in
            SignOut.objects.filter(case=case, version__in=[version - 1, version]).select_related("signed_by")}
    if version - 1 not in rows or version not in rows:
        return []
    return compare_versions(signed_result(rows[version - 1]), signed_result(rows[version]), label_name=label_name)
