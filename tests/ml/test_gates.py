"""ml.gates: one place decides demo-ness and whether a blast % may be shown as validated."""

from __future__ import annotations

import pytest

from ml.checkpoint import ModelCard
from ml.gates import (
    BLAST_GATES,
    NOT_VALIDATED_LABEL,
    blast_estimate_validated,
    blast_label,
    gate_reasons,
    is_demo_card,
)
from ml.labels import CELL_TYPES

PASSING = {"held_out": True, **{name: goal + 0.01 for name, goal in BLAST_GATES.items()}}


def _card(**fields) -> ModelCard:
    base = {"arch": "resnet18", "class_names": list(CELL_TYPES), "binary_map": None, "input_size": 128,
            "mean": [0.5] * 3, "std": [0.2] * 3, "task": "cell"}
    return ModelCard(**{**base, **fields})


def test_demo_is_decided_from_the_card_for_both_models():
    assert is_demo_card(None)
    assert is_demo_card(_card(demo=True))
    assert is_demo_card({"demo": False, "training": {"data": {"kind": "synthetic"}}})
    assert not is_demo_card(_card())
    assert not is_demo_card(_card(task="image", class_names=["Benign", "Early", "Pre", "Pro"]).to_dict())


def test_a_card_passing_every_gate_on_held_out_data_is_validated():
    card = _card(validation=dict(PASSING))
    assert gate_reasons(card) == []
    assert blast_estimate_validated(card) and blast_estimate_validated(card.to_dict())
    assert blast_label(card) == ""


@pytest.mark.parametrize("name", sorted(BLAST_GATES))
def test_one_figure_below_its_gate_blocks_and_is_named(name):
    validation = dict(PASSING, **{name: BLAST_GATES[name] - 0.02})
    card = _card(validation=validation)
    assert not blast_estimate_validated(card)
    assert any(name in reason for reason in gate_reasons(card))
    assert blast_label(card) == NOT_VALIDATED_LABEL


@pytest.mark.parametrize(
    ("card", "needle"),
    [
        (None, "no cell-level model"),
        (_card(), "no validation figures"),
        (_card(demo=True, validation=dict(PASSING)), "demo"),
        (_card(validation=dict(PASSING, held_out=False)), "held-out"),
        (_card(class_names=["not_blast", "artefact"], validation=dict(PASSING)), "no blast class"),
        (_card(validation={k: v for k, v in PASSING.items() if k != "cnmc_blast_auc"}), "cnmc_blast_auc was not measured"),
    ],
)
def test_unvalidated_cards_say_why(card, needle):
    assert not blast_estimate_validated(card)
    assert any(needle in reason for reason in gate_reasons(card))
