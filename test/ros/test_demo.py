"""`ami-ros demo` end to end: sim_node and the driver as separate processes over loopback DDS."""

import json
import os
import subprocess
import sys

import pytest
from conftest import DOMAIN_ID, ROOT, ROS_ENV


@pytest.mark.ros
def test_demo_runs_an_episode_and_writes_its_run_folder(tmp_path):
    env = {**os.environ, **ROS_ENV, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "ami_ros.cli", "demo", "--episodes", "1", "--output", str(tmp_path),
         "--domain-id", str(DOMAIN_ID + 100)],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout[out.stdout.index("{") :])
    assert summary["episodes_completed"] == 1
    episode = summary["episodes"][0]
    assert episode["final_error_m"] < 0.02, episode  # the trajectory controller tracks the goal pose
    assert summary["real_time_factor"] > 0.5
    run = tmp_path / os.listdir(tmp_path)[0]
    assert (run / "demo.gif").stat().st_size > 10_000
    assert "reset: seed 1000" in (run / "sim_node.log").read_text()
