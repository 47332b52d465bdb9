"""Class-dependent morphology: blasts are larger, more irregular, with a higher N:C ratio than mature lymphocytes."""

from __future__ import annotations

import numpy as np
from skimage import measure

from ml.synthetic import make_smear


def white_cell_features(label: str, seeds: range) -> dict[str, float]:
    areas, solidities, nc_ratios = [], [], []
    for seed in seeds:
        smear = make_smear(seed, label, (256, 256), n_wbc=1)
        (wbc_id,) = [i for i, kind in smear.kinds.items() if kind == "wbc"]
        cell = smear.cell_labels == wbc_id
        blue_minus_green = smear.image[..., 2].astype(int) - smear.image[..., 1].astype(int)
        nucleus = cell & (blue_minus_green > 60)
        nucleus = measure.label(nucleus)
        biggest = nucleus == (np.argmax(np.bincount(nucleus.ravel())[1:]) + 1)
        areas.append(cell.sum() / smear.pixels_per_micron**2)
        solidities.append(measure.regionprops(biggest.astype(np.uint8))[0].solidity)
        nc_ratios.append(biggest.sum() / cell.sum())
    return {"area_um2": float(np.mean(areas)), "solidity": float(np.mean(solidities)), "nc": float(np.mean(nc_ratios))}


def test_subtypes_differ_in_size_and_nuclear_shape() -> None:
    seeds = range(6)
    benign, early, pre, pro = (white_cell_features(label, seeds) for label in ("Benign", "Early", "Pre", "Pro"))
    # size grows from mature lymphocytes to pro-B blasts
    assert benign["area_um2"] < early["area_um2"] < pre["area_um2"] < pro["area_um2"]
    # nuclear outline: round in lymphocytes and early blasts, irregular in Pro
    assert pro["solidity"] < pre["solidity"] < early["solidity"]
    # blasts of the early type have the highest N:C ratio, pro-B the lowest of the blasts
    assert early["nc"] > pro["nc"]
