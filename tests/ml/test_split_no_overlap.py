"""Splits are disjoint, cover every image, and keep each patient on one side (ml.datasets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.datasets import Split, scan_cnmc, scan_imagefolder, split_dataset
from ml.errors import DatasetError


def _write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 20, 3), 90, dtype=np.uint8)).save(path)


@pytest.fixture()
def imagefolder(tmp_path) -> Path:
    for cls, n in (("Benign", 23), ("Early", 41), ("Pre", 37)):
        for i in range(1, n + 1):
            _write(tmp_path / cls / f"WBC-{cls}-{i:03d}.png")
    return tmp_path


@pytest.fixture()
def cnmc_folder(tmp_path) -> Path:
    rng = np.random.default_rng(3)
    for p in range(12):
        patient, label = (f"H{p}", "hem") if p % 2 else (str(p), "all")
        for cell in range(int(rng.integers(1, 6))):
            _write(tmp_path / "images" / f"UID_{patient}_{cell + 1}_{cell + 2}_{label}.png")
    return tmp_path


def _check_partition(index, split: Split) -> None:
    parts = [{s.relpath for s in split.part(name)} for name in ("train", "val", "test")]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    assert parts[0] | parts[1] | parts[2] == {s.relpath for s in index.samples}


@pytest.mark.parametrize("method", ["contiguous", "random"])
def test_imagefolder_splits_partition_the_data(imagefolder, method):
    index = scan_imagefolder(imagefolder, verify=False)
    split = split_dataset(index, method, val_fraction=0.2, test_fraction=0.2, seed=1)
    _check_partition(index, split)
    for name in index.class_names:  # every class appears in every part (stratified)
        for part in ("train", "val", "test"):
            assert any(s.label == name for s in split.part(part))


def test_auto_split_is_contiguous_without_patient_ids(imagefolder):
    assert split_dataset(scan_imagefolder(imagefolder, verify=False)).method == "contiguous"


def test_patient_split_keeps_patients_on_one_side(cnmc_folder):
    index = scan_cnmc(cnmc_folder, verify=False)
    for seed in range(5):
        split = split_dataset(index, "auto", val_fraction=0.2, test_fraction=0.2, seed=seed)
        assert split.method == "patient"
        _check_partition(index, split)
        owners: dict[str, set[str]] = {}
        for part in ("train", "val", "test"):
            for sample in split.part(part):
                owners.setdefault(sample.group, set()).add(part)
        assert all(len(parts) == 1 for parts in owners.values()), owners


def test_patient_split_needs_patient_ids(imagefolder):
    with pytest.raises(DatasetError, match="patient id"):
        split_dataset(scan_imagefolder(imagefolder, verify=False), "patient")


def test_split_round_trips_through_the_card_dict(imagefolder):
    index = scan_imagefolder(imagefolder, verify=False)
    split = split_dataset(index, "contiguous", seed=2)
    again = Split.from_dict(split.to_dict(), index)
    assert again.to_dict() == split.to_dict()


def test_stored_split_against_other_data_is_refused(imagefolder, tmp_path_factory):
    split = split_dataset(scan_imagefolder(imagefolder, verify=False), "random")
    other = tmp_path_factory.mktemp("other")
    for cls in ("Benign", "Early", "Pre"):
        _write(other / cls / "x-001.png")
    with pytest.raises(DatasetError, match="not in"):
        Split.from_dict(split.to_dict(), scan_imagefolder(other, verify=False))


@pytest.mark.realdata
def test_real_cnmc_patients_never_straddle(real_data):
    index = scan_cnmc(real_data / "cnmc_subset")
    split = split_dataset(index, "patient", seed=0)
    _check_partition(index, split)
    sides = {}
    for part in ("train", "val", "test"):
        for sample in split.part(part):
            assert sides.setdefault(sample.group, part) == part
    assert len(split.test) > 0 and len(split.val) > 0
