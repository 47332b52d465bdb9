"""Case pages: new case with images, add images, the case page with live
progress (htmx polling + a JSON endpoint), and the lab-scoped media files.

Views stay thin: uploads go through diagnostics.services.upload, progress and
summaries through diagnostics.services.cases. Every object is looked up through
diagnostics.access, so another lab's case, image or overlay is a 404.
"""

from __future__ import annotations

import posixpath
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from diagnostics.access import (
    analyses_for,
    can_upload,
    get_case_or_404,
    images_for,
    labs_for,
)
from diagnostics.forms import CaseUploadForm, ImagesForm
from diagnostics.http import send_protected_file
from diagnostics.models import Analysis, Case, CaseStatus
from diagnostics.services import cases as case_service
from diagnostics.services import upload as upload_service
from diagnostics.services.case_record import build_case_record, case_figures

MAX_MESSAGES_PER_UPLOAD = 20  # the full list is on the case page; the flash messages show the first ones


def _report_upload(request: HttpRequest, result: upload_service.UploadResult) -> None:
    accepted = len(result.accepted)
    if accepted:
        messages.success(request, f"{accepted} image{'s' if accepted != 1 else ''} accepted and queued for analysis.")
    for rejection in result.rejected[:MAX_MESSAGES_PER_UPLOAD]:
        messages.error(request, f"{rejection.filename}: {rejection.reason}")
    hidden = len(result.rejected) - MAX_MESSAGES_PER_UPLOAD
    if hidden > 0:
        messages.error(request, f"{hidden} more file(s) were refused; all reasons are listed on the case page.")


@login_required
@require_http_methods(["GET", "POST"])
def case_new(request: HttpRequest) -> HttpResponse:
    if not labs_for(request.user).exists():
        raise PermissionDenied("You are not a member of any lab.")
    form = CaseUploadForm(request.POST or None, request.FILES or None, user=request.user)
    rejected: list[upload_service.Rejection] = []
    if request.method == "POST" and form.is_valid():
        try:
            result = upload_service.create_case(
                lab=form.cleaned_data["lab"],
                user=request.user,
                fields=form.case_fields(),
                files=form.cleaned_data["files"],
            )
        except upload_service.DuplicateAccessionError as exc:
            form.add_error("accession_number", str(exc))
        except upload_service.NoUsableImagesError as exc:
            form.add_error("files", str(exc))
            rejected = exc.rejected
        else:
            _report_upload(request, result)
            return redirect("case_detail", pk=result.case.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "cases/new.html", {"form": form, "rejected": rejected}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def case_add_images(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_or_404(request.user, pk)
    if not can_upload(request.user, case.lab):
        raise Http404("No such case")
    form = ImagesForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = upload_service.add_images(case=case, user=request.user, files=form.cleaned_data["files"])
        except upload_service.CaseClosedError as exc:
            form.add_error("files", str(exc))
        else:
            _report_upload(request, result)
            return redirect("case_detail", pk=case.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "cases/add_images.html", {"case": case, "form": form}, status=status)


def case_context(request: HttpRequest, case: Case) -> dict:
    """Everything the case page and its partials need (the review pages extend it)."""
    progress = case_service.case_progress(case)
    record = build_case_record(case)
    summary = case_figures(case, record)
    images = case.images.prefetch_related(
        Prefetch("analyses", queryset=Analysis.objects.select_related("model_version").order_by("-created_at"))
    ).order_by("position")
    record_rows = {row.image_id: row for row in record.images}
    rows = []
    for image in images:
        analyses = list(image.analyses.all())
        rows.append({"image": image, "analysis": analyses[0] if analyses else None, "stage": case_service.image_stage(image),
                     "record": record_rows.get(image.pk)})
    return {
        "case": case,
        "progress": progress,
        "stages": case_service.stage_rows(progress),
        "summary": summary,
        "signed": record.signed_result,  # the signed version is the result; the AI's sits beside it
        "image_rows": rows,
        "batches": case.batches.select_related("uploaded_by").order_by("created_at"),
        "can_upload": can_upload(request.user, case.lab) and case.status != CaseStatus.SIGNED_OUT,
        "show_demo_banner": bool(summary.get("demo")),
        "images_form": ImagesForm(),
    }


@login_required
@require_GET
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = get_case_or_404(request.user, pk)
    return render(request, "cases/detail.html", case_context(request, case))


@login_required
@require_GET
def case_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress fragment, polled by htmx every 2 s while the case runs. When
    it has just finished, the whole page is reloaded (HX-Refresh) to show the results."""
    case = get_case_or_404(request.user, pk)
    progress = case_service.case_progress(case)
    response = render(
        request,
        "cases/_progress.html",
        {"case": case, "progress": progress, "stages": case_service.stage_rows(progress)},
    )
    if request.headers.get("HX-Request") and not progress["active"]:
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_GET
def case_progress_json(request: HttpRequest, pk: int) -> JsonResponse:
    case = get_case_or_404(request.user, pk)
    data = case_service.case_progress(case)
    finished = case.status in (CaseStatus.AWAITING_REVIEW, CaseStatus.SIGNED_OUT, CaseStatus.FAILED)
    data["summary"] = case.summary if finished and case.summary else None
    response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- media

_CASE_PATH = re.compile(r"^labs/(?P<lab>\d+)/cases/(?P<case>\d+)/(?:originals|overlays)/[^/]+$")


def _owned_media(user, name: str) -> tuple[str, str] | None:
    """``(storage name, download name)`` when ``name`` is an original or an overlay
    of a case in one of the user's labs; None otherwise."""
    match = _CASE_PATH.match(name)
    if match is None:
        return None
    case_id = int(match["case"])
    image = images_for(user).filter(case_id=case_id, case__lab_id=int(match["lab"]), file=name).first()
    if image is not None:
        return name, posixpath.basename(image.original_filename.rsplit(" › ", 1)[-1])
    analysis = (
        analyses_for(user)
        .filter(image__case_id=case_id, image__case__lab_id=int(match["lab"]))
        .filter(Q(cam_overlay=name) | Q(segmentation_overlay=name))
        .first()
    )
    if analysis is not None:
        return name, posixpath.basename(name)
    return None


@login_required
@require_GET
def protected_media(request: HttpRequest, name: str) -> HttpResponse:
    """Originals and overlays, only for members of the owning lab (404 for everyone else).

    ``MEDIA_SERVE_MODE="nginx"`` answers with ``X-Accel-Redirect`` so nginx
    sends the bytes (from an ``internal`` location at ``MEDIA_ACCEL_PREFIX``)
    after Django has checked access.
    """
    name = posixpath.normpath(name)
    if name.startswith(("/", "..")) or "\x00" in name:
        raise Http404("No such file")
    owned = _owned_media(request.user, name)
    if owned is None:
        raise Http404("No such file")
    storage_name, download_name = owned
    return send_protected_file(storage_name, download_name=download_name)
