"""The cell gallery of a case: every white cell's crop grouped by class, the cells on
their images, the reviewed differential, and the JSON routes the page posts its
changes to (reclassify a selection, add a missed cell).

Every route looks the case up through ``diagnostics.access`` first: another lab's
case, cell or crop is a 404. Changing a cell needs a reviewing role (403 otherwise).
"""

from __future__ import annotations

import json
import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from diagnostics import access
from diagnostics.http import case_page_url, send_protected_file
from diagnostics.models import CaseStatus
from diagnostics.services.case_record import CaseRecord, build_case_record
from review import cells as cells_service
from review.views import media_url


def _cell_item(case, cell, inline: dict[int, str]) -> dict:
    ai = cell.ai_label
    return {
        "row": cell,
        "crop": inline.get(cell.cell_id) or reverse("cell_crop", args=[case.pk, cell.cell_id]),
        "label": cell.label or "",
        "ai_name": cells_service.display_name(ai) if ai else "",
        "confidence": None if cell.confidence is None else round(100 * cell.confidence),
        "reviewed_name": cells_service.display_name(cell.reviewed_label) if cell.reviewed_label else "",
    }


def differential_context(record: CaseRecord) -> dict:
    reviewed, ai = record.reviewed_differential, record.ai_differential
    rows = [
        {"label": r["label"], "name": cells_service.short_name(r["label"]), "count": r["count"],
         "percent": r["percent"], "ai_count": a["count"], "ai_percent": a["percent"],
         "key": cells_service.CELL_KEYS.get(r["label"])}
        for r, a in zip(reviewed.rows(), ai.rows(), strict=True)
    ]
    percent, ai_percent = reviewed.blast_percent, ai.blast_percent
    from django.conf import settings

    return {
        "record": record,
        "diff_rows": rows,
        "reviewed": reviewed,
        "ai": ai,
        "reviewed_blast_percent": percent,
        "ai_blast_percent": ai_percent,
        "agreement": record.agreement,
        "target": record.cell_target,
        "below_target": reviewed.nucleated < record.cell_target,
        "who_threshold_percent": round(100 * settings.WHO_BLAST_THRESHOLD),
        "reviewed_who_flag": record.specimen == "bone_marrow_aspirate" and reviewed.blast_fraction is not None
        and reviewed.blast_fraction >= settings.WHO_BLAST_THRESHOLD,
    }


@login_required
@require_GET
def case_cells(request: HttpRequest, pk: int) -> HttpResponse:
    case = access.get_case_or_404(request.user, pk)
    record = build_case_record(case)
    shown = record.counted_cells  # an excluded image's cells are in no group
    cells_service.ensure_crops(case, [(c.cell_id, c.image_id, c.bbox) for c in shown])
    inline = (cells_service.inline_crops(case, [c.cell_id for c in shown])
              if len(shown) <= cells_service.INLINE_CROPS_MAX else {})
    can_review = access.can_review(request.user, case.lab)
    editable = can_review and case.status == CaseStatus.AWAITING_REVIEW
    groups = [
        {"group": group, "cells": [_cell_item(case, cell, inline) for cell in group.cells]}
        for group in cells_service.gallery_groups(record)
    ]
    by_image: dict[int, list] = {}
    for cell in record.cells:
        by_image.setdefault(cell.image_id, []).append(cell)
    images = []
    for row in record.analysed:
        image = row.analysis.image
        images.append({
            "row": row, "id": row.image_id, "url": media_url(image.file), "width": image.width,
            "height": image.height, "cells": [
                {"row": c, "label": c.label or "", "x": c.bbox[0], "y": c.bbox[1],
                 "w": c.bbox[2] - c.bbox[0], "h": c.bbox[3] - c.bbox[1]}
                for c in by_image.get(row.image_id, [])
            ],
        })
    classes = [{"label": label, "name": cells_service.display_name(label), "key": cells_service.CELL_KEYS.get(label)}
               for label in cells_service.cell_types()]
    context = {
        "case": case,
        "groups": groups,
        "excluded_cells": cells_service.excluded_cells(record),
        "images": images,
        "classes": classes,
        "can_review": can_review,
        "editable": editable,
        "case_page_url": case_page_url(case),
        **differential_context(record),
    }
    return render(request, "review/cells.html", context)


@login_required
@require_GET
def case_cells_differential(request: HttpRequest, pk: int) -> HttpResponse:
    """The differential card alone (htmx reloads it after every change)."""
    case = access.get_case_or_404(request.user, pk)
    context = {"case": case, **differential_context(build_case_record(case))}
    return render(request, "review/_cell_differential.html", context)


@login_required
@require_GET
def cell_crop(request: HttpRequest, pk: int, cell_pk: int) -> HttpResponse:
    """One cell's crop from the original (cached as a JPEG; never cached by the browser)."""
    case = access.get_case_or_404(request.user, pk)
    name = cells_service.cell_crop(case, cell_pk)
    if name is None:
        raise Http404("No such cell")
    return send_protected_file(name)


def _payload(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise cells_service.CellReviewError("The request is not JSON.") from None
    if not isinstance(data, dict):
        raise cells_service.CellReviewError("The request is not a JSON object.")
    return data


def _token(data: dict) -> uuid.UUID:
    try:
        return uuid.UUID(str(data.get("token", "")))
    except ValueError:
        raise cells_service.CellReviewError("The change has no valid submission token; reload the page.") from None


def _error(exc: cells_service.CellReviewError) -> JsonResponse:
    if isinstance(exc, cells_service.StaleCells):
        return JsonResponse({"error": str(exc), "conflicts": [c.to_dict() for c in exc.conflicts]}, status=409)
    status = 403 if isinstance(exc, cells_service.CellReviewForbidden) else 400
    return JsonResponse({"error": str(exc)}, status=status)


def _cell_json(case, record: CaseRecord, cell_ids: set[int]) -> list[dict]:
    return [
        {"id": c.cell_id, "label": c.label or "", "group": c.label or cells_service.UNIDENTIFIED,
         "version": c.version, "image": c.image_id, "position": c.position, "index": c.index,
         "bbox": list(c.bbox), "added": c.added, "crop": reverse("cell_crop", args=[case.pk, c.cell_id])}
        for c in record.cells if c.cell_id in cell_ids
    ]


def _require_reviewer_json(request, case) -> JsonResponse | None:
    if not access.can_review(request.user, case.lab):
        return JsonResponse({"error": "Only pathologists and lab admins can classify cells."}, status=403)
    return None


@login_required
@require_POST
def cells_reclassify(request: HttpRequest, pk: int) -> JsonResponse:
    """``{"label": "blast", "token": "<uuid>", "cells": [{"id": 1, "version": 0}, ...]}``."""
    case = access.get_case_or_404(request.user, pk)
    refused = _require_reviewer_json(request, case)
    if refused:
        return refused
    try:
        data = _payload(request)
        entries = data.get("cells")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise cells_service.CellReviewError("Send the cells as a list of {id, version}.")
        try:
            changes = [(int(e["id"]), int(e.get("version", 0))) for e in entries]
        except (KeyError, TypeError, ValueError):
            raise cells_service.CellReviewError("Each cell needs a numeric id and version.") from None
        outcome = cells_service.reclassify_cells(
            case=case, reviewer=request.user, changes=changes, label=str(data.get("label", "")),
            submission_token=_token(data),
        )
    except cells_service.CellReviewError as exc:
        return _error(exc)
    label = outcome.reviews[0].label
    n = len(outcome.reviews)
    message = (f"Already recorded: {n} cell(s) as {cells_service.display_name(label)}." if not outcome.created
               else f"{n} cell(s) → {cells_service.display_name(label)}.")
    record = build_case_record(case)
    return JsonResponse({"created": outcome.created, "message": message,
                         "cells": _cell_json(case, record, {r.cell_id for r in outcome.reviews})})


@login_required
@require_POST
def cell_add(request: HttpRequest, pk: int) -> JsonResponse:
    """``{"image": <image id>, "x": px, "y": px, "label": "blast", "token": "<uuid>"}``."""
    case = access.get_case_or_404(request.user, pk)
    refused = _require_reviewer_json(request, case)
    if refused:
        return refused
    try:
        data = _payload(request)
        try:
            image_id, x, y = int(data["image"]), float(data["x"]), float(data["y"])
        except (KeyError, TypeError, ValueError):
            raise cells_service.CellReviewError("Send the image id and the x, y of the cell in image pixels.") from None
        outcome = cells_service.add_cell(
            case=case, reviewer=request.user, image_id=image_id, x=x, y=y, label=str(data.get("label", "")),
            submission_token=_token(data),
        )
    except cells_service.CellReviewError as exc:
        return _error(exc)
    review = outcome.reviews[0]
    record = build_case_record(case)
    cells_service.ensure_crops(case, [(c.cell_id, c.image_id, c.bbox) for c in record.cells if c.cell_id == review.cell_id])
    message = ("That cell was already added." if not outcome.created
               else f"Missed cell added as {cells_service.display_name(review.label)}.")
    return JsonResponse({"created": outcome.created, "message": message,
                         "cells": _cell_json(case, record, {review.cell_id})})
