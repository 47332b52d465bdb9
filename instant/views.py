"""The instant check pages: upload, the result page, its polling status and its files.

Protection: ``login_required``; checks only through the user's labs (another
lab's check is a 404).
"""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from diagnostics import access
from diagnostics.http import send_protected_file
from diagnostics.services.models import is_demo_version
from instant import services as instant_service
from instant.forms import InstantCheckForm
from instant.models import InstantCheck


@login_required
@require_http_methods(["GET", "POST"])
def instant_check(request: HttpRequest) -> HttpResponse:
    labs = access.labs_for(request.user).order_by("name")
    if not labs.exists():
        raise PermissionDenied("You are not a member of any lab.")
    form = InstantCheckForm(request.POST or None, request.FILES or None, labs=labs)
    if request.method == "POST" and form.is_valid():
        try:
            check = instant_service.create_instant_check(
                user=request.user, lab=form.cleaned_data["lab"], upload=form.cleaned_data["image"]
            )
        except instant_service.InstantCheckError as exc:
            form.add_error("image", str(exc))
        else:
            return redirect("instant_result", pk=check.pk)
    recent = instant_service.checks_for(request.user).select_related("created_by")[:10]
    # A refused file (or form) is a 4xx, like the API's answer, with the form saying why.
    status = 400 if request.method == "POST" else 200
    return render(request, "review/instant.html", {"form": form, "recent": recent}, status=status)


def _check_or_404(user, pk: uuid.UUID) -> InstantCheck:
    return get_object_or_404(instant_service.checks_for(user).select_related("model_version", "lab"), pk=pk)


@login_required
@require_GET
def instant_result(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    check = _check_or_404(request.user, pk)
    return render(request, "review/instant_result.html", _instant_context(check))


@login_required
@require_GET
def instant_status(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    check = _check_or_404(request.user, pk)
    response = render(request, "review/_instant_status.html", _instant_context(check))
    if check.status in ("done", "failed"):
        # htmx stops polling when the element that polls is replaced by one that does not.
        response["HX-Trigger"] = "instant-finished"
    return response


def _instant_context(check: InstantCheck) -> dict:
    probabilities = []
    if check.model_version and check.probabilities:
        probabilities = [(name, float(check.probabilities.get(name, 0.0))) for name in check.model_version.class_names]
    return {
        "check": check,
        "probabilities": probabilities,
        "finished": check.status in ("done", "failed"),
        "show_demo_banner": is_demo_version(check.model_version),
        "urls": {
            kind: reverse("instant_file", args=[check.pk, kind])
            for kind, field in (("original", check.file), ("cam", check.cam_overlay), ("segmentation", check.segmentation_overlay))
            if field
        },
    }


@login_required
@require_GET
def instant_file(request: HttpRequest, pk: uuid.UUID, kind: str) -> HttpResponse:
    check = _check_or_404(request.user, pk)
    field = {"original": check.file, "cam": check.cam_overlay, "segmentation": check.segmentation_overlay}.get(kind)
    if not field:
        raise Http404("No such file")
    return send_protected_file(field.name, storage=field.storage)
