"""`ami-ros demo`: the embedded robot and the ami_ros node graph over loopback DDS.

sim_node starts as a process; the stack runs twice in one demo, so their latencies are measured
on the same machine in the same minute: `separate` (encoder_node, predictor_node and planner_node
as three processes) and `one_process` (the same three nodes in one executor: `ami_stack`). Both
use the embedded arm's robot config (config/robots/tabletop_arm.yaml); the planner takes the sim's
goal images as its goals (sim/goal_image remapped to ami/goal_image). A driver node here starts each
episode by setting sim_node's `seed` and `sim.task` parameters (one reset, a new goal image) and
watches: ami/progress for energy and latency, the sim's ground-truth poses for the outcome, the
camera for a GIF of each task (its first episode that ends at the goal, else its first). Ground
truth only measures; the stack never sees it.

Stamps are wall time (sim_node `publish_clock` off, the stack's use_sim_time off), so the planner's
camera-stamp-to-command latency is measured across processes on one clock.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ami_ros.config import SimConfig
from ami_ros.core.trace import read_events, stage_latencies, stage_percentiles
from ami_ros.eval.closed_loop import task_distance
from ami_ros.paths import share_file
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.ros.bench_stack import stage_rows, trace_params
from ami_ros.sim import ArmSim

CAMERA = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)


def robot_config() -> Path:
    return share_file("config", "robots", "tabletop_arm.yaml")


CAMERA_HZ = 10.0
"""The sim's camera rate here: the control rate, as config/sim_node.yaml has it for sim.launch.py
(a 30 Hz render is two frames in three that encoder_node's max_rate skips, on the stack's cores)."""

STACKS = ("separate", "one_process")
"""How the stack's three nodes run: three processes, or one process (`ami_ros.ros.stack`)."""


@dataclass
class Episode:
    seed: int
    task: str
    stack: str = "separate"
    start_m: float = float("nan")
    final_m: float = float("nan")
    min_m: float = float("inf")
    reached_by_planner: bool = False
    seconds: float = 0.0
    energy: list[tuple[float, float]] = field(default_factory=list)  # (s since start, energy)
    distance: list[tuple[float, float]] = field(default_factory=list)  # (s since start, m), ground truth
    tick_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)


class Driver(Node):
    def __init__(self) -> None:
        super().__init__("ami_demo_driver")
        self.progress: dict[str, str] = {}
        self.progress_log: list[tuple[float, dict[str, str]]] = []  # (monotonic time, values)
        self.poses: dict[str, np.ndarray] = {}
        self.goal_image: np.ndarray | None = None
        self.recording: list[np.ndarray] | None = None
        self.create_subscription(DiagnosticStatus, "ami/progress", self._on_progress, 50)
        for name in ("end_effector_pose", "object_pose"):
            self.create_subscription(PoseStamped, f"sim/{name}", lambda m, n=name: self._on_pose(n, m), 10)
        self.create_subscription(
            PoseStamped, "sim/goal_pose", lambda m: self._on_pose("goal_pose", m), qos.LATCHED
        )
        self.create_subscription(Image, "sim/goal_image", self._on_goal_image, qos.LATCHED)
        self.create_subscription(Image, "camera/image_raw", self._on_image, CAMERA)
        self.sim_params = self.create_client(SetParametersAtomically, "sim_node/set_parameters_atomically")

    def _on_progress(self, msg: DiagnosticStatus) -> None:
        self.progress = {kv.key: kv.value for kv in msg.values}
        self.progress_log.append((time.monotonic(), self.progress))

    def _on_pose(self, name: str, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.poses[name] = np.array([p.x, p.y])

    def _on_goal_image(self, msg: Image) -> None:
        self.goal_image = conv.image_to_numpy(msg).copy()

    def _on_image(self, msg: Image) -> None:
        if self.recording is not None:
            self.recording.append(conv.image_to_numpy(msg).copy())

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.02)
            if condition():
                return True
        return False

    def distance(self, task: str) -> float:
        moving = self.poses.get("end_effector_pose" if task == "reach" else "object_pose")
        goal = self.poses.get("goal_pose")
        return float("nan") if moving is None or goal is None else float(np.linalg.norm(moving - goal))

    def reset(self, seed: int, task: str) -> None:
        """One sim reset to (seed, task): both parameters in one atomic request."""
        request = SetParametersAtomically.Request(
            parameters=[Parameter("seed", value=seed).to_parameter_msg(),
                        Parameter("sim.task", value=task).to_parameter_msg()]
        )  # fmt: skip
        for _ in range(3):  # a reset is idempotent: ask again if the answer was lost on the way
            future = self.sim_params.call_async(request)
            if self.spin_until(future.done, 10.0):
                break
            self.sim_params.remove_pending_request(future)
        if not future.done() or not future.result().result.successful:
            raise RuntimeError(f"sim_node did not reset to seed {seed}, task {task}")


def save_gif(path: Path, frames: list[np.ndarray], goal: np.ndarray | None, scale: int = 2) -> None:
    """Frames side by side with the goal image, as an animated GIF at 10 frames/s."""
    from PIL import Image as PILImage

    pictures = []
    for frame in frames:
        tile = frame if goal is None or goal.shape != frame.shape else np.concatenate([frame, goal], axis=1)
        pictures.append(PILImage.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale)))
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)


def _panel(
    draw: Any, box: tuple[int, int, int, int], series: list[tuple[str, np.ndarray]], threshold: float,
    log: bool, title: str, y_label: str,
) -> None:  # fmt: skip
    """One plot in `box` (x0, y0, x1, y1): lines (t, value) coloured by task, a grey threshold line,
    a title, labelled axes with their ranges."""
    x0, y0, x1, y1 = box
    f = np.log10 if log else (lambda v: v)
    values = np.concatenate([s[:, 1] for _, s in series] + [np.array([threshold])])
    values = values[np.isfinite(values)]
    floor = max(min(values.min(), threshold) / 3, 1e-8) if log else 0.0  # the threshold stays visible
    lo, hi = f(floor), f(max(values.max(), floor * 10 if log else threshold * 2))
    t_max = max([float(s[-1, 0]) for _, s in series] or [1.0])

    def xy(t: float, v: float) -> tuple[float, float]:
        y = (f(max(v, floor)) - lo) / max(hi - lo, 1e-9)
        return x0 + (x1 - x0) * t / max(t_max, 1e-6), y1 - (y1 - y0) * min(max(y, 0.0), 1.0)

    draw.rectangle([x0, y0, x1, y1], outline="black")
    colours = {"reach": (31, 119, 180), "push": (214, 39, 40)}
    for task, s in series:
        draw.line([xy(t, v) for t, v in s if np.isfinite(v)], fill=colours.get(task, (0, 0, 0)), width=2)
    draw.line([(x0, xy(0, threshold)[1]), (x1, xy(0, threshold)[1])], fill=(120, 120, 120), width=1)
    draw.text((x0, y0 - 30), title, fill="black")
    draw.text((x0, y0 - 16), y_label, fill="black")
    top, bottom = (10**hi, 10**lo) if log else (hi, lo)
    draw.text((x0 - 45, y0), f"{top:.3g}", fill="black")
    draw.text((x0 - 45, y1 - 10), f"{bottom:.3g}", fill="black")
    draw.text((x0, y1 + 6), "0", fill="black")
    draw.text(((x0 + x1) // 2 - 40, y1 + 6), "time in episode (s)", fill="black")
    draw.text((x1 - 30, y1 + 6), f"{t_max:.1f}", fill="black")


def save_energy_plot(path: Path, episodes: list[Episode], threshold: float, success_m: float = 0.03) -> None:
    """Per episode over time: the planner's energy (log scale) and the ground-truth distance to the
    goal (cm), side by side, drawn with PIL. Blue reach, red push; grey: the success thresholds."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    w, h = 1100, 420
    img = PILImage.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    energy = [(ep.task, np.array(ep.energy)) for ep in episodes if len(ep.energy) > 1]
    distance = [(ep.task, np.array(ep.distance) * [1, 100]) for ep in episodes if len(ep.distance) > 1]
    if energy:
        _panel(draw, (60, 60, 520, 370), energy, threshold, True, "planner energy (log scale)",
               "energy; grey: success_energy")  # fmt: skip
    if distance:
        title = "end effector (reach) / block (push) to goal, ground truth"
        _panel(draw, (610, 60, 1070, 370), distance, 100 * success_m, False, title,
               "distance (cm); grey: success")  # fmt: skip
    draw.text((60, 395), "blue: reach episodes, red: push episodes", fill="black")
    img.save(path)


def start(module: str, args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *args], stdout=f, stderr=subprocess.STDOUT
        )


def traces(out: Path, stack: str) -> dict[str, Path]:
    """The stack's latency trace files (`ami_ros.core.trace`): the encoder's and the planner's."""
    return {"encoder": out / f"{stack}_encoder_trace.jsonl", "planner": out / f"{stack}_planner_trace.jsonl"}


def start_stack(stack: str, out: Path, model_dir: str) -> list[subprocess.Popen]:
    """The stack's processes: three nodes, or `ami_stack` with the same arguments."""
    config = [
        "--params-file",
        str(robot_config()),
        "--params-file",
        str(trace_params(out, traces(out, stack))),
    ]
    if model_dir:
        config += ["-p", f"runtime.model_dir:={model_dir}"]
    planner = [*config, "-r", "ami/goal_image:=sim/goal_image"]
    if stack == "one_process":
        return [start("ami_ros.ros.stack", planner, out / "ami_stack.log")]
    return [
        start("ami_ros.ros.encoder_node", config, out / "encoder_node.log"),
        start("ami_ros.ros.predictor_node", config, out / "predictor_node.log"),
        start("ami_ros.ros.planner_node", planner, out / "planner_node.log"),
    ]


def stop(procs: list[subprocess.Popen]) -> None:
    """Ctrl-C to every process, then wait (kill after 10 s)."""
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def latency(episodes: list[Episode]) -> dict[str, float]:
    """Camera stamp -> command and plan tick percentiles (ms) over the planning ticks of `episodes`."""
    lat = np.array([t for ep in episodes for t in ep.latency_ms] or [np.nan])
    tick = np.array([t for ep in episodes for t in ep.tick_ms] or [np.nan])
    return {
        "ticks": int(np.isfinite(lat).sum()),
        "stamp_to_command_ms_p50": float(np.nanpercentile(lat, 50)),
        "stamp_to_command_ms_p99": float(np.nanpercentile(lat, 99)),
        "plan_tick_ms_p50": float(np.nanpercentile(tick, 50)),
        "plan_tick_ms_p99": float(np.nanpercentile(tick, 99)),
    }


def run_episode(node: Driver, reference: ArmSim, ep: Episode, seconds: float, record: bool) -> None:
    """One episode: reset the sim to (ep.seed, ep.task), watch for `seconds`, fill in `ep`."""
    old_goal = node.progress.get("goal")
    node.reset(ep.seed, ep.task)
    node.poses.clear()  # poses of the last episode would pair the old block with the new goal
    reference.reset(ep.seed, ep.task)
    ep.start_m = task_distance(reference)
    if not node.spin_until(lambda: node.progress.get("goal") not in (old_goal, ""), 10.0):
        raise RuntimeError("the planner did not take the new goal image")
    node.progress_log.clear()
    node.recording = ep.frames if record else None
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        rclpy.spin_once(node, timeout_sec=0.02)
        d = node.distance(ep.task)
        ep.min_m = min(ep.min_m, d)
        if not ep.distance or time.monotonic() - t0 - ep.distance[-1][0] >= 0.1:
            ep.distance.append((time.monotonic() - t0, d))
        if node.progress.get("reached") == "true":
            ep.reached_by_planner = True
    ep.seconds = time.monotonic() - t0
    node.recording = None
    ep.final_m = node.distance(ep.task)
    log = [(t - t0, p) for t, p in node.progress_log]
    ep.energy = [(t, float(p["energy"])) for t, p in log if p["energy"] != "nan"]
    ticks = [p for _, p in log if p["state"] == "planning"]
    ep.tick_ms = [float(p["tick_ms"]) for p in ticks]
    ep.latency_ms = [float(p["stamp_to_command_ms"]) for p in ticks]


def shows_better(ep: Episode, shown: Episode | None, success_m: float) -> bool:
    """Whether `ep` replaces `shown` in its task's GIF: the first episode is shown until one ends
    within `success_m` of its goal."""
    return shown is None or (ep.final_m < success_m and not shown.final_m < success_m)


def run_demo(
    out: Path, tasks: tuple[str, ...] = ("reach", "push"), episodes: int = 3, seed: int = 200_000,
    episode_seconds: float = 12.0, success_m: float = 0.03, model_dir: str = "",
    stacks: tuple[str, ...] = STACKS,
) -> dict:  # fmt: skip
    """Run `episodes` episodes of each task with each stack layout in `stacks` (in turn, one sim);
    writes GIFs, energy.png, summary.json and logs into `out`."""
    params = ["-p", "publish_clock:=false", "-p", f"seed:={seed}", "-p", f"camera_rate:={CAMERA_HZ}"]
    sim = start("ami_ros.ros.sim_node", params, out / "sim_node.log")
    rclpy.init()
    node = Driver()
    reference = ArmSim(SimConfig())  # the same deterministic episodes: their start distances
    results: list[Episode] = []
    procs: list[subprocess.Popen] = []
    threshold = float("nan")
    shown: dict[str, Episode] = {}  # the episode in each task's GIF: the first, or the first success
    try:
        for stack in stacks:
            procs = start_stack(stack, out, model_dir)
            node.progress = {}
            if not node.spin_until(lambda: node.progress and node.sim_params.service_is_ready(), 90.0):
                raise RuntimeError(f"the {stack} stack did not come up in 90 s; see the logs in {out}")
            threshold = float(node.progress["success_energy"])
            for task in tasks:
                for i in range(episodes):
                    done = sum(1 for r in results if r.stack == stack)  # same seeds for every stack
                    ep = Episode(seed + done + 1, task, stack)
                    record = stack == stacks[0]
                    run_episode(node, reference, ep, episode_seconds, record)
                    results.append(ep)
                    outcome = "SUCCESS" if ep.final_m < success_m else "missed"
                    declared = "declared" if ep.reached_by_planner else "did not declare"
                    print(
                        f"[{stack}] {task} episode {i + 1}/{episodes} (seed {ep.seed}): start "
                        f"{100 * ep.start_m:.1f} cm from the goal, ended {100 * ep.final_m:.1f} cm (closest "
                        f"{100 * ep.min_m:.1f} cm) -> {outcome}; the planner {declared} the goal reached",
                        flush=True,
                    )
                    if ep.frames and shows_better(ep, shown.get(task), success_m):
                        stride = max(round(CAMERA_HZ / 10), 1)  # the GIF plays 10 frames a second
                        save_gif(out / f"{task}_episode.gif", ep.frames[::stride], node.goal_image)
                        shown[task] = ep
                    ep.frames = []
            stop(procs)
            procs = []
        for task, ep in shown.items():
            outcome = "ends at the goal" if ep.final_m < success_m else "no episode ended at the goal"
            print(f"{task}_episode.gif: seed {ep.seed} ({outcome})", flush=True)
        save_energy_plot(out / "energy.png", results, threshold, success_m)
    finally:
        reference.close()
        node.destroy_node()
        rclpy.try_shutdown()
        stop([*procs, sim])
    by_stack = {stack: latency([ep for ep in results if ep.stack == stack]) for stack in stacks}
    for stack, figures in by_stack.items():
        print(
            f"{stack}: camera stamp -> command p50 {figures['stamp_to_command_ms_p50']:.0f} ms, "
            f"p99 {figures['stamp_to_command_ms_p99']:.0f} ms ({figures['ticks']} planning ticks)",
            flush=True,
        )
    stages = {
        stack: stage_percentiles(stage_latencies(read_events(traces(out, stack).values())))
        for stack in stacks
    }
    print(
        "where the time goes, camera stamp to command (all commands of the run):",
        *stage_rows(stages),
        sep="\n",
    )
    tick = np.array([t for ep in results for t in ep.tick_ms] or [np.nan])
    lat = np.array([t for ep in results for t in ep.latency_ms] or [np.nan])

    def per_task(value) -> dict[str, float]:
        return {t: float(np.mean([value(ep) for ep in results if ep.task == t] or [np.nan])) for t in tasks}

    summary = {
        "success_threshold_m": success_m,
        "episodes_completed": len(results),
        "success_rate": per_task(lambda ep: ep.final_m < success_m),
        "mean_start_distance_m": per_task(lambda ep: ep.start_m),
        "mean_final_distance_m": per_task(lambda ep: ep.final_m),
        "plan_tick_ms_p50": float(np.nanpercentile(tick, 50)),
        "plan_tick_ms_p99": float(np.nanpercentile(tick, 99)),
        "stamp_to_command_ms_p50": float(np.nanpercentile(lat, 50)),
        "stamp_to_command_ms_p99": float(np.nanpercentile(lat, 99)),
        "latency_by_stack": by_stack,
        "stages_by_stack": stages,
        "gif_seeds": {task: ep.seed for task, ep in shown.items()},
        "episodes": [
            {"task": ep.task, "stack": ep.stack, "seed": ep.seed, "start_m": round(ep.start_m, 4),
             "final_m": round(ep.final_m, 4), "min_m": round(ep.min_m, 4), "success": ep.final_m < success_m,
             "planner_declared_reached": ep.reached_by_planner, "ticks": len(ep.tick_ms),
             "tick_ms": ep.tick_ms, "stamp_to_command_ms": ep.latency_ms}
            for ep in results
        ],
        "run_folder": str(out),
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
