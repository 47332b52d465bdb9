"""Contiguous splits keep runs of neighbouring file numbers together (one slide, one side)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.datasets import scan_imagefolder, split_dataset


def _runs(sequence: list[str]) -> int:
    """Number of maximal runs of equal values, counting the sequence as a circle."""
    changes = sum(a != b for a, b in zip(sequence, sequence[1:] + sequence[:1]))
    return max(1, changes)


@pytest.fixture()
def folder(tmp_path) -> Path:
    for cls, n in (("A", 60), ("B", 45)):
        for i in range(1, n + 1):
            path = tmp_path / cls / f"WBC-{cls}-{i:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 20, 3), i, dtype=np.uint8)).save(path)
    return tmp_path


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_each_part_is_one_run_of_numbers_per_class(folder, seed):
    index = scan_imagefolder(folder, verify=False)
    split = split_dataset(index, "contiguous", val_fraction=0.15, test_fraction=0.2, seed=seed)
    part_of = {s.relpath: part for part in ("train", "val", "test") for s in split.part(part)}
    for cls in index.class_names:
        ordered = sorted((s for s in index.samples if s.label == cls), key=lambda s: s.number)
        sequence = [part_of[s.relpath] for s in ordered]
        # three parts, each one circular run -> exactly three runs
        assert _runs(sequence) == 3, sequence
        assert sequence.count("test") == round(0.2 * len(ordered))


def test_neighbours_mostly_share_a_side(folder):
    """Only the run boundaries separate consecutive numbers; a random split separates many more."""
    index = scan_imagefolder(folder, verify=False)

    def separated(method: str) -> int:
        split = split_dataset(index, method, seed=3)
        part_of = {s.relpath: part for part in ("train", "val", "test") for s in split.part(part)}
        count = 0
        for cls in index.class_names:
            ordered = sorted((s for s in index.samples if s.label == cls), key=lambda s: s.number)
            count += sum(part_of[a.relpath] != part_of[b.relpath] for a, b in itertools.pairwise(ordered))
        return count

    assert separated("contiguous") <= 3 * len(index.class_names)
    assert separated("random") > 3 * separated("contiguous")


def test_seed_moves_the_held_out_block(folder):
    index = scan_imagefolder(folder, verify=False)
    tests = {tuple(sorted(s.relpath for s in split_dataset(index, "contiguous", seed=seed).test))
             for seed in range(4)}
    assert len(tests) > 1


def test_limit_per_class_keeps_the_lowest_numbers(folder):
    index = scan_imagefolder(folder, limit_per_class=10, verify=False)
    assert index.counts() == {"A": 10, "B": 10}
    assert sorted(s.number for s in index.samples if s.label == "A") == list(range(1, 11))
