#!/usr/bin/env bash
# The whole WSSS loop on the toy data for one seed, one command per stage (the README's commands):
#   classifier -> CAMs (train, val) -> seeds -> SEC -> SEC pseudo-labels -> affinity -> random-walk
#   pseudo-labels -> eval (train) -> final network on the better pseudo-labels -> eval (val, + loop table)
#
#   scripts/run_loop.sh 0                 # run=seed0 seed=0, every stage (a finished stage is skipped)
#   scripts/run_loop.sh 1 segtrain eval   # only some steps
#   LABELS=sec scripts/run_loop.sh 2      # the final network on these pseudo-labels (default: the better)
#   python scripts/seed_spread.py outputs/seed0 outputs/seed1 outputs/seed2   # the table over the seeds
#
# Extra Hydra overrides for every command: WSL_ARGS="paths.output_root=/tmp/o num_workers=0".
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?usage: scripts/run_loop.sh <seed> [steps...]}
shift
STEPS=${*:-train cams seeds sec labels affinity randomwalk eval_train segtrain eval_val}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
COMMON=(run=seed"$N" seed="$N" ${WSL_ARGS:-})
wsl() { echo "+ python -m wsl.run $* ${COMMON[*]}"; "$PY" -m wsl.run "$@" "${COMMON[@]}"; }

for step in $STEPS; do
  case $step in
    train) wsl stage=train ;;
    cams) wsl stage=cams stage.split=train && wsl stage=cams stage.split=val ;;
    seeds) wsl stage=seeds ;;
    sec) wsl stage=sec ;;
    labels) wsl stage=labels ;;
    affinity) wsl stage=affinity ;;
    randomwalk) wsl stage=randomwalk ;;
    eval_train) wsl stage=eval stage.split=train stage.task=segmentation stage.networks=[] ;;
    segtrain)
      labels=${LABELS:-best}
      if [ "$labels" = best ]; then  # the refiner whose pseudo-labels score higher on train
        labels=$("$PY" - "${COMMON[@]}" <<'PY'
import sys
from wsl.evaluation.loop import loop_figures
from wsl.layout import RunLayout
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
root = RunLayout(f"{args.get('paths.output_root', 'outputs')}/{args['run']}")
fig = loop_figures(root, args.get("cam", "gradcam"))
print(max(("sec", "randomwalk"), key=lambda r: fig[f"labels_{r}"] or -1.0))
PY
)
      fi
      wsl stage=segtrain stage.labels="$labels" ;;
    eval_val) wsl stage=eval stage.split=val stage.task=segmentation ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
