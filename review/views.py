"""Review-area pages: worklist, case history, the case review screen,
sign-out and amendment, and the audit trail.

Protection, for every view here:
* ``login_required``: anonymous users are sent to the login page;
* objects are fetched only through ``diagnostics.access`` (the user's labs):
  another lab's case or image is a 404, never a 403;
* actions that need a role answer 403 to a member without it (a technician
  reviewing).
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.services import credentials_of
from diagnostics import access
from diagnostics import tiles as tile_service
from diagnostics.http import case_page_url, is_htmx, send_protected_file
from diagnostics.models import CaseStatus, ExclusionReason, Membership, Role
from diagnostics.services.case_record import case_figures, signed_result
from review import services as review_service
from review import signout as signout_service
from review import viewer as viewer_service
from review.forms import (
    AmendForm,
    AssignForm,
    HistorySearchForm,
    ReviewForm,
    SignOutForm,
    WorklistFilterForm,
)
from review.models import SignOut

PAGE_SIZE = 25



def _require_reviewer(user, case) -> None:
    """A member without a reviewing role (a technician) gets 403; a
    non-member never gets this far (the case lookup is a 404)."""
    if not access.can_review(user, case.lab):
        raise PermissionDenied("Only pathologists and lab admins can review and sign out.")


# --- media links ------------------------------------------------------------


def media_url(fieldfile) -> str | None:
    """The access-checked URL of a stored file (original or overlay).

    Case files are only ever served by the protected media view
    (``protected_media`` in diagnostics.views), which takes the storage
    name and checks the user's labs again."""
    if not fieldfile:
        return None
    return reverse("protected_media", kwargs={"name": fieldfile.name})


def _attach_urls(items: list[review_service.ImageReviewItem]) -> None:
    for item in items:
        analysis = item.analysis
        item.urls = {
            "original": media_url(item.image.file),
            "cam": media_url(analysis.cam_overlay) if analysis else None,
            "segmentation": media_url(analysis.segmentation_overlay) if analysis else None,
        }


# --- worklist and history ---------------------------------------------------


@login_required
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    reviewer = any(m.can_review for m in Membership.objects.filter(user=request.user))
    form = WorklistFilterForm(request.GET or None)
    query = form.to_query(default_scope="awaiting" if reviewer else "all")
    cases = review_service.worklist_cases(request.user, query)
    page = Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page"))
    _attach_blast_percent(page.object_list)
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "form": form,
        "query": query,
        "page": page,
        "counts": review_service.worklist_counts(request.user),
        "querystring": params.urlencode(),
        "is_reviewer": reviewer,
        "scope_links": [
            (key, label, _scope_url(request, key))
            for key, label in (("awaiting", "Awaiting review"), ("mine", "Assigned to me"), ("all", "All cases"))
        ],
    }
    template = "review/_worklist_table.html" if is_htmx(request) else "diagnostics/worklist.html"
    return render(request, template, context)


def _attach_blast_percent(cases) -> None:
    """Each row's AI blast % (the pipeline's case summary) and, once signed, the signed
    result (``CaseRecord``'s :func:`signed_result` of the newest version): the row shows
    the signed one first and the AI's beside it."""
    for case in cases:
        summary = case.summary or {}
        percent, fraction = summary.get("blast_percent"), summary.get("blast_fraction")
        if isinstance(percent, (int, float)):
            case.blast_percent = float(percent)
        else:  # a summary written before it carried the percentage
            case.blast_percent = round(100 * fraction, 1) if isinstance(fraction, (int, float)) else None
        newest = getattr(case, "newest_sign_outs", None)
        case.signed = signed_result(newest[0]) if newest else None


def _scope_url(request: HttpRequest, scope: str) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    params["scope"] = scope
    return f"{reverse('worklist')}?{params.urlencode()}"


@login_required
@require_GET
def case_history(request: HttpRequest) -> HttpResponse:
    form = HistorySearchForm(request.GET or None)
    q = form.cleaned_data.get("q", "") if form.is_valid() else ""
    page = Paginator(review_service.history_cases(request.user, q), PAGE_SIZE).get_page(request.GET.get("page"))
    _attach_blast_percent(page.object_list)
    return render(request, "review/history.html", {"form": form, "page": page, "q": q})


# --- the review screen ------------------------------------------------------


def _review_context(request: HttpRequest, case, items=None) -> dict:
    if items is None:
        items = review_service.review_items(case)
    _attach_urls(items)
    can_review = access.can_review(request.user, case.lab)
    editable = can_review and case.status == CaseStatus.AWAITING_REVIEW
    for item in items:
        item.token = review_service.new_submission_token()
    progress = review_service.review_progress(items)
    reviewers = get_user_model().objects.filter(
        memberships__lab=case.lab, memberships__role__in=[Role.PATHOLOGIST, Role.LAB_ADMIN]
    ).order_by("email")
    class_keys = next((item.class_names for item in items if item.analysis is not None), [])
    return {
        "case": case,
        "items": items,
        "class_keys": class_keys,
        "groups": review_service.group_items(items),
        "progress": progress,
        "figures": case_figures(case),
        "model_versions": review_service.model_versions_used(items),
        "can_review": can_review,
        "editable": editable,
        "sign_outs": signout_service.sign_out_history(case),
        "audit_events": review_service.with_descriptions(review_service.audit_trail(case)[:200]),
        "assign_form": AssignForm(reviewers=reviewers, initial={"assignee": case.assigned_to_id}),
        "amend_form": AmendForm(),
        "case_page_url": case_page_url(case),
        "exclusion_choices": ExclusionReason.choices,
    }



@login_required
@require_GET
def case_review(request: HttpRequest, pk: int) -> HttpResponse:
    case = access.get_case_or_404(request.user, pk)
    return render(request, "review/case_review.html", _review_context(request, case))


@login_required
@require_POST
def review_image(request: HttpRequest, pk: int, image_pk: int) -> HttpResponse:
    case = access.get_case_or_404(request.user, pk)
    image = get_object_or_404(access.images_for(request.user).filter(case=case), pk=image_pk)
    _require_reviewer(request.user, case)
    analysis = review_service.latest_analysis(image)
    class_names = list(analysis.model_version.class_names) if analysis else []
    data = request.POST.copy()
    if data.get("confirm") and analysis is not None:
        data["label"] = analysis.label  # "Confirm" always means the AI label, whatever radio is checked
    form = ReviewForm(data, class_names=class_names)
    error = None
    if form.is_valid():
        try:
            outcome = review_service.record_review(
                image=image,
                reviewer=request.user,
                label=form.cleaned_data["label"],
                exclusion=form.cleaned_data["exclusion"],
                comment=form.cleaned_data["comment"],
                submission_token=form.cleaned_data["submission_token"],
            )
        except review_service.ReviewError as exc:
            error = str(exc)
        else:
            if not outcome.created:
                note = f"Image #{image.position}: that review was already recorded."
            elif outcome.review.excluded:
                note = (f"Image #{image.position}: excluded as not assessable "
                        f"({outcome.review.get_exclusion_display().lower()}); it leaves the case figures.")
            elif outcome.review.agrees_with_ai:
                note = f"Image #{image.position}: {outcome.review.label} confirmed."
            else:
                note = f"Image #{image.position}: relabelled {outcome.review.label}."
    else:
        error = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
    if not error and not is_htmx(request):
        messages.success(request, note)
        return redirect(f"{reverse('case_review', args=[case.pk])}#image-{image.pk}")
    case.refresh_from_db()
    items = review_service.review_items(case)
    context = _review_context(request, case, items)
    item = next(i for i in items if i.image.pk == image.pk)
    if error:
        # Nothing typed is lost: the card comes back with the label and comment as sent.
        item.draft_label = data.get("label") or ""
        item.draft_comment = data.get("comment") or ""
        item.draft_exclusion = data.get("exclusion") or ""
    context.update(item=item, card_error=error, card_note=None if error else note, card_image_id=image.pk)
    if is_htmx(request):
        # 200 even for a refused review: htmx swaps only 2xx answers, and the card shows the reason.
        return render(request, "review/_review_response.html", context)
    messages.error(request, error)
    return render(request, "review/case_review.html", context, status=400)


# --- the full-resolution viewer and its tiles -------------------------------


def _image_and_analysis(request: HttpRequest, pk: int, image_pk: int):
    """The case's image (404 outside the user's labs) and its newest analysis."""
    case = access.get_case_or_404(request.user, pk)
    image = get_object_or_404(access.images_for(request.user).filter(case=case), pk=image_pk)
    image.case = case
    return case, image, review_service.latest_analysis(image)


@login_required
@require_GET
def image_viewer(request: HttpRequest, pk: int, image_pk: int) -> HttpResponse:
    """Zoom and pan on the original at full resolution (OpenSeadragon over the workers'
    Deep Zoom tiles), with Grad-CAM, the segmentation and the cell outlines as layers."""
    case, image, analysis = _image_and_analysis(request, pk, image_pk)
    positions = list(case.images.order_by("position").values_list("pk", flat=True))
    index = positions.index(image.pk)
    neighbours = {
        "previous": reverse("image_viewer", args=[case.pk, positions[index - 1]]) if index > 0 else None,
        "next": reverse("image_viewer", args=[case.pk, positions[index + 1]]) if index + 1 < len(positions) else None,
    }
    state = viewer_service.viewer_state(image, analysis)
    return render(request, "review/viewer.html", {
        "case": case,
        "image": image,
        "analysis": analysis,
        "state": state,
        # a data- attribute (escaped by the template), not a <script> block: the pages carry no inline script
        "cells_json": json.dumps(state.cells, separators=(",", ":")),
        "segmentation_legend": viewer_service.segmentation_legend(),
        "neighbours": neighbours,
        "back_url": f"{reverse('case_review', args=[case.pk])}#image-{image.pk}",
    })


@login_required
@require_GET
def image_tiles_dzi(request: HttpRequest, pk: int, image_pk: int, layer: str) -> HttpResponse:
    """The Deep Zoom descriptor of one layer (lab-scoped, never cached)."""
    _, _, analysis = _image_and_analysis(request, pk, image_pk)
    name = tile_service.descriptor_name(analysis, layer) if analysis else None
    if name is None:
        raise Http404("No tiles for this image")
    return send_protected_file(name, content_type="application/xml")


@login_required
@require_GET
def image_tile(request: HttpRequest, pk: int, image_pk: int, layer: str, level: str, col: str, row: str, fmt: str):
    """One Deep Zoom tile (lab-scoped, never cached)."""
    _, _, analysis = _image_and_analysis(request, pk, image_pk)
    name = tile_service.tile_name(analysis, layer, int(level), int(col), int(row), fmt) if analysis else None
    if name is None:
        raise Http404("No such tile")
    return send_protected_file(name)


@login_required
@require_POST
def case_assign(request: HttpRequest, pk: int) -> HttpResponse:
    case = access.get_case_or_404(request.user, pk)
    _require_reviewer(request.user, case)
    if request.POST.get("me"):
        assignee = request.user
    else:
        reviewers = get_user_model().objects.filter(
            memberships__lab=case.lab, memberships__role__in=[Role.PATHOLOGIST, Role.LAB_ADMIN]
        )
        form = AssignForm(request.POST, reviewers=reviewers)
        if not form.is_valid():
            messages.error(request, "Choose a pathologist of this lab.")
            return redirect("case_review", pk=case.pk)
        assignee = form.cleaned_data["assignee"]
    try:
        review_service.assign_case(case, assignee=assignee, actor=request.user)
    except review_service.ReviewError as exc:
        messages.error(request, str(exc))
    else:
        who = (assignee.email or assignee.username) if assignee else "nobody"
        messages.success(request, f"Case {case.accession_number} assigned to {who}.")
    return redirect(request.POST.get("next") if request.POST.get("next") == reverse("worklist") else reverse("case_review", args=[case.pk]))


# --- sign-out and amendment -------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def case_sign_out(request: HttpRequest, pk: int) -> HttpResponse:
    """The sign-out page: the checklist, the interpretation, and the signature
    itself behind a fresh authenticator code (``review.stepup``: the login code
    does not count, a code counts once)."""
    case = access.get_case_or_404(request.user, pk)
    _require_reviewer(request.user, case)
    status = 200
    if request.method == "POST":
        sign_form = SignOutForm(request.POST)
        if sign_form.is_valid():
            data = sign_form.cleaned_data
            interpretation = signout_service.Interpretation(
                diagnosis=data["diagnosis"], subtype=data["diagnosis_subtype"],
                further_studies=data["further_studies"], comment=data["diagnosis_comment"],
            )
            try:
                sign_out = signout_service.sign_out_case(
                    case, request.user, request, interpretation=interpretation, totp_code=data["code"]
                )
            except signout_service.SignOutRefused as exc:
                messages.error(request, f"Not signed out: {exc}")
            except signout_service.InterpretationError as exc:
                sign_form.add_error(None, str(exc))
            except signout_service.StepUpRefused as exc:
                sign_form.add_error("code", str(exc))
            else:
                verb = "signed out" if sign_out.version == 1 else f"amended (version {sign_out.version})"
                messages.success(request, f"Case {case.accession_number} {verb}: {signed_result(sign_out).diagnosis_text}.")
                return redirect("case_review", pk=case.pk)
        status = 400
    else:
        previous = signout_service.previous_interpretation(case)
        sign_form = SignOutForm(initial={
            "diagnosis": previous.diagnosis, "diagnosis_subtype": previous.subtype,
            "further_studies": previous.further_studies, "diagnosis_comment": previous.comment,
        } if previous else {"further_studies": "Flow cytometric immunophenotyping"})
    items = review_service.review_items(case)
    checks = signout_service.sign_out_checks(case, request.user, request, items)
    context = _review_context(request, case, items)
    context.update(
        checks=checks,
        ready=signout_service.can_sign_out(checks),
        sign_form=sign_form,
        next_version=case.sign_out_version + 1,
        amendment_reason=signout_service._pending_amendment_reason(case) if case.sign_out_version else "",
        sign_out_path=request.path,
        signer_credentials=credentials_of(request.user),
    )
    return render(request, "review/sign_out.html", context, status=status)


@login_required
@require_POST
def case_amend(request: HttpRequest, pk: int) -> HttpResponse:
    """Open an amendment: a reason and a fresh authenticator code."""
    case = access.get_case_or_404(request.user, pk)
    _require_reviewer(request.user, case)
    form = AmendForm(request.POST)
    if not form.is_valid():
        missing = [name for name in ("reason", "code") if name in form.errors]
        messages.error(request, "Give the reason for the amendment and a fresh authenticator code."
                       if len(missing) != 1 else
                       "Give the reason for the amendment." if missing == ["reason"] else
                       "Enter a fresh code from your authenticator app to amend.")
        return redirect("case_review", pk=case.pk)
    try:
        signout_service.open_amendment(
            case, request.user, form.cleaned_data["reason"], request=request, totp_code=form.cleaned_data["code"]
        )
    except (signout_service.AmendmentError, signout_service.StepUpRefused) as exc:
        messages.error(request, f"Amendment not opened: {exc}")
    else:
        messages.success(
            request,
            f"Amendment opened: version {case.sign_out_version} stays on record; "
            f"signing out again makes version {case.sign_out_version + 1}.",
        )
    return redirect("case_review", pk=case.pk)


@login_required
@require_GET
def case_version(request: HttpRequest, pk: int, version: int) -> HttpResponse:
    case = access.get_case_or_404(request.user, pk)
    sign_out = get_object_or_404(SignOut.objects.select_related("signed_by"), case=case, version=version)
    rows = sorted(sign_out.labels.values(), key=lambda row: row.get("position", 0))
    for row in rows:
        code = row.get("exclusion") or ""
        row["exclusion_label"] = ExclusionReason(code).label if code in ExclusionReason.values else code
    return render(request, "review/version.html", {
        "case": case, "sign_out": sign_out, "rows": rows, "signed": signed_result(sign_out),
        "changes": signout_service.amendment_changes(case, version),
    })


@login_required
@require_GET
def case_audit(request: HttpRequest, pk: int) -> HttpResponse:
    """The audit trail; as a fragment for htmx (the case page loads it), or a page."""
    case = access.get_case_or_404(request.user, pk)
    events = review_service.audit_trail(case)
    if is_htmx(request):
        return render(
            request, "review/_audit.html", {"case": case, "audit_events": review_service.with_descriptions(events[:200])}
        )
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    return render(request, "review/audit.html", {"case": case, "page": page, "audit_events": review_service.with_descriptions(page.object_list)})


@login_required
@require_GET
def case_review_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """A small fragment for the case page (loaded with htmx): review progress,
    sign-out state and links to the review screen."""
    case = access.get_case_or_404(request.user, pk)
    items = review_service.review_items(case)
    return render(
        request,
        "review/_panel.html",
        {
            "case": case,
            "progress": review_service.review_progress(items),
            "can_review": access.can_review(request.user, case.lab),
            "sign_outs": signout_service.sign_out_history(case),
        },
    )
