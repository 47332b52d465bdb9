"""The cell gallery of a case: reviewers' decisions on white cells, and the crops.

Every detected white cell (``diagnostics.Cell``, written by the pipeline) keeps
its AI call; a reviewer's decision is a ``CellReview`` row (append-only) and an
``AuditEvent``. The reviewed differential, its agreement with the AI's and the
blast % that is signed come from ``diagnostics.services.case_record`` (the one
case projection), which reads these rows.

* **Double submit.** Every change carries a submission token (the page makes
  one per action). A token already recorded for the same cells returns what was
  recorded, and writes nothing (unique constraints on cell + token, and on the
  token of an added cell).
* **Stale page.** A page sends the version of each cell it saw (its number of
  decisions). A cell whose version moved meanwhile refuses the whole change
  (:class:`StaleCells`, HTTP 409); the new row takes version + 1, which a unique
  constraint on cell + version makes race-free even without the case lock.
* **Sign-out.** A change takes the case row lock, as image reviews and sign-out
  do, so that nothing slips in between the sign-out checks and the signature;
  a signed-out case is read-only until an amendment opens it.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from diagnostics import access, audit
from diagnostics.models import (
    Analysis,
    AuditEvent,
    Case,
    CaseStatus,
    Cell,
    ImageStatus,
    SlideImage,
)
from diagnostics.services.case_record import (
    CaseRecord,
    CellRow,
    build_case_record,
    person_name,
)
from review.models import CellReview

log = logging.getLogger(__name__)

UNIDENTIFIED = "Unidentified"
ARTEFACT = "artefact"
# One key per class in the gallery (ml.labels.CELL_TYPES order): digits, then x for "not a cell".
CELL_KEYS = {
    "blast": "1",
    "hematogone": "2",
    "lymphocyte": "3",
    "neutrophil": "4",
    "monocyte": "5",
    "eosinophil": "6",
    "basophil": "7",
    "immature_granulocyte": "8",
    "erythroblast": "9",
    "platelet": "0",
    "artefact": "x",
}
CROP_PX = 96  # side of a gallery crop
CROP_PAD = 0.25  # context around the cell, as a share of its larger bbox side, each side (as ml.cells)
CROP_JPEG_QUALITY = 88
# Up to this many cells, the gallery page carries its crops inline (data: URIs, ~5 KB each):
# one response instead of one request per cell (200 requests cost seconds on a small server).
# Beyond it, each crop is its own lazily loaded request to the crop route.
INLINE_CROPS_MAX = 1000
MAX_CELLS_PER_CHANGE = 2000


def cell_types() -> tuple[str, ...]:
    from ml.labels import CELL_TYPES

    return CELL_TYPES


def display_name(label: str) -> str:
    from ml.labels import CELL_TYPE_DISPLAY

    if label == ARTEFACT:
        return "Artefact / not a cell"
    return CELL_TYPE_DISPLAY.get(label, label)


def short_name(label: str) -> str:
    """The class name without its explanation ("Hematogone", not "Hematogone (normal B precursor)")."""
    if label == ARTEFACT:
        return "Artefact"
    return display_name(label).split(" (", 1)[0]


class CellReviewError(Exception):
    """A change that cannot be recorded; the message is shown to the user (HTTP 400)."""


class CellReviewForbidden(CellReviewError):
    """The user may look but not change (HTTP 403)."""


@dataclass(frozen=True)
class Conflict:
    cell_id: int
    seen_version: int
    version: int
    label: str | None
    by: str | None
    at: str | None
    where: str = ""  # "cell 3 of image #2"

    def to_dict(self) -> dict:
        return {"id": self.cell_id, "seen_version": self.seen_version, "version": self.version,
                "label": self.label, "by": self.by, "at": self.at, "where": self.where}


class StaleCells(CellReviewError):
    """The page's version of a cell is not the current one (HTTP 409)."""

    def __init__(self, conflicts: list[Conflict]):
        self.conflicts = conflicts
        first = conflicts[0]
        who = f" by {first.by}" if first.by else ""
        when = f" at {first.at}" if first.at else ""
        now = display_name(first.label) if first.label else "its AI class"
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        super().__init__(
            f"Not saved: {first.where or f'cell {first.cell_id}'}{more} was changed on another page{who}{when} and is now {now}. "
            "Reload the gallery to see the newest decisions, then try again."
        )


@dataclass(frozen=True)
class ChangeOutcome:
    reviews: list[CellReview]
    created: bool  # False: this submission token had been recorded already (double submit)


# --- recording decisions ------------------------------------------------------


def _lock_case_for_change(case: Case, reviewer) -> Case:
    locked = Case.objects.select_for_update().select_related("lab").get(pk=case.pk)
    if not access.can_review(reviewer, locked.lab):
        raise CellReviewForbidden("Only pathologists and lab admins can classify cells.")
    if locked.status == CaseStatus.SIGNED_OUT:
        raise CellReviewError(
            f"Case {locked.accession_number} is signed out; open an amendment to change a cell."
        )
    if locked.status != CaseStatus.AWAITING_REVIEW:
        raise CellReviewError(
            f"Case {locked.accession_number} is not ready for review ({locked.get_status_display()})."
        )
    return locked


def _check_label(label: str) -> str:
    label = (label or "").strip()
    if label not in cell_types():
        raise CellReviewError(f"{label!r} is not a cell class.")
    return label


def _current_cells(case: Case, cell_ids: list[int]) -> dict[int, Cell]:
    """The case's cells among ``cell_ids``, on each image's newest analysis, with their decisions."""
    newest = {}
    for analysis_id, image_id in (
        Analysis.objects.filter(image__case=case).order_by("image_id", "-created_at", "-id").values_list("id", "image_id")
    ):
        newest.setdefault(image_id, analysis_id)
    cells = (
        Cell.objects.filter(pk__in=cell_ids, analysis_id__in=newest.values(), analysis__image__status=ImageStatus.DONE)
        .select_related("analysis__image")
        .prefetch_related("reviews__reviewer")
    )
    return {cell.pk: cell for cell in cells}


def _newest(cell: Cell) -> CellReview | None:
    decisions = sorted(cell.reviews.all(), key=lambda r: r.version, reverse=True)
    return decisions[0] if decisions else None


def _already_recorded(token: uuid.UUID, reviewer, cell_ids: set[int] | None) -> list[CellReview] | None:
    rows = list(CellReview.objects.filter(submission_token=token).select_related("cell"))
    if not rows:
        return None
    if any(r.reviewer_id != reviewer.pk for r in rows) or (
        cell_ids is not None and {r.cell_id for r in rows} != cell_ids
    ):
        raise CellReviewError("This change was already used for other cells; reload the page.")
    return rows


def reclassify_cells(
    *, case: Case, reviewer, changes: list[tuple[int, int]], label: str, submission_token: uuid.UUID
) -> ChangeOutcome:
    """Give each cell of ``changes`` ((cell id, version the page saw), ...) the class ``label``.

    All or nothing: a cell that is not the case's, or whose version moved, refuses the
    whole change. A cell already of that class on the page still gets a row (a
    confirmation of the AI's call counts as a decision)."""
    label = _check_label(label)
    if not changes:
        raise CellReviewError("Select at least one cell.")
    if len(changes) > MAX_CELLS_PER_CHANGE:
        raise CellReviewError(f"At most {MAX_CELLS_PER_CHANGE} cells per change.")
    seen: dict[int, int] = {}
    for cell_id, version in changes:
        seen[int(cell_id)] = int(version)
    with transaction.atomic():
        locked = _lock_case_for_change(case, reviewer)
        recorded = _already_recorded(submission_token, reviewer, set(seen))
        if recorded is not None:
            return ChangeOutcome(recorded, created=False)
        cells = _current_cells(locked, list(seen))
        missing = set(seen) - set(cells)
        if missing:
            raise CellReviewError(f"Cell(s) {sorted(missing)} are not cells of this case; reload the page.")
        conflicts = []
        for cell_id, seen_version in seen.items():
            cell = cells[cell_id]
            newest = _newest(cell)
            version = newest.version if newest else 0
            if version != seen_version:
                conflicts.append(Conflict(
                    cell_id, seen_version, version, newest.label if newest else None,
                    person_name(newest.reviewer) if newest else None,
                    timezone.localtime(newest.created_at).strftime("%H:%M:%S") if newest else None,
                    where=f"cell {cell.index} of image #{cell.analysis.image.position}",
                ))
        if conflicts:
            raise StaleCells(conflicts)
        now = timezone.now()
        rows = []
        for cell_id, seen_version in seen.items():
            cell = cells[cell_id]
            newest = _newest(cell)
            rows.append(CellReview(
                cell=cell, version=seen_version + 1, reviewer=reviewer,
                from_label=newest.label if newest else cell.ai_label, label=label,
                action=CellReview.Action.RECLASSIFIED, submission_token=submission_token, created_at=now,
            ))
        try:
            with transaction.atomic():
                CellReview.objects.bulk_create(rows)
        except IntegrityError:
            # A concurrent request wrote the same token or the same version first (without the case
            # lock this is where the constraints decide); tell which.
            recorded = _already_recorded(submission_token, reviewer, set(seen))
            if recorded is not None:
                return ChangeOutcome(recorded, created=False)
            raise StaleCells([Conflict(cid, v, v + 1, None, None, None) for cid, v in seen.items()]) from None
        for row in rows:
            image = row.cell.analysis.image
            audit.record(
                AuditEvent.Verb.CELL_RECLASSIFIED,
                actor=reviewer,
                case=locked,
                obj=row,
                image=image.position,
                image_id=image.pk,
                cell_id=row.cell_id,
                cell=row.cell.index,
                ai_label=row.cell.ai_label,
                ai_confidence=None if row.cell.confidence is None else round(float(row.cell.confidence), 4),
                previous_label=row.from_label,
                label=label,
                version=row.version,
                cells_in_change=len(rows),
                submission=str(submission_token),
                amendment=locked.sign_out_version > 0,
            )
        refresh_case_summary(locked)
    return ChangeOutcome(rows, created=True)


def added_cell_bbox(image: SlideImage, analysis: Analysis, x: float, y: float) -> list[int]:
    """A square around the click, the median size of the image's cells (else 1/16 of its
    shorter side), kept inside the image."""
    sides = [max(b[2] - b[0], b[3] - b[1]) for b in Cell.objects.filter(analysis=analysis).values_list("bbox", flat=True)]
    side = int(statistics.median(sides)) if sides else max(16, min(image.width, image.height) // 16)
    side = max(8, min(side, image.width, image.height))
    x0 = round(x - side / 2)
    y0 = round(y - side / 2)
    x0 = min(max(0, x0), image.width - side)
    y0 = min(max(0, y0), image.height - side)
    return [x0, y0, x0 + side, y0 + side]


def add_cell(
    *, case: Case, reviewer, image_id: int, x: float, y: float, label: str, submission_token: uuid.UUID
) -> ChangeOutcome:
    """A white cell the segmentation missed, at (x, y) in image pixels, with its class:
    a new ``Cell`` (no AI call) and its first decision (action "added")."""
    label = _check_label(label)
    with transaction.atomic():
        locked = _lock_case_for_change(case, reviewer)
        recorded = _already_recorded(submission_token, reviewer, None)
        if recorded is not None:
            return ChangeOutcome(recorded, created=False)
        image = SlideImage.objects.filter(case=locked, pk=image_id, status=ImageStatus.DONE).first()
        analysis = image.analyses.order_by("-created_at", "-id").first() if image else None
        if image is None or analysis is None:
            raise CellReviewError("No such analysed image in this case; reload the page.")
        if not (0 <= x < image.width and 0 <= y < image.height):
            raise CellReviewError(f"({x:.0f}, {y:.0f}) is outside image #{image.position} ({image.width}×{image.height}).")
        bbox = added_cell_bbox(image, analysis, x, y)
        # The case row lock serialises additions, so the next number is free.
        last = Cell.objects.filter(analysis=analysis).order_by("-index").values_list("index", flat=True).first()
        cell = Cell.objects.create(
            analysis=analysis, index=(last or 0) + 1, kind="wbc", bbox=bbox, contour=None,
            ai_label="", probabilities={}, confidence=None, low_confidence=False,
        )
        # Under the case lock the token check above is final; the conditional unique constraint
        # on an added cell's token stands behind it.
        review = CellReview.objects.create(
            cell=cell, version=1, reviewer=reviewer, from_label="", label=label,
            action=CellReview.Action.ADDED, submission_token=submission_token,
        )
        audit.record(
            AuditEvent.Verb.CELL_ADDED,
            actor=reviewer,
            case=locked,
            obj=review,
            image=image.position,
            image_id=image.pk,
            cell_id=cell.pk,
            cell=cell.index,
            bbox=bbox,
            point=[round(float(x)), round(float(y))],
            label=label,
            submission=str(submission_token),
            amendment=locked.sign_out_version > 0,
        )
        refresh_case_summary(locked)
    return ChangeOutcome([review], created=True)


def refresh_case_summary(case: Case) -> CaseRecord:
    """Write the case's summary and WHO flag again (the worklist reads them) from the case record."""
    record = build_case_record(case)
    summary = record.summary()
    Case.objects.filter(pk=case.pk).update(summary=summary, who_flag=summary["who_flag"], updated_at=timezone.now())
    return record


# --- the gallery ---------------------------------------------------------------


@dataclass
class GalleryGroup:
    label: str  # a class name, or "Unidentified"
    name: str
    key: str | None
    cells: list[CellRow]

    @property
    def droppable(self) -> bool:
        return self.label != UNIDENTIFIED


def gallery_groups(record: CaseRecord) -> list[GalleryGroup]:
    """Unidentified first (cells nobody has classified yet), then every class in
    ``CELL_TYPES`` order, empty ones included (each is a drop target). Cells of an
    image excluded as not assessable are in no group: no figure counts them
    (``CaseRecord.counted_cells``); :func:`excluded_cells` says how many were left out."""
    buckets: dict[str, list[CellRow]] = {}
    for cell in record.counted_cells:
        buckets.setdefault(cell.label or UNIDENTIFIED, []).append(cell)
    groups = [GalleryGroup(UNIDENTIFIED, "Unidentified (low confidence or not classified)", None,
                           buckets.get(UNIDENTIFIED, []))]
    groups += [GalleryGroup(label, display_name(label), CELL_KEYS.get(label), buckets.get(label, []))
               for label in cell_types()]
    return groups


@dataclass(frozen=True)
class ExcludedImageCells:
    position: int
    filename: str
    reason: str  # the exclusion's label ("Out of focus")
    cells: int


def excluded_cells(record: CaseRecord) -> list[ExcludedImageCells]:
    """Per excluded image, the white cells the gallery leaves out."""
    per_image: dict[int, int] = {}
    for cell in record.cells:
        per_image[cell.image_id] = per_image.get(cell.image_id, 0) + 1
    return [ExcludedImageCells(row.position, row.filename, row.exclusion_label, per_image.get(row.image_id, 0))
            for row in record.excluded]


# --- crops ------------------------------------------------------------------------


def crop_name(case: Case, cell_id: int) -> str:
    """Next to the case's overlays (the protected media tree); keyed by the cell row, whose
    box never changes (a re-analysis makes new cells)."""
    return f"labs/{case.lab_id}/cases/{case.pk}/overlays/cells/{cell_id}.jpg"


def _crop_box(bbox) -> tuple[float, float, float]:
    x0, y0, x1, y1 = bbox
    side = max(x1 - x0, y1 - y0) * (1 + 2 * CROP_PAD)
    return (x0 + x1) / 2, (y0 + y1) / 2, max(8.0, side)


def _write_jpeg(rgb, target: Path) -> None:
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            Image.fromarray(rgb).save(out, format="JPEG", quality=CROP_JPEG_QUALITY)
        os.replace(temporary, target)  # two requests racing never see half a file
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load_original(image: SlideImage):
    from ml.imageio import load_image

    with image.file.open("rb") as handle:
        data = handle.read()
    # The same decoder (and EXIF orientation) as the pipeline, so the boxes fit.
    return load_image(data, filename=Path(image.file.name).name, max_pixels=settings.MAX_IMAGE_PIXELS)


def ensure_crops(case: Case, cells: list[tuple[int, int, tuple]]) -> int:
    """Make the missing crops of ``cells`` ((cell id, image id, bbox), ...): each original
    is decoded once for all its missing cells. Returns how many were made."""
    from ml.cells import square_crop

    missing: dict[int, list[tuple[int, tuple]]] = {}
    for cell_id, image_id, bbox in cells:
        if not Path(default_storage.path(crop_name(case, cell_id))).exists():
            missing.setdefault(image_id, []).append((cell_id, bbox))
    made = 0
    for image in SlideImage.objects.filter(case=case, pk__in=list(missing)):
        try:
            rgb = _load_original(image)
        except Exception:  # a missing or unreadable original: its crops stay missing (a 404 each)
            log.exception("could not decode image %s for cell crops", image.pk)
            continue
        for cell_id, bbox in missing[image.pk]:
            cx, cy, side = _crop_box(bbox)
            _write_jpeg(square_crop(rgb, (cx, cy), side, CROP_PX), Path(default_storage.path(crop_name(case, cell_id))))
            made += 1
    return made


def cell_crop(case: Case, cell_id: int) -> str | None:
    """The storage name of a cell's crop (made now if missing); None when the cell is not
    one of the case's or its original cannot be read."""
    cell = Cell.objects.filter(pk=cell_id, analysis__image__case=case).values_list("id", "analysis__image_id", "bbox").first()
    if cell is None:
        return None
    name = crop_name(case, cell[0])
    if not Path(default_storage.path(name)).exists():
        ensure_crops(case, [(cell[0], cell[1], tuple(cell[2]))])
    return name if Path(default_storage.path(name)).exists() else None


def inline_crops(case: Case, cell_ids: list[int]) -> dict[int, str]:
    """``data:`` URIs of the cached crops of ``cell_ids`` (those that exist), for the page itself."""
    import base64

    uris = {}
    for cell_id in cell_ids:
        path = Path(default_storage.path(crop_name(case, cell_id)))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        uris[cell_id] = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
    return uris
