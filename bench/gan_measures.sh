#!/usr/bin/env bash
# The cGAN measured properly (not CI): classification accuracy score, per-class feature distances,
# and the --balance gan ablation over several seeds (mean ± sd).
#
#   bench/gan_measures.sh
#
# 1. `ml gan train` on the training part of the all4class contiguous split (seed 0), GAN_EPOCHS.
# 2. `ml gan measure`: CAS (efficientnet_lite0, ImageNet weights, trained on N_PER_CLASS synthetic
#    images per class only, tested on the real test split at 64 px) and per-class FID/KID on the
#    lite0 backbone's pooled features (real test vs synthetic, and real test vs real train as the floor).
# 3. `ml gan ablation --seeds $SEEDS`: per seed its own split rotation and cGAN, classifier with
#    --balance weights vs --balance gan, IMG_SIZE px, EPOCHS epochs; mean ± sd and the verdict
#    (helped only if the mean kappa gain exceeds its sd).
# Sized for the shared 2-core CPU; the last line printed is one JSON object with both parts.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DATA="${MARROWFIND_DATA_DIR:-../shared/data}/all4class"
OUT=${OUT:-artifacts/bench/gan_measures}
SEEDS=${SEEDS:-0 1 2}
mkdir -p "$OUT"
start=$SECONDS
if [[ ! -s "$OUT/gan.pt" ]]; then
  "$PY" -m ml gan train --data "$DATA" --out "$OUT/gan.pt" --epochs "${GAN_EPOCHS:-10}" --seed 0 \
    --grid-dir "$OUT/grids" --quiet >"$OUT/gan_train.json"
fi
echo "gan: trained in $((SECONDS - start)) s; grids in $OUT/grids" >&2
if [[ ! -s "$OUT/measure.json" ]]; then
  "$PY" -m ml gan measure --model "$OUT/gan.pt" --data "$DATA" --n-per-class "${N_PER_CLASS:-200}" \
    --cas-epochs "${CAS_EPOCHS:-3}" --json "$OUT/measure.json" --quiet >/dev/null
fi
echo "gan measure: $((SECONDS - start)) s" >&2
if [[ "${SKIP_ABLATION:-0}" != 1 && ! -s "$OUT/ablation_seeds.json" ]]; then
  # shellcheck disable=SC2086
  "$PY" -m ml gan ablation --data "$DATA" --out "$OUT/ablation" --arch efficientnet_lite0 --weights imagenet \
    --img-size "${IMG_SIZE:-64}" --epochs "${EPOCHS:-2}" --gan-epochs "${GAN_EPOCHS:-10}" --seeds $SEEDS \
    --json "$OUT/ablation_seeds.json" --quiet >/dev/null
fi
echo "gan measures + ablation: $((SECONDS - start)) s in all" >&2
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
m = json.loads((out / "measure.json").read_text())
print(f"CAS (train on synthetic only, test on real, {m['img_size']} px): accuracy {m['cas_accuracy']:.3f}, "
      f"kappa {m['cas_kappa']:.3f}; recall " + ", ".join(f"{k} {v:.2f}" for k, v in m["cas_per_class_recall"].items()),
      file=sys.stderr)
for name, d in m["feature_distance"].items():
    print(f"  {name:<7} FID {d['fid']:8.2f} (real-vs-real floor {d.get('fid_real_vs_real', float('nan')):8.2f})  "
          f"KID {d['kid']:.4f} (floor {d.get('kid_real_vs_real', float('nan')):.4f})", file=sys.stderr)
result = {"measure": m}
path = out / "ablation_seeds.json"
if path.is_file():
    a = json.loads(path.read_text())
    a.pop("per_seed_full", None)
    print(f"ablation over seeds {a['seeds']}: baseline kappa {a['baseline_kappa_mean']:.3f}±{a['baseline_kappa_sd']:.3f}, "
          f"gan kappa {a['gan_kappa_mean']:.3f}±{a['gan_kappa_sd']:.3f}, delta kappa "
          f"{a['delta_kappa_mean']:+.3f}±{a['delta_kappa_sd']:.3f}: {'helped' if a['helped'] else 'did not help'}",
          file=sys.stderr)
    result["ablation"] = {k: v for k, v in a.items() if k != "per_seed"}
print(json.dumps(result))
PYEOF
