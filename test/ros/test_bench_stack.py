"""`ami-ros bench --stack`: a recorded bag replayed into both layouts of the real node processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

import yaml
from conftest import ROS_ENV

from ami_ros.ros.bench_stack import LAYOUTS, load_bag, record_bag, trace_params

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[2]


def test_bench_stack_reports_every_stage_of_both_layouts_in_one_json_line(tmp_path) -> None:
    bag = record_bag(tmp_path / "bag", seconds=2.0, width=160, height=120)
    recording = load_bag(bag)
    assert len(recording.frames) == 60 and len(recording.joints) == 200
    assert recording.frames[0][1].shape == (120, 160, 3) and recording.goal.shape == (120, 160, 3)

    env = {**os.environ, **ROS_ENV, "ROS_DOMAIN_ID": str(int(ROS_ENV["ROS_DOMAIN_ID"]) + 100)}
    cmd = [sys.executable, "-m", "ami_ros.cli", "bench", "--stack", "--bag", str(bag), "--seconds", "4",
           "--json", "--output", str(tmp_path / "runs")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-2000:]
    report = json.loads(lines[0])

    assert set(report["layouts"]) == set(LAYOUTS) == {"separate", "one_process"}
    assert report["overrides"] == {} and report["executor_threads"] == 1  # as shipped
    assert report["camera"]["size"] == [160, 120] and report["camera"]["hz"] == pytest.approx(30, abs=1)
    assert 0 < report["plan_tick_ms"]["p50"] <= report["plan_tick_ms"]["p99"]
    for name, layout in report["layouts"].items():
        total = layout["camera_to_command"]
        assert total["n"] >= 10, f"{name}: {total['n']} frames reached a command in 4 s"
        assert 0 < total["p50"] <= total["p99"] <= total["max"]
        parts = ("camera_to_received", "received_to_encoded", "encoded_to_latent", "latent_to_tick",
                 "tick_to_command")  # fmt: skip
        assert sum(layout[p]["p50"] for p in parts) > 0 and all(layout[p]["n"] == total["n"] for p in parts)
        f = layout["frames"]
        assert f["sent"] >= f["received"] >= f["encoded"] >= f["at_planner"] >= f["planned"] >= total["n"], (
            name,
            f,
        )
        assert 100 <= f["sent"] <= 130  # 4 s at 30 Hz
        assert layout["commands"] >= total["n"] and layout["alive_at_end"]
        assert all(0 < share < 2.5 for share in layout["cpu_share"].values())
        assert all(50 < mb < 4000 and math.isfinite(mb) for mb in layout["rss_mb"].values())
    assert set(report["layouts"]["separate"]["cpu_share"]) == {
        "encoder_node",
        "predictor_node",
        "planner_node",
    }
    assert set(report["layouts"]["one_process"]["cpu_share"]) == {"stack"}


def test_lever_overrides_go_into_the_nodes_parameter_file(tmp_path) -> None:
    traces = {"encoder": tmp_path / "e.jsonl", "planner": tmp_path / "p.jsonl"}
    path = trace_params(
        tmp_path, traces, {"planner_node.runtime.intra_op_threads": 1, "encoder_node.max_rate": 0}
    )
    params = yaml.safe_load(path.read_text())
    assert params["/**/planner_node"]["ros__parameters"] == {
        "latency_trace": str(traces["planner"]), "goal_memory_dir": str(tmp_path / "goals"),
        "runtime.intra_op_threads": 1,
    }  # fmt: skip
    assert params["/**/encoder_node"]["ros__parameters"] == {
        "latency_trace": str(traces["encoder"]),
        "max_rate": 0,
    }
    with pytest.raises(ValueError, match=r"<node>\.<parameter>"):
        trace_params(tmp_path, traces, {"camera_node.rate": 1})
