"""--folds K --fold i: contiguous-block k-fold; every image is tested exactly once over the folds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.datasets import scan_imagefolder, split_dataset
from ml.errors import DatasetError


@pytest.fixture()
def folder(tmp_path) -> Path:
    for cls, n in (("A", 53), ("B", 40)):
        for i in range(1, n + 1):
            path = tmp_path / cls / f"WBC-{cls}-{i:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)).save(path)
    return tmp_path


def test_the_test_blocks_partition_each_class_into_contiguous_runs(folder):
    index = scan_imagefolder(folder, verify=False)
    tested: Counter = Counter()
    for fold in range(5):
        split = split_dataset(index, folds=5, fold=fold, val_fraction=0.15)
        assert split.method == f"kfold-{fold}-of-5"
        parts = [{s.relpath for s in split.part(p)} for p in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert sum(map(len, parts)) == len(index.samples)
        for cls in ("A", "B"):
            numbers = sorted(s.number for s in split.test if s.label == cls)
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # one run
            n_class = sum(s.label == cls for s in index.samples)
            assert abs(len(numbers) - n_class / 5) <= 1
            val_numbers = sorted(s.number for s in split.val if s.label == cls)
            assert val_numbers and len(val_numbers) == round(0.15 * n_class)
        tested.update(s.relpath for s in split.test)
    assert set(tested) == {s.relpath for s in index.samples}
    assert set(tested.values()) == {1}


def test_a_fold_outside_the_folds_is_refused(folder):
    index = scan_imagefolder(folder, verify=False)
    with pytest.raises(DatasetError, match="--fold"):
        split_dataset(index, folds=5, fold=5)
