"""Fold table and mean ± sd of the k-fold runs of bench/train_all4class.sh --folds K (not CI).

    python bench/kfold_summary.py --folds 5 --dir artifacts/bench/all4class/kfold5_128px baseline randomise

Reads ``<dir>/<recipe>_fold<i>_eval.json`` (written by ``python -m ml evaluate``), prints one row
per fold and recipe, a recipe comparison table, and last one JSON line: the first recipe's means at
the top level, every recipe under ``"recipes"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.metrics import mean_sd

BENIGN = "Benign"
COLUMNS = [  # (JSON key, column title)
    ("accuracy", "acc"), ("kappa", "kappa"), ("accuracy_shifted", "shifted"),
    ("accuracy_background_swap", "swap"), ("follows_background", "follows_bg"),
    ("accuracy_neutral_background", "neutral"), ("benign_recall", "benign_rec"),
    ("shortcut_baseline_accuracy", "border_base"),
]


def fold_figures(report: dict) -> dict:
    out = {key: report.get(key) for key, _ in COLUMNS}
    out["benign_recall"] = report.get("per_class", {}).get(BENIGN, {}).get("recall")
    return out


def summarise(rows: list[dict]) -> dict:
    summary: dict = {"folds": len(rows)}
    for key, _ in COLUMNS:
        mean, sd = mean_sd([r[key] for r in rows])
        summary[f"{key}_mean"] = mean
        summary[f"{key}_sd"] = sd
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("recipes", nargs="+")
    args = parser.parse_args(argv)

    def fmt(v):
        return "  n/a " if v is None else f"{v:6.3f}"

    header = f"{'recipe':<16}{'fold':>5} " + " ".join(f"{title:>11}" for _, title in COLUMNS)
    print(header)
    summaries: dict[str, dict] = {}
    for recipe in args.recipes:
        rows = []
        for fold in range(args.folds):
            path = args.dir / f"{recipe}_fold{fold}_eval.json"
            if not path.is_file():
                print(f"{recipe:<16}{fold:>5}  (missing {path})")
                continue
            row = fold_figures(json.loads(path.read_text()))
            rows.append(row)
            print(f"{recipe:<16}{fold:>5} " + " ".join(f"{fmt(row[key]):>11}" for key, _ in COLUMNS))
        if rows:
            summaries[recipe] = summarise(rows)
    print()
    print(f"{'recipe (mean±sd)':<22}" + " ".join(f"{title:>14}" for _, title in COLUMNS))
    for recipe, s in summaries.items():
        cells = []
        for key, _ in COLUMNS:
            m, sd = s[f"{key}_mean"], s[f"{key}_sd"]
            cells.append("n/a" if m is None else f"{m:.3f}±{sd:.3f}")
        print(f"{recipe + ' (' + str(s['folds']) + ' folds)':<22}" + " ".join(f"{c:>14}" for c in cells))
    if not summaries:
        print(json.dumps({"error": "no fold results"}))
        return 1
    first = summaries[next(iter(summaries))]
    top = {k: v for k, v in first.items()}
    top["accuracy_sd"] = first["accuracy_sd"]
    top["recipe"] = next(iter(summaries))
    top["recipes"] = summaries
    print(json.dumps(top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
