"""Synthetic smears are cheap enough to train the demo model on hundreds of them (≤ ~50 ms per 224×224 image)."""

from __future__ import annotations

import time

import numpy as np

from ml.synthetic import make_smear


def test_generation_time_per_image() -> None:
    make_smear(0, "Pro", (224, 224))  # warm-up (imports, allocator)
    cpu_seconds = []
    for seed in range(12):
        start = time.process_time()  # CPU time: stable on a shared machine
        make_smear(seed, ("Benign", "Early", "Pre", "Pro")[seed % 4], (224, 224))
        cpu_seconds.append(time.process_time() - start)
    assert float(np.median(cpu_seconds)) <= 0.05
