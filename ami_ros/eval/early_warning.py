"""Does surprise warn of faults? A fault-injection benchmark on the embedded robot (no ROS).

    python -m ami_ros.eval.early_warning [--normal 100] [--per-fault 20] [--steps 60] [--out report.json]

Normal episodes: the arm moves towards a random reach goal with noisy, limited joint-delta
commands (what the world model was trained on), one per control period of the model. Fault
episodes are the same with one fault injected at a random tick:

- block_knock: the block is moved 6-12 cm by an unseen force (one event; its tick and the next
  are faulty);
- joint_stall: one joint stops following its commands (an obstacle);
- command_dropped: no command is executed (the arm holds);
- frozen_camera: the camera repeats its last frame;
- lighting: the image darkens to 55% and tints;
- occlusion: a dark object covers a quarter of the view.

Scores per tick, all "higher = more anomalous": `surprise` (what predictor_node publishes: mean
squared error of the forecast image tokens against the latent that arrived), `surprise_token_max`
(the worst image token), `surprise_z` (the worst token's error in standard deviations of that
token's error on normal ticks — normalised by the model's own error), `surprise_joints` (error of
the forecast proprio token: the joints the model expected the command to reach), `stillness`
(joint motion per unit of image-token change: an image that stops changing while the arm moves),
`scene` (forecast error where the forecast expected no change: `Surprise.scene`), the mean of the
last 3 ticks of `surprise`, `surprise_joints` and `stillness` (`_w3`: predictor_node likewise warns
only after `surprise_window` forecasts in a row), the largest `scene` of the last 2 ticks
(`scene_max2`: a knock is one event, and the forecast after it already starts from the knocked
frame, so the score holds its peak for the tick after it, which is labelled faulty too), and two
baselines that need no model: `frame_diff` (mean absolute pixel change since the last frame) and
`tracking_error` (largest |last commanded target - measured joint position|).

Reported per fault and score: AUROC of faulty against normal ticks; with each score's threshold
set to the largest value on the normal evaluation ticks (no false alarm in that many minutes of
normal operation), the fraction of fault episodes flagged within 1 s and the mean delay.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from ami_ros.config import SimConfig
from ami_ros.core.forecaster import Forecaster, Surprise
from ami_ros.core.preprocess import resize_frame
from ami_ros.runtime import WorldModelRuntime, default_model_dir, load_model
from ami_ros.sim import ArmSim

FAULTS = ("block_knock", "joint_stall", "command_dropped", "frozen_camera", "lighting", "occlusion")
WINDOW = 3
"""Windowed scores average the last WINDOW ticks (a persistent fault adds up; noise does not)."""
WINDOWED = ("surprise", "surprise_joints", "stillness")
PEAK = 2
"""Peak-held scores take the largest of the last PEAK ticks (one event, held for the next tick)."""
PEAKED = ("scene",)
SCORES = (
    "surprise",
    "surprise_token_max",
    "surprise_z",
    "surprise_joints",
    "stillness",
    "scene",
    *(f"{s}_w{WINDOW}" for s in WINDOWED),
    *(f"{s}_max{PEAK}" for s in PEAKED),
    "frame_diff",
    "tracking_error",
)


@dataclasses.dataclass
class Tick:
    faulty: bool
    surprise: Surprise | None  # None without a forecast for this tick
    frame_diff: float
    tracking_error: float


def run_episode(
    sim: ArmSim, rt: WorldModelRuntime, seed: int, steps: int, fault: str | None, rng: np.random.Generator
) -> tuple[list[Tick], int]:
    """One episode; returns its ticks and the fault's tick (-1 for a normal episode).

    Surprise comes from `Forecaster`, the object predictor_node runs, fed the same latents and the
    same commanded targets.
    """
    sim.reset(seed, "reach")
    lim = rt.action_limits
    period = float(rt.manifest["actions"]["control_period_s"])
    forecaster = Forecaster(rt, period)
    goal_q = sim.goal.arm_qpos
    fault_tick = int(rng.integers(steps // 4, 3 * steps // 4)) if fault else -1
    stalled = int(rng.integers(0, len(lim)))
    physics_steps = round(period / sim.physics_dt)
    ticks: list[Tick] = []
    prev_small = prev_target = frozen = None
    for t in range(steps):
        active = fault is not None and t >= fault_tick
        if fault == "block_knock" and t == fault_tick:
            pose = sim.state().block_pose.copy()
            angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.06, 0.12)
            pose[:2] += dist * np.array([np.cos(angle), np.sin(angle)])
            sim.set_state(block_pose=pose)
        frame = sim.render()
        if active and fault == "frozen_camera":
            frozen = frame if frozen is None else frozen
            frame = frozen
        elif active and fault == "lighting":
            frame = np.clip(frame * np.array([0.55, 0.5, 0.65]), 0, 255).astype(np.uint8)
        elif active and fault == "occlusion":
            frame = frame.copy()
            h, w = frame.shape[:2]
            frame[h // 4 : 3 * h // 4, w // 2 :] = 40
        q = sim.state().qpos
        small = resize_frame(frame, rt.image_size)
        latent, _ = rt.encode(small, q.astype(np.float32))
        surprise = forecaster.observe(t * period, latent)
        diff = float(np.mean(np.abs(small.astype(float) - prev_small))) if prev_small is not None else 0.0
        track = float(np.max(np.abs(prev_target - q))) if prev_target is not None else 0.0
        faulty = active and (fault != "block_knock" or t <= fault_tick + 1)
        ticks.append(Tick(faulty, surprise, diff, track))
        # the normal operator: towards the goal, noisy, within the model's action limits
        action = np.clip(0.5 * (goal_q - q) + rng.normal(0, 0.35, len(lim)) * lim, -lim, lim)
        target = np.clip(q + action, sim.lower, sim.upper)  # what the controller commands
        forecaster.forecast(target)
        if active and fault == "command_dropped":
            sim.hold()
        elif active and fault == "joint_stall":  # the obstacle: one joint cannot follow
            sim.command(np.where(np.arange(len(lim)) == stalled, q, target))
        else:
            sim.command(target)
        prev_small, prev_target = small.astype(float), target
        sim.step(physics_steps)
    return ticks, fault_tick


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a faulty tick > score of a normal tick), ties counted half (Mann-Whitney U)."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    i = 0
    while i < len(both):  # average ranks over ties
        j = i
        while j + 1 < len(both) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def scores_of(tick: Tick, mu: np.ndarray, sd: np.ndarray) -> dict[str, float]:
    assert tick.surprise is not None
    e = tick.surprise.tokens
    return {
        "surprise": tick.surprise.image,
        "surprise_token_max": float(e.max()),
        "surprise_z": float(np.max((e - mu) / sd)),
        "surprise_joints": tick.surprise.joints,
        "stillness": tick.surprise.stillness,
        "scene": tick.surprise.scene,
        "frame_diff": tick.frame_diff,
        "tracking_error": tick.tracking_error,
    }


def episode_scores(ticks: list[Tick], mu: np.ndarray, sd: np.ndarray) -> list[dict[str, float] | None]:
    """Every score of every tick (None for the first tick: no forecast yet), windowed and peak-held
    ones included."""
    out = [scores_of(t, mu, sd) if t.surprise is not None else None for t in ticks]
    for i, scores in enumerate(out):
        if scores is not None:
            recent = [o for o in out[max(0, i - WINDOW + 1) : i + 1] if o is not None]
            for s in WINDOWED:
                scores[f"{s}_w{WINDOW}"] = float(np.mean([o[s] for o in recent]))
            for s in PEAKED:
                scores[f"{s}_max{PEAK}"] = float(max(o[s] for o in recent[-PEAK:]))
    return out


def evaluate(
    normal: list[list[Tick]], faulted: dict[str, list[tuple[list[Tick], int]]], period: float
) -> dict:
    """Calibrate on the first half of the normal episodes, evaluate on the rest and the faults
    (`period`: the control period, s, one tick)."""
    calib, held = normal[: len(normal) // 2], normal[len(normal) // 2 :]
    errs = np.stack([t.surprise.tokens for ep in calib for t in ep if t.surprise is not None])
    mu, sd = errs.mean(axis=0), errs.std(axis=0) + 1e-9
    neg = {s: [] for s in SCORES}
    for ep in held:
        for scores in episode_scores(ep, mu, sd):
            for s, v in (scores or {}).items():
                neg[s].append(v)
    neg_arr = {s: np.array(v) for s, v in neg.items()}
    threshold = {s: float(v.max()) for s, v in neg_arr.items()}
    n_normal_ticks = len(neg_arr["surprise"])
    report: dict = {
        "normal_ticks_evaluated": n_normal_ticks,
        "normal_minutes_evaluated": round(n_normal_ticks * period / 60, 1),
        "thresholds": threshold,
        "faults": {},
    }
    for fault, episodes in faulted.items():
        pos = {s: [] for s in SCORES}
        flagged = {s: [] for s in SCORES}
        for ticks, t_f in episodes:
            series = episode_scores(ticks, mu, sd)
            for tick, scores in zip(ticks, series, strict=True):
                if tick.faulty and scores is not None:
                    for s, v in scores.items():
                        pos[s].append(v)
            for s in SCORES:  # first tick at or after the fault above the no-false-alarm threshold
                hits = [
                    i - t_f
                    for i in range(t_f, min(len(ticks), t_f + round(1.0 / period)))
                    if (series[i] or {}).get(s, -np.inf) > threshold[s]
                ]
                flagged[s].append(hits[0] if hits else None)
        report["faults"][fault] = {
            s: {
                "auroc": round(auroc(np.array(pos[s]), neg_arr[s]), 3),
                "flagged_within_1s": round(np.mean([f is not None for f in flagged[s]]), 2),
                "mean_delay_s": (
                    round(period * float(np.mean([f for f in flagged[s] if f is not None])), 2)
                    if any(f is not None for f in flagged[s])
                    else None
                ),
            }
            for s in SCORES
        }
    return report


def print_report(report: dict) -> None:
    print(
        f"normal operation evaluated: {report['normal_ticks_evaluated']} ticks "
        f"({report['normal_minutes_evaluated']} min); thresholds = the largest normal value "
        "(no false alarm in that time)"
    )
    print("AUROC (faulty vs normal ticks) | flagged within 1 s at the no-false-alarm threshold")
    print(f"{'fault':>16} " + " ".join(f"{s:>20}" for s in SCORES))
    for fault, per in report["faults"].items():
        cells = [f"{per[s]['auroc']:.3f} | {per[s]['flagged_within_1s']:.0%}" for s in SCORES]
        print(f"{fault:>16} " + " ".join(f"{c:>20}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: shipped)")
    parser.add_argument("--normal", type=int, default=100, help="normal episodes (half calibrate)")
    parser.add_argument("--per-fault", type=int, default=20, help="episodes per fault kind")
    parser.add_argument("--steps", type=int, default=60, help="ticks of 0.1 s per episode")
    parser.add_argument("--seed", type=int, default=300_000)
    parser.add_argument("--out", type=Path, help="write the report as JSON")
    args = parser.parse_args(argv)
    rt = load_model(args.model or default_model_dir(), graphs=("encoder.onnx", "predictor.onnx"))
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    with ArmSim(SimConfig(task="reach")) as sim:
        normal = [run_episode(sim, rt, args.seed + i, args.steps, None, rng)[0] for i in range(args.normal)]
        faulted = {
            fault: [
                run_episode(sim, rt, args.seed + 10_000 * (k + 1) + i, args.steps, fault, rng)
                for i in range(args.per_fault)
            ]
            for k, fault in enumerate(FAULTS)
        }
    report = evaluate(normal, faulted, float(rt.manifest["actions"]["control_period_s"]))
    report["wall_s"] = round(time.time() - t0, 1)
    report["episodes"] = {"normal": args.normal, "per_fault": args.per_fault, "steps": args.steps}
    print_report(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
