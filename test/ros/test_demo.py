"""`ami-ros demo` end to end: sim_node and the node graph over loopback DDS, the three nodes as
separate processes and then in one process (ami_stack), latency reported for each."""

import json
import os
import subprocess
import sys

import pytest
from conftest import DOMAIN_ID, ROOT, ROS_ENV


@pytest.mark.ros
def test_demo_runs_the_stack_and_writes_its_run_folder(tmp_path):
    env = {**os.environ, **ROS_ENV, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "ami_ros.cli", "demo", "--episodes", "1", "--tasks", "reach", "push",
         "--seconds", "4", "--stacks", "separate", "one_process", "--output", str(tmp_path),
         "--domain-id", str(DOMAIN_ID + 100)],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    for stack in ("separate", "one_process"):
        assert f"[{stack}] reach episode 1/1" in out.stdout and f"[{stack}] push episode 1/1" in out.stdout
        assert f"{stack}: camera stamp -> command p50" in out.stdout
    run = tmp_path / os.listdir(tmp_path)[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["episodes_completed"] == 4
    assert {ep["stack"] for ep in summary["episodes"]} == {"separate", "one_process"}
    for stack, figures in summary["latency_by_stack"].items():
        # planning ticks with a measured latency (a loaded 2-core machine gave the one-process stack
        # only 4 in two 4 s episodes: how many is for the benchmarks, that there are any for this test)
        assert figures["ticks"] >= 1, (stack, figures)
        assert 0 < figures["stamp_to_command_ms_p50"] <= figures["stamp_to_command_ms_p99"]
    assert set(summary["success_rate"]) == {"reach", "push"}
    for episode in summary["episodes"]:
        # separate processes command in every episode; the one-process stack on 2 busy cores can
        # starve a whole 4 s episode (its encoder dropped frames for want of a joint state within
        # max_skew, latents 1.5-2 s stale), so for it the per-layout check above must do
        if episode["stack"] == "separate":
            assert episode["ticks"] >= 1, episode
        assert episode["start_m"] > 0 and episode["final_m"] >= 0
    assert 0 < summary["plan_tick_ms_p50"] <= summary["plan_tick_ms_p99"]
    assert 0 < summary["stamp_to_command_ms_p99"] < 5000
    assert (run / "reach_episode.gif").stat().st_size > 10_000
    assert (run / "push_episode.gif").stat().st_size > 10_000
    assert (run / "energy.png").stat().st_size > 1_000
    assert "reset: seed 200001, task reach" in (run / "sim_node.log").read_text()
