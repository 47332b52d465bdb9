"""Pathologist review of a case: the per-image state, recording a review, the
worklist and history queries.

The review model follows digital-morphology systems such as CellaVision: the
AI pre-classifies each image, the pathologist confirms or reclassifies it, and
images the model is unsure about wait in an "Unidentified" bucket until a
person has labelled them. Reviews are append-only: the newest review of an
image is its current label and every earlier one stays for the audit trail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from diagnostics import access, audit
from diagnostics.models import (
    SCOPE_EXCLUSIONS,
    Analysis,
    AuditEvent,
    Case,
    CaseStatus,
    ExclusionReason,
    ImageStatus,
    SlideImage,
)
from review.models import Review, SignOut

UNIDENTIFIED = "Unidentified"
EXCLUDED = "Excluded"


class ReviewError(Exception):
    """A review that cannot be recorded; the message is shown to the user."""


@dataclass
class ImageReviewItem:
    """What the review page needs to know about one image."""

    image: SlideImage
    analysis: Analysis | None
    reviews: list[Review] = field(default_factory=list)  # newest first

    @property
    def latest_review(self) -> Review | None:
        return self.reviews[0] if self.reviews else None

    @property
    def reviewed(self) -> bool:
        return bool(self.reviews)

    @property
    def needs_review(self) -> bool:
        """Analysed but nobody has confirmed or reclassified it yet."""
        return self.analysis is not None and not self.reviews

    @property
    def unidentified(self) -> bool:
        """Low confidence and not yet labelled by a person: sign-out waits for it."""
        return self.analysis is not None and self.analysis.low_confidence and not self.reviews

    @property
    def ai_label(self) -> str | None:
        return self.analysis.label if self.analysis else None

    @property
    def excluded(self) -> bool:
        """The newest review took the image out of the case's figures (not assessable)."""
        return bool(self.reviews) and self.reviews[0].excluded

    @property
    def exclusion(self) -> str:
        return self.reviews[0].exclusion if self.excluded else ""

    @property
    def exclusion_label(self) -> str:
        return ExclusionReason(self.exclusion).label if self.excluded else ""

    @property
    def suggested_exclusion(self) -> str:
        """The exclusion the scope check suggests for an image nobody has decided on yet
        (pre-filled in the review form); "" when it is in scope or already reviewed."""
        if self.analysis is None or self.analysis.in_scope or self.reviews:
            return ""
        return SCOPE_EXCLUSIONS.get(self.analysis.scope_code, "")

    @property
    def current_label(self) -> str | None:
        """The newest review's label, else the AI's; None for an excluded image."""
        if self.reviews:
            return self.reviews[0].label or None
        return self.ai_label

    @property
    def overridden(self) -> bool:
        return (
            bool(self.reviews) and not self.excluded and self.analysis is not None
            and self.reviews[0].label != self.analysis.label
        )

    @property
    def group(self) -> str:
        """The gallery bucket: a class name, "Unidentified", "Excluded", or a processing state."""
        if self.analysis is None:
            return "Failed" if self.image.status == ImageStatus.FAILED else "Pending"
        if self.excluded:
            return EXCLUDED
        return UNIDENTIFIED if self.unidentified else (self.current_label or UNIDENTIFIED)

    @property
    def class_names(self) -> list[str]:
        return list(self.analysis.model_version.class_names) if self.analysis else []

    @property
    def sorted_probabilities(self) -> list[tuple[str, float]]:
        """(class, probability) in the model's class order, for the bar chart."""
        if not self.analysis:
            return []
        probs = self.analysis.probabilities or {}
        return [(name, float(probs.get(name, 0.0))) for name in self.class_names]


def latest_analysis(image: SlideImage) -> Analysis | None:
    return image.analyses.select_related("model_version").order_by("-created_at", "-id").first()


def review_items(case: Case) -> list[ImageReviewItem]:
    """Every image of ``case`` with its newest analysis and its reviews, in
    upload order (three queries whatever the number of images)."""
    images = (
        SlideImage.objects.filter(case=case)
        .order_by("position")
        .prefetch_related(
            Prefetch(
                "analyses",
                queryset=Analysis.objects.select_related("model_version", "cell_model_version").order_by(
                    "-created_at", "-id"
                ),
            ),
            Prefetch("reviews", queryset=Review.objects.select_related("reviewer").order_by("-created_at", "-id")),
        )
    )
    items = []
    for image in images:
        analyses = list(image.analyses.all())
        items.append(ImageReviewItem(image=image, analysis=analyses[0] if analyses else None, reviews=list(image.reviews.all())))
    return items


def group_items(items: list[ImageReviewItem]) -> list[tuple[str, list[ImageReviewItem]]]:
    """Gallery buckets: Unidentified first (it blocks sign-out), then the
    classes in model order, then failed and pending images."""
    class_order: list[str] = []
    for item in items:
        for name in item.class_names:
            if name not in class_order:
                class_order.append(name)
    order = [UNIDENTIFIED, *class_order]
    buckets: dict[str, list[ImageReviewItem]] = {}
    for item in items:
        buckets.setdefault(item.group, []).append(item)
    extra = [name for name in buckets if name not in order and name not in (EXCLUDED, "Failed", "Pending")]
    names = [*order, *extra, EXCLUDED, "Failed", "Pending"]
    return [(name, buckets[name]) for name in names if name in buckets]


@dataclass(frozen=True)
class ReviewProgress:
    images: int
    analysed: int
    reviewed: int
    unidentified: int
    overridden: int
    failed: int
    pending: int
    distribution: dict[str, int]  # current label (or "Excluded") -> images, over analysed images
    excluded: int = 0

    @property
    def unreviewed(self) -> int:
        return self.analysed - self.reviewed


def review_progress(items: list[ImageReviewItem]) -> ReviewProgress:
    counts: dict[str, int] = {}
    for item in items:
        if item.analysis is not None:
            key = item.group
            counts[key] = counts.get(key, 0) + 1
    # Unidentified first, then the model's class order (as in the gallery).
    order = [name for name, _ in group_items(items)]
    distribution = {name: counts[name] for name in sorted(counts, key=lambda n: order.index(n) if n in order else len(order))}
    return ReviewProgress(
        images=len(items),
        analysed=sum(1 for i in items if i.analysis is not None),
        reviewed=sum(1 for i in items if i.analysis is not None and i.reviewed),
        unidentified=sum(1 for i in items if i.unidentified),
        overridden=sum(1 for i in items if i.overridden),
        failed=sum(1 for i in items if i.analysis is None and i.image.status == ImageStatus.FAILED),
        pending=sum(1 for i in items if i.analysis is None and i.image.status != ImageStatus.FAILED),
        distribution=distribution,
        excluded=sum(1 for i in items if i.analysis is not None and i.excluded),
    )


def model_versions_used(items: list[ImageReviewItem]) -> list:
    seen: dict[int, object] = {}
    for item in items:
        if item.analysis is not None:
            seen.setdefault(item.analysis.model_version_id, item.analysis.model_version)
    return list(seen.values())


# --- recording a review -------------------------------------------------------


def new_submission_token() -> uuid.UUID:
    """Rendered into each review form; a second post of the same form carries
    the same token and is recorded once (Review.submission_token is unique)."""
    return uuid.uuid4()


@dataclass(frozen=True)
class ReviewOutcome:
    review: Review
    created: bool  # False when the token had been recorded already (double submit)


def record_review(
    *,
    image: SlideImage,
    reviewer,
    label: str = "",
    submission_token: uuid.UUID,
    comment: str = "",
    exclusion: str = "",
) -> ReviewOutcome:
    """Confirm or reclassify one image, or exclude it as not assessable
    (``exclusion``, an :class:`~diagnostics.models.ExclusionReason`; the label is then
    ignored): an excluded image leaves the case's figures and the report lists it.

    Takes the case row lock, which sign-out also takes, so that a review
    cannot slip in between the sign-out checks and the signature. A repeated
    ``submission_token`` returns the review recorded the first time."""
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=image.case_id)
        existing = Review.objects.filter(submission_token=submission_token).first()
        if existing is not None:
            if existing.image_id != image.pk or existing.reviewer_id != reviewer.pk:
                raise ReviewError("This form was already used for another image; reload the page.")
            return ReviewOutcome(existing, created=False)
        if not access.can_review(reviewer, case.lab):
            raise ReviewError("Only pathologists and lab admins can review images.")
        if case.status == CaseStatus.SIGNED_OUT:
            raise ReviewError(f"Case {case.accession_number} is signed out; open an amendment to change a label.")
        if case.status != CaseStatus.AWAITING_REVIEW:
            raise ReviewError(f"Case {case.accession_number} is not ready for review ({case.get_status_display()}).")
        analysis = latest_analysis(image)
        if analysis is None:
            raise ReviewError(f"Image #{image.position} has no analysis to review.")
        if exclusion:
            if exclusion not in ExclusionReason.values:
                raise ReviewError(f"{exclusion!r} is not a reason for excluding an image.")
            label = ""
        elif label not in analysis.model_version.class_names:
            raise ReviewError(f"{label!r} is not a class of model {analysis.model_version.name}.")
        previous = image.reviews.order_by("-created_at", "-id").first()
        previous_label = (previous.label or EXCLUDED) if previous else analysis.label
        try:
            with transaction.atomic():
                review = Review.objects.create(
                    image=image,
                    analysis=analysis,
                    reviewer=reviewer,
                    label=label,
                    exclusion=exclusion,
                    agrees_with_ai=(not exclusion and label == analysis.label),
                    comment=comment.strip(),
                    submission_token=submission_token,
                )
        except IntegrityError:
            # The same token committed by a concurrent request after our check.
            return ReviewOutcome(Review.objects.get(submission_token=submission_token), created=False)
        if exclusion:
            verb = AuditEvent.Verb.EXCLUDED
        else:
            verb = AuditEvent.Verb.REVIEWED if label == analysis.label else AuditEvent.Verb.RELABELLED
        audit.record(
            verb,
            actor=reviewer,
            case=case,
            obj=review,
            model_version=analysis.model_version,
            image=image.position,
            image_id=image.pk,
            ai_label=analysis.label,
            previous_label=previous_label,
            label=label or EXCLUDED,
            exclusion=exclusion,
            exclusion_reason=ExclusionReason(exclusion).label if exclusion else "",
            scope_code=analysis.scope_code,
            confidence=round(float(analysis.confidence), 4),
            low_confidence=analysis.low_confidence,
            comment=review.comment,
            amendment=case.sign_out_version > 0,
        )
    return ReviewOutcome(review, created=True)


# --- assignment -------------------------------------------------------------


def assign_case(case: Case, *, assignee, actor) -> Case:
    """Put a case on a pathologist's "assigned to me" list (or clear it with
    ``assignee=None``). Only reviewers of the case's lab may be assignees."""
    if not access.can_review(actor, case.lab):
        raise ReviewError("Only pathologists and lab admins can assign cases.")
    if assignee is not None and not access.can_review(assignee, case.lab):
        raise ReviewError("Cases can only be assigned to pathologists or lab admins of the lab.")
    with transaction.atomic():
        Case.objects.filter(pk=case.pk).update(assigned_to=assignee, updated_at=timezone.now())
        audit.record(
            AuditEvent.Verb.OTHER,
            actor=actor,
            case=case,
            obj=case,
            action="assigned" if assignee else "unassigned",
            assignee=(assignee.email or assignee.username) if assignee else None,
        )
    case.refresh_from_db()
    return case


# --- worklist and history ---------------------------------------------------


def _per_case_count(queryset: QuerySet) -> Coalesce:
    """Number of distinct images per case from an image queryset correlated on ``case``."""
    return Coalesce(
        Subquery(
            queryset.order_by().values("case").annotate(n=Count("pk", distinct=True)).values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def _unreviewed_images() -> QuerySet:
    return SlideImage.objects.filter(case=OuterRef("pk"), analyses__isnull=False).filter(
        ~Exists(Review.objects.filter(image=OuterRef("pk")))
    )


def annotated_cases(user) -> QuerySet[Case]:
    """The user's lab cases with the counts a worklist row shows."""
    unidentified = SlideImage.objects.filter(case=OuterRef("pk"), analyses__low_confidence=True).filter(
        ~Exists(Review.objects.filter(image=OuterRef("pk")))
    )
    return (
        access.cases_for(user)
        .select_related("lab", "assigned_to", "signed_out_by", "created_by")
        # The newest signed version of each case (its result, once signed): one query per page.
        .prefetch_related(Prefetch(
            "sign_outs",
            queryset=SignOut.objects.filter(version=F("case__sign_out_version")).select_related("signed_by"),
            to_attr="newest_sign_outs",
        ))
        .annotate(
            n_images=_per_case_count(SlideImage.objects.filter(case=OuterRef("pk"))),
            n_unreviewed=_per_case_count(_unreviewed_images()),
            n_unidentified=_per_case_count(unidentified),
        )
    )


@dataclass
class WorklistQuery:
    """Parsed worklist filters (review.forms.WorklistFilterForm)."""

    scope: str = "awaiting"  # "awaiting" | "mine" | "all"
    status: str = ""
    specimen: str = ""
    flag: str = ""  # "" | "who" | "low_confidence"
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""


def worklist_cases(user, query: WorklistQuery) -> QuerySet[Case]:
    cases = annotated_cases(user)
    if query.scope == "awaiting":
        cases = cases.filter(status=CaseStatus.AWAITING_REVIEW)
    elif query.scope == "mine":
        cases = cases.filter(assigned_to=user).exclude(status=CaseStatus.SIGNED_OUT)
    if query.status:
        cases = cases.filter(status=query.status)
    if query.specimen:
        cases = cases.filter(specimen=query.specimen)
    if query.flag == "who":
        cases = cases.filter(who_flag=True)
    elif query.flag == "low_confidence":
        cases = cases.filter(n_unidentified__gt=0)
    tz = timezone.get_current_timezone()
    if query.date_from:
        cases = cases.filter(created_at__gte=datetime.combine(query.date_from, time.min, tzinfo=tz))
    if query.date_to:
        cases = cases.filter(created_at__lt=datetime.combine(query.date_to + timedelta(days=1), time.min, tzinfo=tz))
    if query.q:
        cases = cases.filter(accession_number__icontains=query.q.strip())
    if query.scope in ("awaiting", "mine"):
        # The oldest waiting case first, WHO-flagged cases ahead of the rest.
        return cases.order_by("-who_flag", "created_at", "pk")
    return cases.order_by("-created_at", "-pk")


def history_cases(user, q: str = "") -> QuerySet[Case]:
    cases = annotated_cases(user)
    if q.strip():
        term = q.strip()
        cases = cases.filter(Q(accession_number__icontains=term) | Q(patient_pseudonym__icontains=term))
    return cases.order_by("-created_at", "-pk")


def worklist_counts(user) -> dict[str, int]:
    cases = access.cases_for(user)
    return {
        "awaiting": cases.filter(status=CaseStatus.AWAITING_REVIEW).count(),
        "mine": cases.filter(assigned_to=user).exclude(status=CaseStatus.SIGNED_OUT).count(),
        "all": cases.count(),
    }


def audit_trail(case: Case) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(case=case).select_related("actor", "model_version").order_by("-created_at", "-id")


def _percent(value) -> str:
    return f"{100 * float(value):.0f}%" if isinstance(value, (int, float)) else ""


def describe_event(event: AuditEvent) -> str:
    """One readable line for an audit event (the page shows it next to the
    verb, the actor and the model version)."""
    d = event.detail or {}
    verb = AuditEvent.Verb
    position = d.get("image") or d.get("position")
    where = f"image #{position}" if position else ""
    if event.verb == verb.EXCLUDED:
        before = f"{d['previous_label']} → " if d.get("previous_label") else ""
        text = f"{where}: {before}excluded, not assessable ({d.get('exclusion_reason', '')})"
        if d.get("comment"):
            text += f" “{d['comment']}”"
        return text
    if event.verb in (verb.REVIEWED, verb.RELABELLED):
        text = f"{where}: "
        if d.get("previous_label") and d.get("previous_label") != d.get("label"):
            text += f"{d['previous_label']} → "
        text += f"{d.get('label', '')} (AI {d.get('ai_label', '?')} {_percent(d.get('confidence'))}"
        text += ", low confidence)" if d.get("low_confidence") else ")"
        if d.get("comment"):
            text += f" “{d['comment']}”"
        return text
    if event.verb == verb.CELL_RECLASSIFIED:
        ai = d.get("ai_label") or "none"
        conf = f" {_percent(d.get('ai_confidence'))}" if d.get("ai_confidence") is not None else ""
        return (f"{where} cell {d.get('cell', '?')}: {d.get('previous_label') or 'unclassified'} → {d.get('label', '')}"
                f" (AI {ai}{conf}; version {d.get('version', '?')})")
    if event.verb == verb.CELL_ADDED:
        point = d.get("point") or ["?", "?"]
        return f"{where}: missed cell {d.get('cell', '?')} added at ({point[0]}, {point[1]}) as {d.get('label', '')}"
    if event.verb == verb.ANALYSED:
        counts = d.get("counts") or {}
        blasts = d.get("blasts")
        return (
            f"{where}: {d.get('label', '')} {_percent(d.get('confidence'))}; {counts.get('wbc', 0)} WBC, "
            f"blasts {'n/d' if blasts is None else blasts}"
        )
    if event.verb in (verb.ANALYSIS_FAILED, verb.UPLOAD_REJECTED):
        name = d.get("filename", "")
        return f"{where} {name}: {d.get('reason', '')}".strip()
    if event.verb == verb.UPLOADED:
        return f"{d.get('accepted', 0)} image(s) accepted, {d.get('rejected', 0)} refused"
    if event.verb == verb.CASE_READY:
        text = f"{d.get('analysed', 0)} analysed, {d.get('failed', 0)} failed"
        return text + (" · WHO ≥20% blasts" if d.get("who_flag") else "")
    if event.verb == verb.AMENDED and d.get("stage") == "opened":
        return f"amendment of version {d.get('from_version')} opened: “{d.get('reason', '')}”"
    if event.verb in (verb.SIGNED_OUT, verb.AMENDED):
        text = f"version {d.get('version')} signed: {d.get('images', 0)} image(s), {d.get('overridden', 0)} overridden"
        if d.get("excluded"):
            text += f", {d['excluded']} excluded"
        if d.get("amendment_reason"):
            text += f"; reason “{d['amendment_reason']}”"
        return text
    if event.verb == verb.OTHER and d.get("action") in ("assigned", "unassigned"):
        return f"assigned to {d['assignee']}" if d.get("assignee") else "assignment cleared"
    return ", ".join(f"{k}: {v}" for k, v in d.items() if v not in (None, "", [], {}))[:300]


def with_descriptions(events) -> list[AuditEvent]:
    events = list(events)
    for event in events:
        event.description = describe_event(event)
    return events
