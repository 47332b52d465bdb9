"""Real smears and marrow sections: counts agree with the published annotations within a tolerance.

A handful of images only (the full figures come from ``bench/counting.py``):
``cbc/Testing`` against its Pascal VOC boxes, ``mbm`` against its nucleus dot maps.
BCCD leaves some red cells unboxed, so the red-cell tolerance is wide; the
white-cell count is expected exact on nearly every image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ml.imageio import load_image
from ml.segment import SegmentParams, segment

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from counting import cbc_pairs, dot_count, mbm_pairs, voc_counts

pytestmark = pytest.mark.realdata

N_CBC = 8
MBM_NAMES = ("BM_GRAZ_HE_0003_01_000.png", "BM_GRAZ_HE_0006_01_002.png", "BM_GRAZ_HE_0020_01_001.png")


def test_cbc_testing_counts(real_data: Path) -> None:
    pairs = cbc_pairs(real_data, ["Testing"])[:N_CBC]
    if len(pairs) < N_CBC:
        pytest.skip(f"cbc/Testing under {real_data} has fewer than {N_CBC} images")
    wbc_exact, rbc_rel = [], []
    for image_path, xml_path in pairs:
        truth = voc_counts(xml_path)
        counts = segment(load_image(image_path)).counts
        wbc_exact.append(counts["wbc"] == truth["wbc"])
        rbc_rel.append(abs(counts["rbc"] - truth["rbc"]) / truth["rbc"])
    assert sum(wbc_exact) >= N_CBC - 1, f"white-cell counts exact on only {sum(wbc_exact)} of {N_CBC}"
    assert float(np.mean(rbc_rel)) <= 0.35, f"mean red-cell relative error {np.mean(rbc_rel):.2f}"


def test_mbm_nuclei_counts(real_data: Path) -> None:
    pairs = [p for p in mbm_pairs(real_data) if p[0].name in MBM_NAMES]
    if len(pairs) < len(MBM_NAMES):
        pytest.skip(f"mbm images {MBM_NAMES} not all under {real_data}")
    for image_path, dots_path in pairs:
        truth = dot_count(dots_path)
        counted = segment(load_image(image_path), SegmentParams(mode="tissue")).counts["nucleus"]
        assert abs(counted - truth) <= 0.2 * truth, f"{image_path.name}: {counted} nuclei counted, {truth} dots"
