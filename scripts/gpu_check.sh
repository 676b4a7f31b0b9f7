#!/usr/bin/env bash
# scripts/gpu_check.sh [REPORT] — what the CUDA and TensorRT execution providers do with the shipped
# model, on a machine with an NVIDIA GPU, in under 10 minutes; one JSON report (default
# runs/gpu_check.json): the machine (nvidia-smi, CPU), the providers onnxruntime offers, the parity
# of every graph in models/tabletop_arm on CUDA and TensorRT against CPU (max |diff| <= 1e-4, by
# `python -m ami_ros.runtime.parity`), `ami-ros bench --model models/tabletop_arm --json`, the stack
# latency benchmark `ami-ros bench --stack --json`, timestamps and the git commit.
#
# Without a GPU the same script runs its CPU path: the CUDA / TensorRT rows say "unavailable" (never
# a pass) and the benchmarks fill the CPU rows. CI runs that path in the venv `make test` built:
#   VENV=.venv STACK_SECONDS=3 scripts/gpu_check.sh runs/gpu_check-ci.json
#
# Environment:
#   VENV           venv to run in (default build/venv-gpu, made on first use by scripts/bootstrap.sh
#                  with ORT=onnxruntime-gpu and no training packages). Another VENV must be ready
#                  (`make setup VENV=...`): it is used as it is, nothing is installed into it.
#   ORT            onnxruntime distribution for the default venv (default onnxruntime-gpu); the
#                  default venv is made once: delete it to rebuild it after the requirements change
#   MODEL          model directory (default models/tabletop_arm)
#   STACK_SECONDS  seconds per layout for `ami-ros bench --stack` (default 20; 0 skips that step)
#   BUDGET_S       wall-clock budget for the measuring steps, bootstrap excluded (default 420)
#   TRT_CACHE_DIR  TensorRT engine cache shared by the steps (default: a folder beside the report)
# Exit code: 0 when every step ran and no graph failed parity; 1 otherwise, and also when
# nvidia-smi sees a GPU but CUDA or TensorRT was unavailable (a broken GPU set-up must not pass).
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_VENV=build/venv-gpu
VENV=${VENV:-$DEFAULT_VENV}
ORT=${ORT:-onnxruntime-gpu}
STACK_SECONDS=${STACK_SECONDS:-20}
BUDGET_S=${BUDGET_S:-420}
MODEL=${MODEL:-models/tabletop_arm}
REPORT=${1:-${GPU_CHECK_OUT:-runs/gpu_check.json}}
WORK="${REPORT%.json}.d"
TRT_CACHE_DIR=${TRT_CACHE_DIR:-$WORK/trt_cache}
# Loopback-only DDS on a domain of this run's own (the stack benchmark starts ROS processes).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1 ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((1 + $$ % 100))}
export MUJOCO_GL=${MUJOCO_GL:-egl}

t0=$SECONDS
if [ ! -f "$VENV/.ami_ros-installed" ]; then
  if [ "$VENV" != "$DEFAULT_VENV" ]; then
    echo "gpu_check: $VENV is not a ready venv (no $VENV/.ami_ros-installed): make setup VENV=$VENV" >&2
    exit 2
  fi
  echo "gpu_check: creating $VENV with $ORT"
  VENV=$VENV ORT=$ORT TRAIN_DEPS=0 bash scripts/bootstrap.sh
  touch "$VENV/.ami_ros-installed"
fi
setup_s=$((SECONDS - t0))
PY=$VENV/bin/python

rm -rf "$WORK" && mkdir -p "$WORK" "$TRT_CACHE_DIR"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
deadline=$((SECONDS + BUDGET_S))

# step NAME CAP_S COMMAND...: stdout to $WORK/NAME.out, stderr to NAME.err, "rc seconds" to NAME.rc;
# the command gets at most CAP_S seconds and never more than what is left of the budget.
step() {
  local name=$1 cap=$2 left=$((deadline - SECONDS)) s=$SECONDS rc=0
  shift 2
  ((left < cap)) && cap=$left
  if ((cap <= 0)); then
    echo "124 0" >"$WORK/$name.rc"
    echo "gpu_check: $name: no time left in BUDGET_S=$BUDGET_S" | tee "$WORK/$name.err" >&2
    return
  fi
  echo "gpu_check: $name (at most ${cap} s): $*"
  timeout --kill-after=10 "$cap" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  echo "$rc $((SECONDS - s))" >"$WORK/$name.rc"
  ((rc == 0)) || { echo "gpu_check: $name exited with $rc; its stderr ends:" >&2; tail -5 "$WORK/$name.err" >&2; }
}

step parity 240 "$PY" -m ami_ros.runtime.parity --model "$MODEL" --trt-cache-dir "$TRT_CACHE_DIR"
step bench 240 "$VENV/bin/ami-ros" bench --model "$MODEL" --json --trt-cache-dir "$TRT_CACHE_DIR" \
  --output "$WORK/runs"
if [ "$STACK_SECONDS" != 0 ]; then
  step stack $((120 + 4 * STACK_SECONDS)) "$VENV/bin/ami-ros" bench --stack --json --seconds "$STACK_SECONDS" \
    --output "$WORK/runs"
fi

"$PY" - "$WORK" "$REPORT" "$started" "$setup_s" "$VENV" "$STACK_SECONDS" <<'PY'
"""Assemble the report from the steps' outputs; exit 1 when it is not a clean pass."""
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort

sys.path.insert(0, "scripts")
from record_result import commit, last_json

work, report_path, started, setup_s, venv, stack_seconds = sys.argv[1:]
work = Path(work)


def output(*args):
    """A command's stdout, or None when it is missing or fails."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def step(name):
    rc_file = work / f"{name}.rc"
    if not rc_file.exists():
        return {"ran": False}
    rc, seconds = (int(x) for x in rc_file.read_text().split())
    result = {"ran": True, "exit_code": rc, "seconds": seconds, "report": None}
    try:
        result["report"] = last_json((work / f"{name}.out").read_text())
    except SystemExit:  # it printed no JSON
        pass
    if rc != 0 or result["report"] is None:
        result["stderr_tail"] = (work / f"{name}.err").read_text(errors="replace")[-3000:]
    return result


def installed(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def source():
    try:
        return commit()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git checkout)"


cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
           platform.processor())
nvidia_smi = output("nvidia-smi") if shutil.which("nvidia-smi") else None
query = ["--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"]
gpus = (output("nvidia-smi", *query) or "").splitlines() if nvidia_smi else []
steps = {name: step(name) for name in ("parity", "bench", "stack")}
if stack_seconds == "0":
    steps["stack"] = {"ran": False, "skipped": "STACK_SECONDS=0"}
parity = (steps["parity"]["report"] or {}).get("results", []) if steps["parity"]["ran"] else []
report = {
    "started": started,
    "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "commit": source(),
    "machine": {
        "cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "gpus": gpus, "nvidia_smi": nvidia_smi,
    },
    "venv": venv,
    "setup_s": int(setup_s),
    "onnxruntime": {
        "version": ort.__version__,
        "distributions": {d: installed(d) for d in ("onnxruntime", "onnxruntime-gpu") if installed(d)},
        "available_providers": ort.get_available_providers(),
    },
    "parity": parity,
    "steps": steps,
}
Path(report_path).parent.mkdir(parents=True, exist_ok=True)
Path(report_path).write_text(json.dumps(report, indent=2) + "\n")

print(f"gpu_check: wrote {report_path}")
for row in parity:
    diff = "" if row["max_abs_diff"] is None else f" max |diff| {row['max_abs_diff']:.1e}"
    print(f"  parity {row['graph']:<18} {row['provider']:<26} {row['status']}{diff} {row['detail']}")
bench = (steps["bench"].get("report") or {}).get("model", {}).get("providers", {})
for provider, figures in bench.items():
    times = {k: v for k, v in figures.items() if "_ms" in k} or figures
    ran_on = set(figures.get("sessions_ran_on", {}).values()) - {provider}
    print(f"  bench {provider}: {times}" + (f" (ran on {', '.join(sorted(ran_on))})" if ran_on else ""))
problems = [f"step {n} failed" for n, s in steps.items() if s["ran"] and (s["exit_code"] or s["report"] is None)]
problems += [f"parity {r['graph']} on {r['provider']}: {r['status']}" for r in parity
             if r["status"] in ("fail", "error") or (gpus and r["status"] == "unavailable")]
problems += [] if parity else ["no parity results"]
for problem in problems:
    print(f"gpu_check: {problem}")
sys.exit(1 if problems else 0)
PY
