#!/usr/bin/env bash
# Does topping up minority classes with cGAN samples help? (not CI)
#
#   bench/gan_ablation.sh
#
# 1. `python -m ml gan train` on the *training* part of the all4class contiguous split (seed 0):
#    the GAN never sees a validation or test image. Writes one sample-grid PNG per class.
# 2. `python -m ml gan ablation` trains efficientnet_lite0 (ImageNet weights) twice on that same
#    split, --balance weights vs --balance gan (Benign, the smallest class, topped up to the size of
#    the largest with GAN samples), and compares both on the test part.
# Smaller than bench/train_all4class.sh so both arms fit in ~15 minutes of the 2-core CPU:
# IMG_SIZE 128, EPOCHS 4, GAN_EPOCHS 20. The last line printed is the ablation JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DATA="${MARROWFIND_DATA_DIR:-../shared/data}/all4class"
OUT=${OUT:-artifacts/bench/gan_ablation}
SEED=${SEED:-0}
mkdir -p "$OUT"
start=$SECONDS
"$PY" -m ml gan train --data "$DATA" --out "$OUT/gan.pt" --epochs "${GAN_EPOCHS:-20}" --seed "$SEED" \
  --grid-dir "$OUT/grids" --quiet >"$OUT/gan_train.json"
echo "gan: trained in $((SECONDS - start)) s; grids: $(ls "$OUT/grids" | tr '\n' ' ')" >&2
"$PY" -m ml gan ablation --data "$DATA" --out "$OUT" --gan-model "$OUT/gan.pt" --arch efficientnet_lite0 \
  --weights imagenet --img-size "${IMG_SIZE:-128}" --epochs "${EPOCHS:-4}" --seed "$SEED" \
  --json "$OUT/ablation.json" --quiet >/dev/null
echo "gan ablation: $((SECONDS - start)) s in all" >&2
"$PY" - "$OUT/ablation.json" <<'PYEOF' >&2
import json, sys
r = json.load(open(sys.argv[1]))
print(f"split {r['split']} {r['split_sizes']}")
for arm in ("baseline", "gan"):
    a = r[arm]
    recall = ", ".join(f"{k} {v:.3f}" for k, v in a["per_class_recall"].items())
    print(f"{arm:8s} (--balance {a['balance']}): accuracy {a['accuracy']:.4f}, kappa {a['kappa']:.4f}, "
          f"F1w {a['f1_weighted']:.4f}; recall: {recall}")
print(f"delta accuracy {r['delta_accuracy']:+.4f}, delta kappa {r['delta_kappa']:+.4f}: "
      f"{'helped' if r['helped'] else 'did not help'}")
PYEOF
cat "$OUT/ablation.json"
