"""`ami-ros demo`: the embedded robot and the ami_ros node graph, each a process, over loopback DDS.

sim_node, encoder_node, predictor_node and planner_node start as separate processes with the
embedded arm's robot config (config/robots/tabletop_arm.yaml); the planner takes the sim's goal
images as its goals (sim/goal_image remapped to ami/goal_image). A driver node here starts each
episode by setting sim_node's `seed` and `sim.task` parameters (one reset, a new goal image) and
watches: ami/progress for energy and latency, the sim's ground-truth poses for the outcome, the
camera for a GIF. Ground truth only measures; the stack never sees it.

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
from ami_ros.eval.closed_loop import task_distance
from ami_ros.paths import share_file
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.sim import ArmSim

CAMERA = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)


def robot_config() -> Path:
    return share_file("config", "robots", "tabletop_arm.yaml")


@dataclass
class Episode:
    seed: int
    task: str
    start_m: float = float("nan")
    final_m: float = float("nan")
    min_m: float = float("inf")
    reached_by_planner: bool = False
    seconds: float = 0.0
    energy: list[tuple[float, float]] = field(default_factory=list)  # (s since start, energy)
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
        future = self.sim_params.call_async(request)
        if not self.spin_until(future.done, 10.0) or not future.result().result.successful:
            raise RuntimeError(f"sim_node did not reset to seed {seed}, task {task}")


def save_gif(path: Path, frames: list[np.ndarray], goal: np.ndarray | None, scale: int = 2) -> None:
    """Frames side by side with the goal image, as an animated GIF at 10 frames/s."""
    from PIL import Image as PILImage

    pictures = []
    for frame in frames:
        tile = frame if goal is None or goal.shape != frame.shape else np.concatenate([frame, goal], axis=1)
        pictures.append(PILImage.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale)))
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)


def save_energy_plot(path: Path, episodes: list[Episode], threshold: float) -> None:
    """Energy over time of every episode (log scale), one line each, drawn with PIL."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    w, h, m = 720, 400, 50
    img = PILImage.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    series = [(ep, np.array(ep.energy)) for ep in episodes if len(ep.energy) > 1]
    values = np.concatenate([s[:, 1] for _, s in series] + [np.array([threshold])])
    lo = np.log10(max(min(values.min(), threshold) / 3, 1e-8))  # the threshold line stays visible
    hi = np.log10(max(values.max(), 10**lo * 10))
    t_max = max(float(s[-1, 0]) for _, s in series) if series else 1.0

    def xy(t: float, e: float) -> tuple[float, float]:
        y = (np.log10(max(e, 10**lo)) - lo) / max(hi - lo, 1e-6)
        return m + (w - 2 * m) * t / max(t_max, 1e-6), h - m - (h - 2 * m) * y

    draw.rectangle([m, m, w - m, h - m], outline="black")
    colours = {"reach": (31, 119, 180), "push": (214, 39, 40)}
    for ep, s in series:
        draw.line([xy(t, e) for t, e in s], fill=colours.get(ep.task, (0, 0, 0)), width=2)
    y = xy(0, threshold)[1]
    draw.line([(m, y), (w - m, y)], fill=(120, 120, 120), width=1)
    draw.text(
        (m, 15),
        "planner energy over time (log scale): blue reach, red push, grey success threshold",
        fill="black",
    )
    draw.text((m, h - m + 10), "0 s", fill="black")
    draw.text((w - m - 30, h - m + 10), f"{t_max:.1f} s", fill="black")
    draw.text((5, m), f"{10**hi:.3g}", fill="black")
    draw.text((5, h - m - 10), f"{10**lo:.3g}", fill="black")
    img.save(path)


def start(module: str, args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *args], stdout=f, stderr=subprocess.STDOUT
        )


def run_demo(
    out: Path, tasks: tuple[str, ...] = ("reach", "push"), episodes: int = 3, seed: int = 200_000,
    episode_seconds: float = 8.0, success_m: float = 0.03, model_dir: str = "",
) -> dict:  # fmt: skip
    """Run `episodes` episodes of each task; writes GIFs, energy.png, summary.json and logs into `out`."""
    config = str(robot_config())
    model = ["-p", f"runtime.model_dir:={model_dir}"] if model_dir else []
    procs = [
        start("ami_ros.ros.sim_node", ["-p", "publish_clock:=false", "-p", f"seed:={seed}"],
              out / "sim_node.log"),
        start("ami_ros.ros.encoder_node", ["--params-file", config, *model], out / "encoder_node.log"),
        start("ami_ros.ros.predictor_node", ["--params-file", config, *model], out / "predictor_node.log"),
        start(
            "ami_ros.ros.planner_node",
            ["--params-file", config, *model, "-p", f"goal_memory_dir:={out / 'goals'}",
             "-r", "ami/goal_image:=sim/goal_image"],
            out / "planner_node.log",
        ),
    ]  # fmt: skip
    rclpy.init()
    node = Driver()
    reference = ArmSim(SimConfig())  # the same deterministic episodes: their start distances
    results: list[Episode] = []
    try:
        if not node.spin_until(lambda: node.progress and node.sim_params.service_is_ready(), 90.0):
            raise RuntimeError(f"the stack did not come up in 90 s; see the logs in {out}")
        threshold = float(node.progress["success_energy"])
        for task in tasks:
            for i in range(episodes):
                ep = Episode(seed + len(results) + 1, task)
                old_goal = node.progress.get("goal")
                node.reset(ep.seed, task)
                reference.reset(ep.seed, task)
                ep.start_m = task_distance(reference)
                if not node.spin_until(lambda g=old_goal: node.progress.get("goal") not in (g, ""), 10.0):
                    raise RuntimeError("the planner did not take the new goal image")
                node.progress_log.clear()
                node.recording = ep.frames if i == 0 else None
                t0 = time.monotonic()
                while time.monotonic() - t0 < episode_seconds:
                    rclpy.spin_once(node, timeout_sec=0.02)
                    d = node.distance(task)
                    ep.min_m = min(ep.min_m, d)
                    if node.progress.get("reached") == "true":
                        ep.reached_by_planner = True
                ep.seconds = time.monotonic() - t0
                node.recording = None
                ep.final_m = node.distance(task)
                log = [(t - t0, p) for t, p in node.progress_log]
                ep.energy = [(t, float(p["energy"])) for t, p in log if p["energy"] != "nan"]
                ticks = [p for _, p in log if p["state"] == "planning"]
                ep.tick_ms = [float(p["tick_ms"]) for p in ticks]
                ep.latency_ms = [float(p["stamp_to_command_ms"]) for p in ticks]
                results.append(ep)
                outcome = "SUCCESS" if ep.final_m < success_m else "missed"
                declared = "declared" if ep.reached_by_planner else "did not declare"
                print(
                    f"{task} episode {i + 1}/{episodes} (seed {ep.seed}): start {100 * ep.start_m:.1f} cm "
                    f"from the goal, ended {100 * ep.final_m:.1f} cm (closest {100 * ep.min_m:.1f} cm) -> "
                    f"{outcome}; the planner {declared} the goal reached",
                    flush=True,
                )
                if i == 0 and ep.frames:
                    save_gif(out / f"{task}_episode.gif", ep.frames[::3], node.goal_image)
        save_energy_plot(out / "energy.png", results, threshold)
    finally:
        reference.close()
        node.destroy_node()
        rclpy.try_shutdown()
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
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
        "episodes": [
            {"task": ep.task, "seed": ep.seed, "start_m": round(ep.start_m, 4),
             "final_m": round(ep.final_m, 4), "min_m": round(ep.min_m, 4), "success": ep.final_m < success_m,
             "planner_declared_reached": ep.reached_by_planner, "ticks": len(ep.tick_ms),
             "tick_ms": ep.tick_ms, "stamp_to_command_ms": ep.latency_ms}
            for ep in results
        ],
        "run_folder": str(out),
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
