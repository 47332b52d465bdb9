"""write_imagefolder lays out <class>/<class>-0001.png for every subtype, reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.labels import SUBTYPES
from ml.synthetic import write_imagefolder


def test_layout_and_images(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "smears", n_per_class=2, seed=3, size=(64, 80))
    assert root == tmp_path / "smears"
    assert sorted(p.name for p in root.iterdir()) == sorted(SUBTYPES)
    for label in SUBTYPES:
        files = sorted((root / label).iterdir())
        assert [f.name for f in files] == [f"{label}-0001.png", f"{label}-0002.png"]
        with Image.open(files[0]) as image:
            assert image.mode == "RGB" and image.size == (80, 64)


def test_reproducible_and_seed_dependent(tmp_path: Path) -> None:
    a = write_imagefolder(tmp_path / "a", 1, seed=5, size=(64, 64))
    b = write_imagefolder(tmp_path / "b", 1, seed=5, size=(64, 64))
    c = write_imagefolder(tmp_path / "c", 1, seed=6, size=(64, 64))
    name = "Pro/Pro-0001.png"
    pixels = [np.asarray(Image.open(root / name)) for root in (a, b, c)]
    assert np.array_equal(pixels[0], pixels[1])
    assert not np.array_equal(pixels[0], pixels[2])


def test_more_images_keep_the_first_ones(tmp_path: Path) -> None:
    few = write_imagefolder(tmp_path / "few", 1, seed=2, size=(64, 64))
    many = write_imagefolder(tmp_path / "many", 3, seed=2, size=(64, 64))
    assert (few / "Early/Early-0001.png").read_bytes() == (many / "Early/Early-0001.png").read_bytes()


def test_needs_at_least_one_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_imagefolder(tmp_path, 0)
