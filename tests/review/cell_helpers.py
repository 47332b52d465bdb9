"""Test data for the cell gallery: analyses with white-cell rows, on real image files.

``add_cells`` puts labelled cells on an analysis (boxes on a grid). ``make_smear_case``
draws synthetic smears (ml.synthetic) and writes one Cell per white cell of the smear's
ground truth (its real box), so crops and markers show real cells; the AI labels are
test data: blasts of the smear are "blast", the other white cells cycle through a few
classes, and every ``low_every``-th cell is a low-confidence call.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from diagnostics.models import Analysis, CaseStatus, Cell, ImageStatus, Specimen
from review import cells as cells_service
from tests.factories import AnalysisFactory, BatchFactory, CaseFactory, ModelVersionFactory, SlideImageFactory

OTHERS = ("lymphocyte", "neutrophil", "monocyte", "lymphocyte", "eosinophil")


def add_cells(analysis: Analysis, labels: list[str], *, low: tuple[int, ...] = (), side: int = 8) -> list[Cell]:
    """One Cell per label (1-based indexes); those whose index is in ``low`` are low-confidence calls."""
    rows = []
    for index, label in enumerate(labels, start=1):
        x0, y0 = (index - 1) % 6 * (side + 2), (index - 1) // 6 * (side + 2)
        confidence = 0.45 if index in low else 0.9
        rows.append(Cell(
            analysis=analysis, index=index, kind="wbc", bbox=[x0, y0, x0 + side, y0 + side],
            ai_label=label, probabilities={label: confidence}, confidence=confidence, low_confidence=index in low,
        ))
    return Cell.objects.bulk_create(rows)


def reclassify(case, user, cells, label, *, token=None):
    """Record a change the way a page that saw the current versions would."""
    from diagnostics.services.case_record import build_case_record

    versions = {c.cell_id: c.version for c in build_case_record(case).cells}
    return cells_service.reclassify_cells(
        case=case, reviewer=user, changes=[(c.pk, versions[c.pk]) for c in cells], label=label,
        submission_token=token or uuid.uuid4(),
    )


def make_smear_case(
    lab,
    *,
    n_images: int = 1,
    size: tuple[int, int] = (320, 320),
    wbc_per_image: int = 8,
    low_every: int = 0,
    specimen: str = Specimen.BONE_MARROW,
    status: str = CaseStatus.AWAITING_REVIEW,
    subtype: str | tuple[str, ...] = "Pre",
):
    """``subtype`` is the smear class of every image, or one per image (cycled): a "Pre" smear's
    white cells are all blasts, a "Benign" one's none."""
    from ml.synthetic import make_smear

    model_version = ModelVersionFactory()
    case = CaseFactory(lab=lab, status=status, specimen=specimen)
    batch = BatchFactory(case=case)
    images, cells = [], []
    n = 0
    for position in range(1, n_images + 1):
        seed = case.pk * 1000 + position
        kind = subtype if isinstance(subtype, str) else subtype[(position - 1) % len(subtype)]
        smear = make_smear(seed, label=kind, size=size, n_wbc=wbc_per_image)
        buffer = io.BytesIO()
        Image.fromarray(smear.image).save(buffer, format="PNG")
        image = SlideImageFactory(
            batch=batch, case=case, position=position, width=size[1], height=size[0],
            file=ContentFile(buffer.getvalue(), name=f"smear-{position}.png"), sha256=f"{seed:064x}",
            status=ImageStatus.DONE,
        )
        images.append(image)
        analysis = AnalysisFactory(image=image, model_version=model_version, label=kind, confidence=0.9,
                                   overlays=False, cell_counts={"wbc": wbc_per_image})
        rows = []
        wbc_ids = sorted(i for i, kind in smear.kinds.items() if kind == "wbc")
        for index, instance in enumerate(wbc_ids, start=1):
            ys, xs = np.nonzero(smear.cell_labels == instance)
            if not len(xs):
                continue
            n += 1
            label = "blast" if instance in smear.blast_ids else OTHERS[n % len(OTHERS)]
            low = bool(low_every) and n % low_every == 0
            confidence = 0.45 if low else 0.91
            rows.append(Cell(
                analysis=analysis, index=index, kind="wbc",
                bbox=[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                ai_label=label, probabilities={label: confidence}, confidence=confidence, low_confidence=low,
            ))
        cells += Cell.objects.bulk_create(rows)
    return case, images, cells
