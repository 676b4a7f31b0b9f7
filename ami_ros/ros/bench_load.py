"""Load benchmark: a 60 Hz 640x480 camera into the stack for a minute; prints what held.

    python -m ami_ros.ros.bench_load [--seconds 60] [--rate 60] [--width 640 --height 480]

encoder_node, predictor_node and planner_node run as processes with the embedded arm's robot
config; this process is the robot: it publishes rgb8 frames (rendered once by the embedded sim at
the camera size, then cycled) at `--rate` Hz, joint states at 100 Hz and a goal image, all on wall
time. It samples every node's resident memory (/proc) each second and listens to the latents, the
commands and /diagnostics. Printed: RSS per node over time, frames sent vs encoded (the encoder
keeps up or drops frames: its camera subscription is depth 1, so it cannot queue), the latent's
age when it arrives (a growing queue would show as growing age) early vs late in the run, and the
plan tick's p50/p99 early vs late. Figures, no assertions: the machine's load decides them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NODES = ("encoder_node", "predictor_node", "planner_node")
JOINTS = ["joint1", "joint2", "joint3", "joint4"]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of a process in MB (`field`: VmRSS now, VmHWM its peak), NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def frames(width: int, height: int, n: int = 30) -> tuple[list[np.ndarray], np.ndarray]:
    """`n` frames of the embedded arm moving, and a goal image, rendered at width x height."""
    from ami_ros.config import SimConfig
    from ami_ros.sim import ArmSim

    out = []
    with ArmSim(SimConfig(image_width=width, image_height=height)) as sim:
        sim.reset(100_007, "reach")
        goal = sim.render_goal()
        for i in range(n):
            sim.command(sim.state().qpos + 0.02 * np.sin(i / 3))
            sim.step(25)
            out.append(sim.render())
    return out, goal


def start_nodes(robot: Path, log_dir: Path, env: dict[str, str]) -> dict[str, subprocess.Popen]:
    procs = {}
    for name in NODES:
        args = [sys.executable, "-m", f"ami_ros.ros.{name}", "--ros-args", "--params-file", str(robot)]
        args += ["-p", "diagnostics_period:=1.0"]
        with open(log_dir / f"{name}.log", "wb") as log:
            procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    return procs


def run(seconds: float, rate: float, width: int, height: int, log_dir: Path) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from ami_ros.paths import share_file
    from ami_ros.ros.conversions import numpy_to_image, to_seconds, to_time

    images, goal = frames(width, height)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = start_nodes(share_file("config", "robots", "tabletop_arm.yaml"), log_dir, env)
    rclpy.init()
    node = rclpy.create_node("bench_load")
    latched = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    camera = node.create_publisher(Image, "camera/image_raw", QoSProfile(depth=2))
    joints = node.create_publisher(JointState, "joint_states", 10)
    goal_pub = node.create_publisher(Image, "ami/goal_image", latched)
    latent_age: list[tuple[float, float]] = []  # (wall time, age of the latent on arrival)
    commands: list[float] = []
    diag: dict[str, list[tuple[float, dict[str, str]]]] = {n: [] for n in NODES}

    def on_latent(msg: Image) -> None:
        latent_age.append((time.time(), time.time() - to_seconds(msg.header.stamp)))

    def on_diag(msg: DiagnosticArray) -> None:
        for s in msg.status:
            name = s.name.split(":")[0]
            if name in diag:
                diag[name].append((time.time(), {kv.key: kv.value for kv in s.values}))

    node.create_subscription(Image, "ami/latent", on_latent, QoSProfile(depth=100))
    node.create_subscription(
        JointTrajectory, "arm_controller/joint_trajectory", lambda m: commands.append(time.time()), 100
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)
    q = [0.1, 0.2, 0.3, 0.4]

    def publish_joints() -> None:
        joints.publish(JointState(header=_header(to_time(time.time())), name=JOINTS, position=q))

    node.create_timer(0.01, publish_joints)
    goal_pub.publish(numpy_to_image(goal, to_time(time.time()), "camera"))
    print(f"waiting for the nodes (logs in {log_dir}) ...", flush=True)
    deadline = time.time() + 180
    while not (latent_age and commands) and time.time() < deadline:  # models loaded, planning
        camera.publish(numpy_to_image(images[0], to_time(time.time()), "camera"))
        rclpy.spin_once(node, timeout_sec=0.05)
    if not latent_age:
        raise SystemExit(f"no latents within 180 s; see {log_dir}")
    print(f"running {seconds:.0f} s: {width}x{height} rgb8 at {rate:.0f} Hz", flush=True)
    latent_age.clear()
    commands.clear()
    for entries in diag.values():
        entries.clear()
    rss: list[tuple[float, dict[str, float]]] = []
    sent, t0 = 0, time.time()
    next_frame, next_sample = t0, t0
    while (now := time.time()) < t0 + seconds:
        if now >= next_frame:
            camera.publish(numpy_to_image(images[sent % len(images)], to_time(now), "camera"))
            sent += 1
            next_frame += 1.0 / rate
            if next_frame < now - 0.5:  # fell far behind (the machine is saturated): do not burst
                next_frame = now
        if now >= next_sample:
            rss.append((now - t0, {n: rss_mb(p.pid) for n, p in procs.items()}))
            next_sample += 1.0
        rclpy.spin_once(node, timeout_sec=max(0.0, min(next_frame, next_sample) - time.time()))
    elapsed = time.time() - t0
    alive = {n: p.poll() is None for n, p in procs.items()}
    for p in procs.values():
        p.send_signal(signal.SIGINT)
    for p in procs.values():
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    node.destroy_node()
    rclpy.try_shutdown()
    return summarize(seconds, elapsed, rate, sent, latent_age, commands, diag, rss, alive, t0)


def _header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp, frame_id="base_link")


def summarize(seconds, elapsed, rate, sent, latent_age, commands, diag, rss, alive, t0) -> dict:
    def window(samples: list[tuple[float, float]], lo: float, hi: float) -> np.ndarray:
        return np.array([v for t, v in samples if t0 + lo <= t < t0 + hi] or [np.nan])

    tenth = max(seconds / 6, 5.0)
    early, late = window(latent_age, 0, tenth), window(latent_age, seconds - tenth, seconds)
    enc = diag["encoder_node"][-1][1] if diag["encoder_node"] else {}
    plan = [(t, float(v.get("tick_ms_p50", "nan"))) for t, v in diag["planner_node"]]
    plan99 = [(t, float(v.get("tick_ms_p99", "nan"))) for t, v in diag["planner_node"]]
    return {
        "seconds": round(elapsed, 1),
        "camera": {"rate_hz": rate, "frames_sent": sent, "sent_hz": round(sent / elapsed, 1)},
        "encoder": {
            "latents_received": len(latent_age),
            "latent_hz": round(len(latent_age) / elapsed, 1),
            "frames_received_total": enc.get("frames_received"),
            "latents_published_total": enc.get("latents_published"),
            "encode_ms_p50": enc.get("encode_ms_p50"),
            "encode_ms_p99": enc.get("encode_ms_p99"),
            "latent_age_ms_p50_first": round(1e3 * float(np.nanmedian(early)), 1),
            "latent_age_ms_p50_last": round(1e3 * float(np.nanmedian(late)), 1),
            "latent_age_ms_max_last": round(1e3 * float(np.nanmax(late)), 1),
        },
        "planner": {
            "commands": len(commands),
            "command_hz": round(len(commands) / elapsed, 1),
            "tick_ms_p50_first": float(np.nanmedian(window(plan, 0, tenth))),
            "tick_ms_p50_last": float(np.nanmedian(window(plan, seconds - tenth, seconds + 1))),
            "tick_ms_p99_last": float(np.nanmedian(window(plan99, seconds - tenth, seconds + 1))),
        },
        "rss_mb": [{"t": round(t, 0), **{k: round(v, 1) for k, v in r.items()}} for t, r in rss],
        "alive_at_end": alive,
    }


def print_report(report: dict) -> None:
    print(json.dumps({k: v for k, v in report.items() if k != "rss_mb"}, indent=1))
    rss = report["rss_mb"]
    print("RSS (MB) over time:")
    print("   t_s " + " ".join(f"{n:>15}" for n in NODES))
    step = max(1, len(rss) // 12)
    for row in rss[::step] + ([rss[-1]] if (len(rss) - 1) % step else []):
        print(f"{row['t']:6.0f} " + " ".join(f"{row[n]:15.1f}" for n in NODES))
    for n in NODES:
        values = np.array([r[n] for r in rss])
        half = len(values) // 2
        print(
            f"{n}: {values[0]:.1f} -> {values[-1]:.1f} MB (max {np.nanmax(values):.1f}); "
            f"second half grew {values[-1] - values[half]:+.1f} MB"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=60.0, help="camera frames per second")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--logs", type=Path, default=Path("bench_load_logs"))
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    os.environ.setdefault("MUJOCO_GL", "egl")
    args.logs.mkdir(parents=True, exist_ok=True)
    report = run(args.seconds, args.rate, args.width, args.height, args.logs)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
