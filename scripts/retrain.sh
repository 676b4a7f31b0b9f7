#!/usr/bin/env bash
# The shipped model's full retrain, timed stage by stage (the training benchmark):
#   collect (JOBS worker processes) -> train end to end (config/train.yaml)
#   -> train-pose -> train the predictor on cached latents (config/train_predictor.yaml) -> export
#   -> train-slot (the scene slot and its forecast, beside the exported model).
# Each stage resumes or is skipped when its output is already there, so a killed retrain is
# started again with the same command; the time of a killed attempt is not counted. Writes
# $OUT/retrain.json (seconds per stage, total) and prints it.
# Environment: OUT (default runs/retrain), EPISODES (800), JOBS (collect's worker processes, 2),
# THREADS (torch threads per training process, 2: the stages run one after another; 1 where the
# cores are shared), PRECISION (train-pose's, auto: bf16 where the CPU computes it natively; the
# training stages take theirs from their YAML), POSE_EPOCHS (6), MODEL (default $OUT/model;
# models/tabletop_arm ships), RESULT (also write the report there, e.g. docs/results/retrain.json),
# RETRAIN_NOTE (what else shared the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1 MUJOCO_GL=${MUJOCO_GL:-egl}
OUT=${OUT:-runs/retrain}
EPISODES=${EPISODES:-800}
JOBS=${JOBS:-2}
THREADS=${THREADS:-2}
PRECISION=${PRECISION:-auto}
POSE_EPOCHS=${POSE_EPOCHS:-6}
MODEL=${MODEL:-$OUT/model}
AMI=${AMI:-.venv/bin/ami-ros}
mkdir -p "$OUT"
TIMES="$OUT/stage_times.tsv"
touch "$TIMES"

stage() {  # stage NAME DONE_FILE COMMAND...: run COMMAND unless DONE_FILE exists; record its seconds
  local name=$1 done_file=$2
  shift 2
  if [ -n "$done_file" ] && [ -e "$done_file" ]; then
    echo "retrain: $name already done ($done_file)"
    return
  fi
  echo "retrain: $name: $*"
  local t0
  t0=$(date +%s%N)
  "$@"
  printf '%s\t%s\n' "$name" "$((($(date +%s%N) - t0) / 1000000))" >>"$TIMES"  # ms
}

with_threads() {  # a training YAML with train.num_threads set, beside the run
  local src=$1 dst=$OUT/$(basename "$1")
  sed "s/^\(  num_threads:\).*/\1 $THREADS/" "$src" >"$dst"
  echo "$dst"
}

stage collect "$OUT/data/collect_summary.json" \
  "$AMI" collect --episodes "$EPISODES" --jobs "$JOBS" --out "$OUT/data"
stage train "$OUT/train/metrics.json" \
  "$AMI" train --config "$(with_threads config/train.yaml)" --data "$OUT/data" --out "$OUT/train" --resume
stage train-pose "$OUT/pose/metrics.json" \
  "$AMI" train-pose --checkpoint "$OUT/train/checkpoint.pt" --data "$OUT/data" --out "$OUT/pose" \
  --epochs "$POSE_EPOCHS" --precision "$PRECISION"
stage train-predictor "$OUT/predictor/metrics.json" \
  "$AMI" train --config "$(with_threads config/train_predictor.yaml)" --data "$OUT/data" \
  --init-checkpoint "$OUT/pose/checkpoint.pt" --out "$OUT/predictor" --resume
stage export "" \
  "$AMI" export --checkpoint "$OUT/predictor/checkpoint.pt" --out "$MODEL" --data "$OUT/data"
stage train-slot "" \
  "$AMI" train-slot --model "$MODEL" --data "$OUT/data" --work-dir "$OUT/slot"

.venv/bin/python scripts/retrain_report.py "$OUT" "${RESULT:-}" "${RETRAIN_NOTE:-}"
