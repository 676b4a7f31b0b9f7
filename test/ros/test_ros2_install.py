"""The package as a ROS 2 user runs it: `colcon build`, `ros2 launch`, `ros2 lifecycle`, Ctrl-C.

The install is built by ../shared/ros2-user-env/setup.sh (an underlay standing in for
/opt/ros/kilted, the real launch / launch_ros / ros2cli, a colcon workspace with a copy of this
checkout), once per session. What arrives is read by the test's own rclpy node on the same
loopback-only domain; ground truth (sim/ poses) only measures, the stack never sees it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from conftest import Ros2Install, RosHarness
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from trajectory_msgs.msg import JointTrajectory

from ami_ros.ros.qos import LATCHED

pytestmark = pytest.mark.ros

SUCCESS_M = 0.03  # end effector within 3 cm of the goal (the evaluation's threshold)
REACH_S = 180.0  # generous: two cores shared with other work; the planner usually needs 10-30 s


class Launch:
    """`ros2 launch ami_ros <file> <args>` as a user types it, in its own session (process group)."""

    def __init__(self, install: Ros2Install, args: str, log: Path) -> None:
        self.log_path = log
        with open(log, "wb") as f:
            self.popen = subprocess.Popen(
                install.shell(f"exec ros2 launch ami_ros {args}"),
                stdout=f, stderr=subprocess.STDOUT, env=install.env(), start_new_session=True,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def processes(self) -> list[str]:
        """Processes still alive in the launch's session: launch itself and every node it started."""
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.popen.pid and fields[0] != "Z":  # fields[3]: session id
                alive.append(stat.parent.name)
        return alive

    def ctrl_c(self, timeout: float = 30.0, terminal: bool = False) -> int:
        """SIGINT to ros2 launch (which forwards it to the nodes); `terminal`: to every process of
        the launch, as Ctrl-C in a terminal sends it (each node then gets two). Returns launch's
        exit code."""
        if terminal:
            os.killpg(self.popen.pid, signal.SIGINT)
        else:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:  # show what still runs, and in which kernel wait
            ps = ["ps", "-o", "pid,stat,wchan:24,etime,cmd", "-g", str(self.popen.pid)]
            print(subprocess.run(ps, capture_output=True, text=True).stdout, flush=True)
            raise
        finally:
            deadline = time.monotonic() + 10.0
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)

    def kill(self) -> None:
        if self.processes():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


class Robot:
    """What the test reads from one namespaced robot: commands, progress, ground truth."""

    def __init__(self, ros: RosHarness, ns: str) -> None:
        self.ros, self.ns = ros, ns
        self.commands = ros.subscribe(JointTrajectory, f"{ns}/arm_controller/joint_trajectory", keep=500)
        self.progress = ros.subscribe(DiagnosticStatus, f"{ns}/ami/progress", keep=20)
        # depth 1: what is taken is the newest pose sent, not one queued while the test did not spin
        self.effector = ros.subscribe(PoseStamped, f"{ns}/sim/end_effector_pose", 1, keep=1)
        self.goal = ros.subscribe(PoseStamped, f"{ns}/sim/goal_pose", LATCHED, keep=1)

    def values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.progress[-1].values} if self.progress else {}

    def reached(self) -> bool:
        return self.values().get("reached") == "true"

    def goal_xy(self) -> np.ndarray:
        p = self.goal[-1].pose.position
        return np.array([p.x, p.y])

    def distance(self) -> float:
        """Ground truth, read now: end effector to goal, metres (x, y: the arm is planar).

        The pose held from before is dropped and the sim's next one awaited: it may be seconds old
        (the test does not spin while `ros2 lifecycle get` runs), and when a wait ends on a progress
        report, the poses sent with it have not been handed over yet (the executor serves the
        subscriptions in turn): an old one showed the arm near its start as planner_node said reached.
        """
        self.effector.clear()
        self.ros.spin_until(lambda: self.effector and self.goal, 20.0, f"{self.ns}/sim ground truth")
        p = self.effector[-1].pose.position
        return float(np.linalg.norm(np.array([p.x, p.y]) - self.goal_xy()))

    def moves(self) -> int:
        return sum(1 for c in self.commands if c.points)


def stop_cleanly(launch: Launch, nodes: int, terminal: bool = False) -> None:
    """Ctrl-C: launch exits 0, every process it started is gone, no traceback anywhere."""
    assert launch.ctrl_c(terminal=terminal) == 0, launch.log()[-4000:]
    assert not launch.processes(), f"still running after Ctrl-C: {launch.processes()}"
    log = launch.log()
    assert log.count("process has finished cleanly") == nodes, log[-4000:]
    for bad in ("Traceback", "exception was never retrieved", "process has died"):
        assert bad not in log, f"{bad!r} in the launch output:\n{log[-6000:]}"


def test_symlink_install_finds_the_model_and_lifecycle_cli_drives_a_node(ros2_install, tmp_path):
    """`colcon build --symlink-install`, then `ros2 run` a node unconfigured and configure it with
    `ros2 lifecycle set`: the model comes from the symlinked share folder."""
    root = ros2_install.root
    ws = root / "ws_symlink"
    (ws / "src").mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", *map(str, (root / "ws" / "src").iterdir()), str(ws / "src")], check=True)
    command = f"source {root}/opt/ros/kilted/setup.bash && cd {ws} && colcon build --symlink-install"
    build = subprocess.run(
        ["bash", "-c", command],
        capture_output=True, text=True, timeout=300, env=ros2_install.env(),
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    log = tmp_path / "encoder.log"
    with open(log, "wb") as f:
        node = subprocess.Popen(
            ros2_install.shell(
                "exec ros2 run ami_ros encoder_node --ros-args -r __ns:=/sym -p autostart:=false",
                workspace="ws_symlink",
            ),
            stdout=f, stderr=subprocess.STDOUT, env=ros2_install.env(), start_new_session=True,
        )  # fmt: skip
    try:
        cli = "ros2 lifecycle {} --no-daemon --spin-time 5 /sym/encoder_node"
        state = ros2_install.run(cli.format("get"), workspace="ws_symlink")
        assert state.startswith("unconfigured"), state
        out = ros2_install.run(cli.format("set") + " configure", timeout=120, workspace="ws_symlink")
        assert "Transitioning successful" in out, out + log.read_text()
        assert ros2_install.run(cli.format("get"), workspace="ws_symlink").startswith("inactive")
        # gazebo.launch.py cannot run here (no Gazebo), but it loads and declares its arguments
        shown = ros2_install.run("ros2 launch ami_ros gazebo.launch.py --show-args", workspace="ws_symlink")
        assert "'one_process'" in shown and "'model_dir'" in shown
        share = ws / "install" / "ami_ros" / "share" / "ami_ros" / "models" / "tabletop_arm"
        assert f"model {share} (encoder.onnx) loaded" in log.read_text()
    finally:
        os.killpg(node.pid, signal.SIGINT)  # Ctrl-C in a terminal: ros2 run and the node both get it
        assert node.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_sim_launch_reaches_its_goal_and_stops_cleanly_on_ctrl_c(ros2_install, ros, tmp_path):
    """As shipped, in a plain colcon install: no namespace, three separate node processes."""
    robot = Robot(ros, "")
    args = "sim.launch.py task:=reach seed:=300000"
    launch = Launch(ros2_install, args, tmp_path / "launch.log")
    try:
        ros.spin_until(lambda: robot.moves() >= 3, REACH_S, "commands from the stack")
        for node in ("encoder_node", "predictor_node", "planner_node"):  # one by one: a listing of all
            # managed nodes shows only those discovered within its spin time
            state = ros2_install.run(f"ros2 lifecycle get --no-daemon --spin-time 5 /{node}")
            assert state.startswith("active"), (node, state)
        ros.spin_until(robot.reached, REACH_S, "ami/progress: goal reached")
        distance = robot.distance()
        assert distance < SUCCESS_M, f"planner says reached; the sim says {distance:.3f} m"
        # Ctrl-C as a terminal sends it, to the whole process group: a SIGINT to ros2 launch alone
        # sometimes waits for the next output of a node (ros2/launch#473), and a node holding at
        # its goal prints nothing; 3 of 5 runs of the ROS tests timed out here that way
        stop_cleanly(launch, nodes=4, terminal=True)
    finally:
        launch.kill()


def test_two_robots_in_one_graph_each_reach_their_own_goal(ros2_install, ros, tmp_path):
    """robot1 (three node processes) and robot2 (the one-process stack): two embedded robots, two
    goals, one domain."""
    robots = {ns: Robot(ros, f"/{ns}") for ns in ("robot1", "robot2")}
    layouts = (("robot1", 300000, "false"), ("robot2", 11, "true"))
    launches = [
        Launch(
            ros2_install,
            f"sim.launch.py task:=reach seed:={seed} namespace:={ns} one_process:={one}",
            tmp_path / f"{ns}.log",
        )
        for ns, seed, one in layouts
    ]
    try:
        ros.spin_until(lambda: all(r.goal and r.effector for r in robots.values()), 120.0, "both sims")
        goals = [r.goal_xy() for r in robots.values()]
        assert np.linalg.norm(goals[0] - goals[1]) > 2 * SUCCESS_M  # reaching one is not reaching both
        ros.spin_until(lambda: all(r.reached() for r in robots.values()), REACH_S, "both goals reached")
        for ns, robot in robots.items():
            distance = robot.distance()
            assert distance < SUCCESS_M, f"{ns}: {distance:.3f} m from its goal"
            # no cross-talk: one commander per robot, each robot's own clock, no shared /clock
            assert ros.node.count_publishers(f"/{ns}/arm_controller/joint_trajectory") == 1
            assert ros.node.count_publishers(f"/{ns}/clock") == 1
        unshared = ("/clock", "/arm_controller/joint_trajectory")  # (the last test's robot has gone)
        ros.spin_until(lambda: not any(map(ros.node.count_publishers, unshared)), 20.0, "nothing shared")
        for launch, nodes in zip(launches, (4, 2), strict=True):
            stop_cleanly(launch, nodes=nodes, terminal=True)
    finally:
        for launch in launches:
            launch.kill()
