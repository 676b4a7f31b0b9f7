"""`ami-ros`: the project's command line.

ami-ros demo    the embedded robot and the node graph as separate processes over DDS
ami-ros bench   speed of the embedded robot (physics, rendering, real-time factor)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """This process's environment, confined to loopback DDS on its own domain.

    Sets the same variables in os.environ, so rclpy in this process joins the same domain.
    """
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    os.environ.setdefault("MUJOCO_GL", "egl")
    if domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    else:
        os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
    return dict(os.environ)


def run_folder(root: str, kind: str) -> Path:
    path = Path(root) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cmd_demo(args: argparse.Namespace) -> int:
    from ami_ros.ros.scripted_demo import run_demo

    ros_environment(args.domain_id)
    out = run_folder(args.output, "demo")
    summary = run_demo(out, episodes=args.episodes, seed=args.seed)
    print(json.dumps(summary, indent=2))
    return 0 if summary["episodes_completed"] == args.episodes else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from ami_ros.eval.bench_sim import bench_sim

    out = run_folder(args.output, "bench")
    report = bench_sim(seconds=args.seconds)
    (out / "bench_sim.json").write_text(json.dumps(report, indent=2))
    for key, value in report.items():
        print(f"{key:>34}: {value}")
    print(f"saved {out / 'bench_sim.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ami-ros", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="drive the embedded robot over ROS 2 and record the episodes")
    demo.add_argument("--episodes", type=int, default=3)
    demo.add_argument("--seed", type=int, default=1000, help="first episode seed")
    demo.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: derived from pid)")
    demo.add_argument("--output", default="runs", help="folder for run folders")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="measure the embedded robot's speed")
    bench.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per measurement")
    bench.add_argument("--output", default="runs")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
