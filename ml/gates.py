"""The one place that decides whether a result comes from a demo model, and whether
the blast percentage (and the WHO ≥ 20 % flag) may be shown as a validated figure.

Cards may be :class:`ml.checkpoint.ModelCard` objects, their ``to_dict()`` form,
or None (no model): the functions read them alike.

The blast gate reads the cell model card's ``validation`` dict, written by
``python -m ml train-cells`` from held-out data (see ``bench/cells.py``). A blast
estimate is "validated" only when every figure in :data:`BLAST_GATES` is present,
was measured on held-out data and reaches its goal; otherwise the pages, API and
report say "AI estimate, not validated", with :func:`gate_reasons` as the why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# figure in card.validation -> the least value that passes (goals of issue 14)
BLAST_GATES: dict[str, float] = {
    "pbc_accuracy": 0.93,  # held-out PBC cells, 8 normal classes
    "cnmc_blast_auc": 0.85,  # C-NMC single cells, out-of-fold by patient
    "image_blast_auc": 0.95,  # per-image blast fraction, all4class contiguous test split
}

NOT_VALIDATED_LABEL = "AI estimate, not validated"


def _get(card: Any, name: str, default: Any = None) -> Any:
    if card is None:
        return default
    if isinstance(card, Mapping):
        return card.get(name, default)
    return getattr(card, name, default)


def is_demo_card(card: Any) -> bool:
    """True when results of this model must carry "demo model, not for diagnosis".

    A missing card counts as demo (nothing shows the model was trained on real
    data); so does a card flagged ``demo`` or whose training data is synthetic.
    """
    if card is None:
        return True
    if bool(_get(card, "demo", False)):
        return True
    training = _get(card, "training", {}) or {}
    data = training.get("data") if isinstance(training, Mapping) else None
    if isinstance(data, Mapping) and str(data.get("kind", "")).lower() == "synthetic":
        return True
    return isinstance(training, Mapping) and bool(training.get("synthetic", False))


def gate_reasons(cell_card: Any) -> list[str]:
    """Why the blast estimate of ``cell_card`` is not validated; an empty list when it is."""
    if cell_card is None:
        return ["no cell-level model is active"]
    reasons: list[str] = []
    if is_demo_card(cell_card):
        reasons.append("the cell model is a demo model")
    names = list(_get(cell_card, "class_names", []) or [])
    if "blast" not in names:
        reasons.append("the cell model has no blast class")
    validation = _get(cell_card, "validation", {}) or {}
    if not validation:
        reasons.append("the cell model card records no validation figures")
        return reasons
    if not validation.get("held_out", False):
        reasons.append("the validation figures were not measured on held-out data")
    for name, goal in BLAST_GATES.items():
        value = validation.get(name)
        if value is None:
            reasons.append(f"{name} was not measured")
        elif not isinstance(value, (int, float)) or float(value) < goal:
            reasons.append(f"{name} {float(value):.3f} is below the gate {goal:.2f}")
    return reasons


def blast_estimate_validated(cell_card: Any) -> bool:
    """True only when the active cell model passed every blast gate on held-out data."""
    return not gate_reasons(cell_card)


def blast_label(cell_card: Any) -> str:
    """The qualifier shown next to a blast % ("" when validated)."""
    return "" if blast_estimate_validated(cell_card) else NOT_VALIDATED_LABEL
