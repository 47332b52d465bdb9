"""Bad data set layouts fail early with a message that names the problem (ml.datasets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.datasets import scan_cnmc, scan_dataset, scan_imagefolder
from ml.errors import DatasetError


def _write_png(path: Path, value: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 24, 3), value, dtype=np.uint8)).save(path)
    return path


def test_missing_root_is_named(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        scan_imagefolder(tmp_path / "nope")


def test_root_without_class_folders(tmp_path):
    _write_png(tmp_path / "loose.png")
    with pytest.raises(DatasetError, match="no class sub-folders"):
        scan_imagefolder(tmp_path)


def test_empty_class_is_named(tmp_path):
    _write_png(tmp_path / "Benign" / "b-001.png")
    (tmp_path / "Pre").mkdir()
    with pytest.raises(DatasetError, match="no usable images.*Pre"):
        scan_imagefolder(tmp_path)


def test_single_class_is_refused(tmp_path):
    for i in range(3):
        _write_png(tmp_path / "Benign" / f"b-{i:03d}.png")
    with pytest.raises(DatasetError, match="only one class"):
        scan_imagefolder(tmp_path)


def test_unreadable_images_are_skipped_and_listed(tmp_path):
    for cls in ("a", "b"):
        for i in range(3):
            _write_png(tmp_path / cls / f"{cls}-{i:03d}.png")
    (tmp_path / "a" / "a-100.png").write_bytes(b"")                    # empty
    (tmp_path / "b" / "b-100.jpg").write_bytes(b"this is not a jpeg")   # not an image
    good = (tmp_path / "a" / "a-000.png").read_bytes()
    (tmp_path / "b" / "b-101.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "a" / "notes.txt").write_text("lab notes")

    index = scan_imagefolder(tmp_path)

    assert index.counts() == {"a": 3, "b": 3}
    skipped = dict(index.skipped)
    assert set(skipped) == {"a/a-100.png", "b/b-100.jpg", "b/b-101.png", "a/notes.txt"}
    assert all(reason for reason in skipped.values())
    assert index.summary()["n_skipped"] == 4


def test_class_with_only_unreadable_images_is_an_empty_class(tmp_path):
    _write_png(tmp_path / "a" / "a-001.png")
    _write_png(tmp_path / "a" / "a-002.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "b-001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match=r"no usable images.*\bb\b.*1 unreadable"):
        scan_imagefolder(tmp_path)


def test_requested_class_folder_missing(tmp_path):
    _write_png(tmp_path / "Benign" / "x-1.png")
    _write_png(tmp_path / "Early" / "x-1.png")
    with pytest.raises(DatasetError, match="missing.*Pro"):
        scan_imagefolder(tmp_path, class_names=["Benign", "Early", "Pro"])


def test_cnmc_names_parse_and_bad_names_are_listed(tmp_path):
    _write_png(tmp_path / "UID_H12_32_6_hem.png")
    _write_png(tmp_path / "UID_13_10_1_all.png")
    _write_png(tmp_path / "sub" / "UID_14_2_1_all.png")
    _write_png(tmp_path / "cell_without_label.png")
    index = scan_cnmc(tmp_path)
    assert index.class_names == ["hem", "all"]
    assert {(s.relpath, s.group, s.label) for s in index.samples} == {
        ("UID_H12_32_6_hem.png", "H12", "hem"),
        ("UID_13_10_1_all.png", "13", "all"),
        ("sub/UID_14_2_1_all.png", "14", "all"),
    }
    assert [path for path, _ in index.skipped] == ["cell_without_label.png"]


def test_cnmc_without_matching_files(tmp_path):
    _write_png(tmp_path / "a.png")
    with pytest.raises(DatasetError, match="no C-NMC images"):
        scan_cnmc(tmp_path)


def test_unknown_layout(tmp_path):
    with pytest.raises(DatasetError, match="unknown layout"):
        scan_dataset(tmp_path, "coco")
