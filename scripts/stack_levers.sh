#!/usr/bin/env bash
# The stack latency benchmark as shipped, then once per lever, each kept with its command, date and
# commit (scripts/record_result.py); `python -m ami_ros.docs` puts them on docs/results.md and in the
# README. Run on an idle machine: every other process takes the stack's cores. About 2 min a run.
#   bash scripts/stack_levers.sh            # SECONDS_PER_LAYOUT=30 by default
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1 MUJOCO_GL=${MUJOCO_GL:-egl}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((150 + $$ % 80))}
S=${SECONDS_PER_LAYOUT:-30}
PY=${PY:-.venv/bin/python}
export PATH="$PWD/.venv/bin:$PATH"
record() { # <name> <bench arguments...>
  local out=$1; shift
  echo "stack_levers: $out: ami-ros bench --stack --seconds $S --json $*"
  "$PY" scripts/record_result.py "$out" -- ami-ros bench --stack --seconds "$S" --json "$@"
}
mkdir -p docs/results/stack_levers
record docs/results/bench_stack.json
record docs/results/stack_levers/multi_threaded_executor.json --executor-threads 4
record docs/results/stack_levers/planner_one_thread.json --set planner_node.runtime.intra_op_threads=1
record docs/results/stack_levers/encoder_every_frame.json --set encoder_node.max_rate=0
record docs/results/stack_levers/encoder_two_threads.json --set encoder_node.runtime.intra_op_threads=2
record docs/results/stack_levers/camera_best_effort.json \
  --set "encoder_node.qos_overrides./camera/image_raw.subscription.reliability=best_effort"
"$PY" -m ami_ros.docs
