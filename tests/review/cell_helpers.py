"""Recording a reviewer's cell changes as a page would (the cells themselves: tests.factories.add_cells
and tests.factories.smear_case)."""

from __future__ import annotations

import uuid

from review import cells as cells_service


def reclassify(case, user, cells, label, *, token=None):
    """Record a change the way a page that saw the current versions would."""
    from diagnostics.services.case_record import build_case_record

    versions = {c.cell_id: c.version for c in build_case_record(case).cells}
    return cells_service.reclassify_cells(
        case=case, reviewer=user, changes=[(c.pk, versions[c.pk]) for c in cells], label=label,
        submission_token=token or uuid.uuid4(),
    )
