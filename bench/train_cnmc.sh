#!/usr/bin/env bash
# Smoke check of the binary (ALL blast vs normal) model on the small C-NMC subset (not CI).
#
# 60 single-cell images from ~30 patients: the split is by patient (no patient's cells on both
# sides), so the test part holds only a handful of cells and its figures are a smoke check, not a
# result. The last line printed is the evaluate JSON. Checkpoints go to $OUT (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DATA="${MARROWFIND_DATA_DIR:-../shared/data}/cnmc_subset"
OUT=${OUT:-artifacts/bench/cnmc}
mkdir -p "$OUT"
start=$SECONDS
"$PY" -m ml train --data "$DATA" --layout cnmc --split patient --arch efficientnet_lite0 --weights imagenet \
  --img-size "${IMG_SIZE:-224}" --epochs "${EPOCHS:-15}" --batch-size 16 --lr 1e-3 --balance weights \
  --val-fraction 0.2 --test-fraction 0.2 --patience 6 --seed "${SEED:-0}" \
  --curve "$OUT/cnmc_curve.png" --out "$OUT/cnmc.pt" >"$OUT/cnmc_train.json"
"$PY" -m ml evaluate --model "$OUT/cnmc.pt" --data "$DATA" --layout cnmc --split test --plots "$OUT/cnmc_plots" \
  --json "$OUT/cnmc_eval.json" --quiet >/dev/null
echo "cnmc: train + evaluate took $((SECONDS - start)) s" >&2
"$PY" -c "import json,sys; from ml.evaluate import format_report; print(format_report(json.load(open(sys.argv[1]))), file=sys.stderr); print(json.dumps(json.load(open(sys.argv[1]))))" "$OUT/cnmc_eval.json"
