"""The training LR schedule is torch's own: linear warm-up, then cosine to zero, shortened on a budget."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from ml.train import build_lr_scheduler, shorten_cosine


def _optimizer():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    return torch.optim.AdamW([{"params": [params[0]], "lr": 1e-4}, {"params": [params[1]], "lr": 1e-3}])


def _run(optimizer, scheduler, steps, on_step=None):
    rates = []
    for step in range(steps):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
        if on_step:
            on_step(step)
    return rates


def test_warm_up_then_cosine_for_each_parameter_group():
    optimizer = _optimizer()
    scheduler, _ = build_lr_scheduler(optimizer, total_steps=100, warmup_steps=10)
    assert isinstance(scheduler, torch.optim.lr_scheduler.SequentialLR)
    rates = _run(optimizer, scheduler, 100)
    for group, base in enumerate((1e-4, 1e-3)):
        assert rates[0][group] == pytest.approx(base / 10)
        assert rates[9][group] < base and rates[10][group] == pytest.approx(base)
        t = 55 - 10  # half-way through the cosine part
        assert rates[55][group] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * t / 90)), rel=1e-5)
        assert rates[99][group] < base * 1e-3


def test_shortening_keeps_the_curve_continuous_and_ends_at_zero():
    optimizer = _optimizer()
    scheduler, cosine = build_lr_scheduler(optimizer, total_steps=100, warmup_steps=10)
    rates = _run(optimizer, scheduler, 60, on_step=lambda s: s == 29 and shorten_cosine(cosine, 60, 10))
    heads = [r[1] for r in rates]
    assert heads[30] < heads[29] and abs(heads[30] - heads[29]) < 0.1 * heads[29]  # no jump
    assert all(b <= a + 1e-12 for a, b in pairwise(heads[10:]))  # monotone decay
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.0, abs=1e-12)  # reached zero at step 60
