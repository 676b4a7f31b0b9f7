"""Stack latency benchmark: a recorded bag replayed into the nodes, without a simulator on the CPU.

    ami-ros bench --stack [--bag DIR] [--seconds 30] [--json]

A rosbag2 (MCAP) of camera frames and joint states is replayed, each message stamped at the moment
it is sent, into the stack as it ships, in each layout in turn, under the same load: `separate`
(encoder_node, predictor_node and planner_node as three processes) and `one_process` (`ami_stack`).
This process plays the robot: it loads the whole bag first and sends prepared messages, so
replaying costs little. Without `--bag` it records one from the embedded arm (640x480 rgb8 at
30 Hz, joint states at 100 Hz, and a goal image; cached under .cache/bench/ and rebuilt when
missing). A bag of your own robot needs `camera/image_raw`, `joint_states` and, for a goal,
`ami/goal_image` (otherwise its last frame is the goal).

The nodes write each frame's stage times (`latency_trace`, `ami_ros.core.trace`); per layout it
reports p50 / p99 / max of every stage from the camera stamp to the command, the frames sent,
received, skipped by `max_rate`, encoded, used by a tick and dropped, the ticks whose decision
came too late, each process's CPU share (of one core) and peak RSS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ami_ros.core.trace import SPANS, frames_at, percentiles, read_events, stage_latencies, stage_percentiles
from ami_ros.ros.bench_load import rss_mb

LAYOUTS = {  # name: the processes (modules) of the layout
    "separate": ("ami_ros.ros.encoder_node", "ami_ros.ros.predictor_node", "ami_ros.ros.planner_node"),
    "one_process": ("ami_ros.ros.stack",),
}
CAMERA, JOINTS, GOAL = "/camera/image_raw", "/joint_states", "/ami/goal_image"
BAG_CACHE = Path(".cache") / "bench" / "stack_bag"
READY_S = 180.0


@dataclass
class Recording:
    """A bag in memory: (seconds from its start, payload) per message, and the goal frame."""

    frames: list[tuple[float, np.ndarray]]
    joints: list[tuple[float, list[str], np.ndarray]]
    goal: np.ndarray
    duration: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.frames or not self.joints:
            raise ValueError(f"the bag needs {CAMERA} and {JOINTS} messages")
        self.duration = max(self.frames[-1][0], self.joints[-1][0]) + 1 / 30


def record_bag(
    path: Path, seconds: float = 4.0, rate: float = 30.0, width: int = 640, height: int = 480
) -> Path:
    """Record the embedded arm moving: frames at `rate`, joint states at 100 Hz, a push goal image."""
    from ami_ros.config import SimConfig
    from ami_ros.data import messages as m
    from ami_ros.data.bag import BagWriter
    from ami_ros.sim import ArmSim

    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with ArmSim(SimConfig(image_width=width, image_height=height)) as sim, BagWriter(tmp, "none") as bag:
        sim.reset(100_007, "push")
        bag.add_topic(CAMERA, m.IMAGE)
        bag.add_topic(JOINTS, m.JOINT_STATE)
        bag.add_topic(GOAL, m.IMAGE)
        bag.write(GOAL, 0, m.image(sim.render_goal(), 0))
        q0, next_frame = sim.state().qpos.copy(), 0.0
        for i in range(round(seconds * 100)):
            t, s = i / 100, sim.state()
            stamp = round(t * 1e9)
            bag.write(JOINTS, stamp, m.joint_state(sim.joint_names, s.qpos, s.qvel, s.effort, stamp))
            if t >= next_frame - 1e-9:
                bag.write(CAMERA, stamp, m.image(sim.render(), stamp))
                next_frame += 1 / rate
            sim.command(q0 + 0.3 * np.sin(2 * np.pi * t / seconds + np.arange(len(q0))))
            sim.advance(0.01)
    tmp.rename(path)
    return path


def load_bag(path: Path) -> Recording:
    from ami_ros.data import messages as m
    from ami_ros.data.bag import BagReader

    frames, joints, goal = [], [], None
    with BagReader(path) as bag:
        start = None
        for topic, log_ns, msg in bag.messages([CAMERA, JOINTS, GOAL]):
            if topic == GOAL:
                goal = m.image_to_rgb(msg)
                continue
            start = log_ns if start is None else start
            t = (log_ns - start) * 1e-9
            if topic == CAMERA:
                frames.append((t, m.image_to_rgb(msg)))
            else:
                joints.append((t, list(msg.name), np.asarray(msg.position, dtype=float)))
    if goal is None and frames:
        goal = frames[-1][1]
    return Recording(frames, joints, goal)  # type: ignore[arg-type]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (s), NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Player:
    """The robot's side: replays a `Recording` on the stack's topics, stamped at sending time."""

    def __init__(self, recording: Recording) -> None:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, JointState
        from trajectory_msgs.msg import JointTrajectory

        from ami_ros.ros.conversions import numpy_to_image, to_time

        self.recording = recording
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bench_stack", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        # as sim_node and most camera drivers publish: reliable, so best-effort and reliable
        # subscribers both match
        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.camera = self.node.create_publisher(Image, "camera/image_raw", reliable)
        self.joints = self.node.create_publisher(JointState, "joint_states", 10)
        self.goal = self.node.create_publisher(Image, "ami/goal_image", latched)
        self.goal_msg = numpy_to_image(recording.goal, to_time(time.time()), "camera")
        self.images = [(t, numpy_to_image(f, to_time(0.0), "camera")) for t, f in recording.frames]
        self.states = [(t, JointState(name=n, position=p.tolist())) for t, n, p in recording.joints]
        self.commands: list[float] = []
        self.node.create_subscription(
            JointTrajectory,
            "arm_controller/joint_trajectory",
            lambda _: self.commands.append(time.time()),
            100,
        )
        self._to_time = to_time

    def play(self, seconds: float, until: Any = None) -> tuple[int, float]:
        """Replay (looping) for `seconds` or until `until()`; returns (frames sent, first stamp)."""
        executor = self.executor
        self.goal_msg.header.stamp = self._to_time(time.time())
        self.goal.publish(self.goal_msg)
        events = sorted([(t, 0, i) for i, (t, _) in enumerate(self.images)]
                        + [(t, 1, i) for i, (t, _) in enumerate(self.states)])  # fmt: skip
        sent, t0 = 0, time.time()
        loop = 0
        while True:
            for t, kind, i in events:
                due = t0 + loop * self.recording.duration + t
                while (now := time.time()) < due:
                    executor.spin_once(timeout_sec=min(due - now, 0.005))
                if now > t0 + seconds or (until is not None and until()):
                    return sent, t0
                msg = self.images[i][1] if kind == 0 else self.states[i][1]
                msg.header.stamp = self._to_time(now)
                (self.camera if kind == 0 else self.joints).publish(msg)
                sent += kind == 0
            loop += 1

    def drain(self, seconds: float) -> None:
        """Send nothing for `seconds`, receiving the commands still on their way."""
        end = time.time() + seconds
        while time.time() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def trace_params(folder: Path, traces: dict[str, Path], overrides: dict[str, Any] | None = None) -> Path:
    """A parameter file to load after the robot config: the encoder's and the planner's
    `latency_trace` files, a goal folder in `folder`, and `overrides` ({"node.param": value}),
    written beside the planner's trace."""
    params: dict[str, dict[str, Any]] = {
        "encoder_node": {"latency_trace": str(traces["encoder"])},
        "planner_node": {"latency_trace": str(traces["planner"]), "goal_memory_dir": str(folder / "goals")},
    }
    for key, value in (overrides or {}).items():
        node, _, name = key.partition(".")
        if node not in ("encoder_node", "predictor_node", "planner_node") or not name:
            raise ValueError(f"an override is <node>.<parameter> of one of the stack's nodes, got {key!r}")
        params.setdefault(node, {})[name] = value
    params = {f"/**/{node}": {"ros__parameters": values} for node, values in params.items()}
    path = traces["planner"].with_name(traces["planner"].stem + "_params.yaml")
    path.write_text(yaml.safe_dump(params))
    return path


def run_layout(
    layout: str, player: Player, seconds: float, folder: Path, robot: Path, overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Start the layout's processes, wait until commands flow, measure for `seconds`, stop them.

    Returns:
        The layout's figures (`summarize`) and its stage latencies over the measured window.
    """
    folder.mkdir(parents=True, exist_ok=True)
    traces = {"encoder": folder / "encoder.jsonl", "planner": folder / "planner.jsonl"}
    for path in traces.values():
        path.unlink(missing_ok=True)
    params = trace_params(folder, traces, overrides)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = {}
    for module in LAYOUTS[layout]:
        name = module.rsplit(".", 1)[1]
        args = [
            sys.executable,
            "-m",
            module,
            "--ros-args",
            "--params-file",
            str(robot),
            "--params-file",
            str(params),
        ]
        with open(folder / f"{name}.log", "wb") as log:
            procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        player.commands.clear()
        player.play(
            READY_S,
            until=lambda: len(player.commands) >= 3 or any(p.poll() is not None for p in procs.values()),
        )
        if len(player.commands) < 3:
            raise RuntimeError(f"{layout}: no commands within {READY_S:.0f} s; see the logs in {folder}")
        cpu0 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
        player.commands.clear()
        t_start = time.time()
        chunk_sent, chunk_start = player.play(seconds)
        elapsed = time.time() - t_start
        cpu = {n: round((cpu_seconds(p.pid) - cpu0[n]) / elapsed, 3) for n, p in procs.items()}
        player.drain(0.5)  # the last frames' commands
        rss = {n: rss_mb(p.pid, "VmHWM") for n, p in procs.items()}
        alive = all(p.poll() is None for p in procs.values())
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    events = [e for e in read_events(traces.values()) if e["stamp"] >= chunk_start]
    latencies = stage_latencies(events)
    return summarize(events, latencies, chunk_sent, len(player.commands), elapsed, cpu, rss, alive), latencies


def summarize(
    events: list[dict[str, Any]], latencies: dict[str, np.ndarray], sent: int, commands: int, elapsed: float,
    cpu: dict[str, float], rss: dict[str, float], alive: bool,
) -> dict[str, Any]:  # fmt: skip
    """A layout's figures from its trace events and their `stage_latencies` over the measured window."""
    count = {stage: frames_at(events, stage) for stage in ("received", "encoded", "latent", "tick", "late")}
    spans = stage_percentiles(latencies)
    return {
        "seconds": round(elapsed, 1),
        **spans,
        "frames": {
            "sent": sent,
            "received": count["received"],
            "encoded": count["encoded"],
            "at_planner": count["latent"],
            "planned": count["tick"],
            "dropped_in_transport": max(0, sent - count["received"]),
            "late_decisions": count["late"],
        },
        "commands": commands,
        "cpu_share": cpu,
        "rss_mb": {n: round(v, 1) for n, v in rss.items()},
        "alive_at_end": alive,
    }


def bench_stack(
    seconds: float = 30.0,
    bag: str | Path = "",
    out: Path | None = None,
    overrides: dict[str, Any] | None = None,
    executor_threads: int = 0,
) -> dict[str, Any]:
    """Both layouts, one after the other, on the same replayed bag; the report `--json` prints.

    `overrides` ({"planner_node.runtime.intra_op_threads": 1}) go on top of the robot config;
    `executor_threads` > 0 sets every node process's executor threads (`spin.EXECUTOR_THREADS_ENV`).
    """
    from ami_ros.paths import share_file
    from ami_ros.ros.spin import EXECUTOR_THREADS_ENV

    if executor_threads:
        os.environ[EXECUTOR_THREADS_ENV] = str(executor_threads)

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    path = Path(bag) if bag else (BAG_CACHE if BAG_CACHE.exists() else record_bag(BAG_CACHE))
    recording = load_bag(path)
    out = out or Path(tempfile.mkdtemp(prefix="bench_stack_"))
    robot = share_file("config", "robots", "tabletop_arm.yaml")
    player = Player(recording)
    try:
        runs = {
            name: run_layout(name, player, seconds, out / name, robot, overrides or {}) for name in LAYOUTS
        }
    finally:
        player.close()
    ticks = np.concatenate([latencies["tick_to_command"] for _, latencies in runs.values()])
    layouts = {name: figures for name, (figures, _) in runs.items()}
    return {
        "bag": str(path),
        "camera": {
            "frames": len(recording.frames),
            "hz": round(len(recording.frames) / recording.duration, 1),
            "size": list(recording.frames[0][1].shape[:2][::-1]),
        },
        "cpu_count": os.cpu_count(),
        "overrides": overrides or {},
        "executor_threads": int(os.environ.get(EXECUTOR_THREADS_ENV) or 1),
        "plan_tick_ms": percentiles(ticks),
        "layouts": layouts,
        "logs": str(out),
    }


def stage_rows(layouts: dict[str, dict[str, Any]]) -> list[str]:
    """A table of every span's p50 / p99 / max (ms), one column per layout (`ami-ros demo` prints it
    for its live run too)."""
    names = list(layouts)
    rows = [f"{'stage (ms)':<22}" + "".join(f"{n + ' p50/p99/max':>28}" for n in names)]
    for span in SPANS:
        cells = [layouts[n][span] for n in names]
        rows.append(
            f"{span:<22}" + "".join(f"{c['p50']:>12.1f}{c['p99']:>8.1f}{c['max']:>8.1f}" for c in cells)
        )
    return rows


def format_report(report: dict[str, Any]) -> str:
    """The layouts side by side: every span, then the frames, CPU and memory of each."""
    layouts, camera = report["layouts"], report["camera"]
    names = list(layouts)
    lines = [f"stack latency, {camera['size'][0]}x{camera['size'][1]} at {camera['hz']} Hz from "
             f"{report['bag']}, {report['cpu_count']} cores", *stage_rows(layouts)]  # fmt: skip
    for sub in layouts[names[0]]["frames"]:
        values = [layouts[n]["frames"][sub] for n in names]
        lines.append(f"{'frames ' + sub:<22}" + "".join(f"{v!s:>28}" for v in values))
    for n in names:
        cpu, rss = layouts[n]["cpu_share"], layouts[n]["rss_mb"]
        lines.append(f"{n}: " + ", ".join(f"{p} {cpu[p]:.0%} CPU {rss[p]:.0f} MB" for p in cpu))
    tick = report["plan_tick_ms"]
    lines.append(
        f"plan tick (both layouts): p50 {tick['p50']} ms, p99 {tick['p99']} ms, max {tick['max']} ms"
    )
    return "\n".join(lines)
