#!/usr/bin/env bash
# Train the blast-or-not cell model and check it on real single cells (not CI).
#
#   bench/train_cell_model.sh
#
# White cells are cropped from all4class with ml.segment (each crop labelled by its image's class:
# Early/Pre/Pro -> blast, Benign -> not_blast; the split is made on images before cropping), plus
# every pbc_subset class as not_blast. The model is then checked on the C-NMC subset (real single
# blasts and normal cells, never trained on). TIME_BUDGET (default 600 s) caps the training.
# The last line printed is the training summary JSON (val metrics and metrics.cnmc_check).
# The checkpoint goes to $OUT (git-ignored): never commit it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DATA_ROOT=${MARROWFIND_DATA_DIR:-../shared/data}
OUT=${OUT:-artifacts/bench/cell}
mkdir -p "$OUT"
start=$SECONDS
"$PY" -m ml train --task cell --data "$DATA_ROOT/all4class" --pbc "$DATA_ROOT/pbc_subset" \
  --cnmc "$DATA_ROOT/cnmc_subset" --arch efficientnet_lite0 --weights imagenet --img-size 96 \
  --epochs "${EPOCHS:-10}" --batch-size 64 --pixels-per-micron "${PIXELS_PER_MICRON:-3.0}" --seed "${SEED:-0}" \
  --time-budget "${TIME_BUDGET:-600}" --curve "$OUT/cell_curve.png" --out "$OUT/cell_model.pt" --quiet \
  >"$OUT/cell_train.json"
echo "cell model: trained and checked in $((SECONDS - start)) s" >&2
"$PY" - "$OUT/cell_model.pt" <<'PYEOF' >&2
import sys
from ml.checkpoint import load_checkpoint
_, card = load_checkpoint(sys.argv[1])
m = card.metrics
print(f"validation crops (n={m['n']}): accuracy {m['accuracy']:.4f}, kappa {m['kappa']:.4f}, "
      f"F1w {m['f1_weighted']:.4f}")
c = m.get("cnmc_check")
if c:
    print(f"C-NMC single cells (n={c['n']}): accuracy {c['accuracy']:.4f}, kappa {c['kappa']:.4f}, "
          f"ROC AUC {c['roc_auc']}")
print(f"training crops: {card.training['train_counts']}, normal cells: {card.training['normal_cells']}")
PYEOF
cat "$OUT/cell_train.json"
