"""Bad input sent over DDS to the running stack (sim_node, encoder, predictor, planner).

One graph serves the module. Each case publishes one kind of bad message on the live topics (a
few times: a best-effort, depth-1 subscriber may take a newer good message instead) and waits for
the node(s) that must refuse it to name the reason in /diagnostics and in a log line. At the end:
every node is still running, every command the planner sent stayed inside the joint limits and
within one step of the arm, an e-stop flood left the robot stopped, and the planner still plans.

Every message the test sends is marked with frame_id `bad_input`, so the command and joint-state
monitors can tell the planner's and the robot's messages from the test's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, Header, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ami_ros.ros.conversions import latent_to_image, to_time
from ami_ros.ros.qos import LATCHED

pytestmark = pytest.mark.ros

ROBOT = "config/robots/tabletop_arm.yaml"
JOINTS = ["joint1", "joint2", "joint3", "joint4"]
LOWER, UPPER = np.array([-1.9, -2.4, -2.4, -2.0]), np.array([1.9, 2.4, 2.4, 2.0])
MAX_STEP = 0.3  # safety.max_step of the robot config
LATENT = (65, 16)
MARK = "bad_input"


@pytest.fixture(scope="module")
def sim_node_params():
    return {"publish_clock": False, "seed": 100_011, "diagnostics_period": 0.3}


def header(stamp: float | None = None) -> Header:
    return Header(stamp=to_time(time.time() if stamp is None else stamp), frame_id=MARK)


def image(encoding: str, height: int, width: int, step: int, size: int, stamp: float | None = None) -> Image:
    msg = Image(encoding=encoding, height=height, width=width, step=step, is_bigendian=0)
    msg.data = bytes(size)
    msg.header = header(stamp)
    return msg


def rgb(height: int, width: int, stamp: float | None = None) -> Image:
    return image("rgb8", height, width, 3 * width, 3 * width * height, stamp)


def joints(names=JOINTS, positions=(0.1, 0.2, 0.3, 0.4), stamp: float | None = None) -> JointState:
    return JointState(header=header(stamp), name=list(names), position=[float(p) for p in positions])


def latent(values: np.ndarray | None = None, stamp: float | None = None, **fields: Any) -> Image:
    msg = latent_to_image(np.zeros(LATENT, np.float32) if values is None else values, header(stamp))
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


def trajectory(names=JOINTS, points=(((0.0, 0.0, 0.0, 0.0), 1.0),), velocities=None, stamp=0.0):
    msg = JointTrajectory(joint_names=list(names))
    msg.header = Header(stamp=to_time(stamp), frame_id=MARK)
    for i, (positions, t) in enumerate(points):
        point = JointTrajectoryPoint(positions=[float(p) for p in positions])
        point.time_from_start = Duration(sec=int(t), nanosec=round((t % 1) * 1e9))
        if velocities is not None:
            point.velocities = [float(v) for v in velocities[i]]
        msg.points.append(point)
    return msg


def with_nan(index: int, value: float) -> np.ndarray:
    values = np.zeros(LATENT, np.float32)
    values.flat[index] = value
    return values


@dataclasses.dataclass(frozen=True)
class Case:
    """One kind of bad input: where it goes, what builds it, who must refuse it and how."""

    id: str
    topic: str  # a key of Stack.publishers
    build: Callable[[], Any]
    nodes: tuple[str, ...]  # the nodes whose diagnostics and log must name the reason
    reason: str  # a substring of the reason


CASES = [
    # camera/image_raw -> encoder_node
    Case(
        "image_rgba8",
        "camera",
        lambda: image("rgba8", 8, 8, 32, 256),
        ("encoder",),
        "unsupported image encoding 'rgba8'",
    ),
    Case(
        "image_16UC1",
        "camera",
        lambda: image("16UC1", 8, 8, 16, 128),
        ("encoder",),
        "unsupported image encoding '16UC1'",
    ),
    Case(
        "image_no_encoding",
        "camera",
        lambda: image("", 8, 8, 24, 192),
        ("encoder",),
        "unsupported image encoding ''",
    ),
    Case(
        "image_step_too_small",
        "camera",
        lambda: image("rgb8", 8, 8, 20, 160),
        ("encoder",),
        "step 20 is less than width 8 x 3",
    ),
    Case(
        "image_data_short",
        "camera",
        lambda: image("rgb8", 8, 8, 24, 100),
        ("encoder",),
        "100 bytes of data, step x height is 192",
    ),
    Case(
        "image_data_long",
        "camera",
        lambda: image("rgb8", 8, 8, 24, 500),
        ("encoder",),
        "500 bytes of data, step x height is 192",
    ),
    Case(
        "image_height_lies",
        "camera",
        lambda: image("rgb8", 100_000, 8, 24, 192),
        ("encoder",),
        "192 bytes of data, step x height is 2400000",
    ),
    Case("image_zero_size", "camera", lambda: image("rgb8", 0, 0, 0, 0), ("encoder",), "empty image (0x0)"),
    Case(
        "image_zero_width", "camera", lambda: image("mono8", 16, 0, 0, 0), ("encoder",), "empty image (16x0)"
    ),
    Case(
        "image_too_large",
        "camera",
        lambda: image("mono8", 20_000, 20_000, 20_000, 64),
        ("encoder",),
        "20000x20000 is larger than",
    ),
    Case("image_stamp_zero", "camera", lambda: rgb(8, 8, stamp=0.0), ("encoder",), "stamp is zero"),
    Case(
        "image_stamp_future",
        "camera",
        lambda: rgb(8, 8, stamp=time.time() + 3600),
        ("encoder",),
        "s ahead of the clock",
    ),
    Case("image_stamp_past", "camera", lambda: rgb(8, 8, stamp=1000.0), ("encoder",), "s behind the clock"),
    # joint_states -> encoder_node and planner_node
    Case(
        "joints_nan",
        "joints",
        lambda: joints(positions=(0.0, np.nan, 0.0, 0.0)),
        ("encoder", "planner"),
        "non-finite position(s) for ['joint2']",
    ),
    Case(
        "joints_inf",
        "joints",
        lambda: joints(positions=(0.0, 0.0, np.inf, 0.0)),
        ("encoder", "planner"),
        "non-finite position(s) for ['joint3']",
    ),
    Case(
        "joints_missing",
        "joints",
        lambda: joints(JOINTS[:3], (0.0, 0.0, 0.0)),
        ("encoder", "planner"),
        "lacks joint(s) ['joint4']",
    ),
    Case(
        "joints_empty", "joints", lambda: joints([], ()), ("encoder", "planner"), "lacks joint(s) ['joint1'"
    ),
    Case(
        "joints_length_mismatch",
        "joints",
        lambda: joints(positions=(0.0, 0.0, 0.0)),
        ("encoder", "planner"),
        "has 4 names but 3 positions",
    ),
    Case(
        "joints_duplicate",
        "joints",
        lambda: joints([*JOINTS, "joint2"], (0.1, 0.2, 0.3, 0.4, 9.0)),
        ("encoder", "planner"),
        "duplicate joint name(s) ['joint2']",
    ),
    Case(
        "joints_stamp_zero",
        "joints",
        lambda: joints(stamp=0.0),
        ("encoder", "planner"),
        "joint_states ignored: stamp is zero",
    ),
    Case(
        "joints_stamp_future",
        "joints",
        lambda: joints(stamp=time.time() + 86_400),
        ("encoder", "planner"),
        "joint_states ignored: stamp is 86",
    ),
    Case(
        "joints_stamp_past",
        "joints",
        lambda: joints(stamp=time.time() - 3600),
        ("encoder", "planner"),
        "joint_states ignored: stamp is 36",
    ),
    # ami/latent from a foreign publisher -> predictor_node and planner_node
    Case(
        "latent_wrong_shape",
        "latent",
        lambda: latent(np.zeros((64, 16), np.float32)),
        ("predictor", "planner"),
        "got 32FC1 64x16",
    ),
    Case(
        "latent_wrong_encoding",
        "latent",
        lambda: latent(encoding="rgb8"),
        ("predictor", "planner"),
        "got rgb8 65x16",
    ),
    Case("latent_step_lies", "latent", lambda: latent(step=60), ("predictor", "planner"), "(step 60)"),
    Case(
        "latent_data_short",
        "latent",
        lambda: latent(data=bytes(100)),
        ("predictor", "planner"),
        "100 bytes of data, step x height is 4160",
    ),
    Case(
        "latent_nan",
        "latent",
        lambda: latent(with_nan(7, np.nan)),
        ("predictor", "planner"),
        "1 NaN and 0 infinite",
    ),
    Case(
        "latent_inf",
        "latent",
        lambda: latent(with_nan(9, np.inf)),
        ("predictor", "planner"),
        "0 NaN and 1 infinite",
    ),
    Case(
        "latent_stamp_future",
        "latent",
        lambda: latent(stamp=time.time() + 3600),
        ("predictor", "planner"),
        "ami/latent ignored: stamp is 3",
    ),
    # ami/goal_image (remapped to sim/goal_image) -> planner_node
    Case(
        "goal_image_rgba8",
        "goal",
        lambda: image("rgba8", 8, 8, 32, 256),
        ("planner",),
        "ami/goal_image ignored: unsupported image encoding 'rgba8'",
    ),
    Case(
        "goal_image_data_short",
        "goal",
        lambda: image("bgr8", 8, 8, 24, 10),
        ("planner",),
        "ami/goal_image ignored: 10 bytes of data",
    ),
    Case(
        "goal_image_zero_size",
        "goal",
        lambda: image("mono8", 0, 5, 5, 0),
        ("planner",),
        "ami/goal_image ignored: empty image (0x5)",
    ),
    # goal memory names -> planner_node
    Case(
        "goal_name_traversal",
        "goal_name",
        lambda: String(data="../../etc/passwd"),
        ("planner",),
        "invalid goal name '../../etc/passwd'",
    ),
    Case(
        "goal_name_unknown",
        "goal_name",
        lambda: String(data="never_saved"),
        ("planner",),
        "no goal named 'never_saved'",
    ),
    Case(
        "save_goal_bad_name", "save_goal", lambda: String(data="a/b"), ("planner",), "invalid goal name 'a/b'"
    ),
    # commands to the robot -> sim_node (and predictor_node, which forecasts commands)
    Case(
        "trajectory_unknown_joint",
        "trajectory",
        lambda: trajectory(["joint1", "joint2", "joint3", "elbow"]),
        ("sim",),
        "unknown joint name(s) ['elbow']",
    ),
    Case(
        "trajectory_duplicate_joint",
        "trajectory",
        lambda: trajectory(["joint1", "joint2", "joint3", "joint3"]),
        ("sim",),
        "duplicate joint name(s) ['joint3']",
    ),
    Case(
        "trajectory_partial",
        "trajectory",
        lambda: trajectory(JOINTS[:2], (((0.0, 0.0), 1.0),)),
        ("sim",),
        "partial joint set: missing ['joint3', 'joint4']",
    ),
    Case(
        "trajectory_nan",
        "trajectory",
        lambda: trajectory(points=(((0.0, np.nan, 0.0, 0.0), 1.0),)),
        ("sim",),
        "point 0: non-finite value",
    ),
    Case(
        "trajectory_out_of_range",
        "trajectory",
        lambda: trajectory(points=(((0.0, 0.0, 7.5, 0.0), 1.0),)),
        ("sim",),
        "joint3 = 7.5000 is outside its limits",
    ),
    Case(
        "trajectory_huge",
        "trajectory",
        lambda: trajectory(points=(((1e308, 0.0, 0.0, 0.0), 1.0),)),
        ("sim",),
        "joint1 = 100000000",
    ),
    Case(
        "trajectory_ragged",
        "trajectory",
        lambda: trajectory(points=(((0.0, 0.0, 0.0), 1.0),)),
        ("sim",),
        "point 0: positions has 3 values for 4 joint names",
    ),
    Case(
        "trajectory_times_decrease",
        "trajectory",
        lambda: trajectory(points=(((0.0,) * 4, 2.0), ((0.0,) * 4, 1.0))),
        ("sim",),
        "strictly increasing",
    ),
    Case(
        "trajectory_some_velocities",
        "trajectory",
        lambda: trajectory(points=(((0.0,) * 4, 1.0), ((0.0,) * 4, 2.0)), velocities=((0.0,) * 4, ())),
        ("sim",),
        "velocities must be given for every point or for none",
    ),
    Case(
        "trajectory_in_the_past",
        "trajectory",
        lambda: trajectory(stamp=1000.0),
        ("sim",),
        "trajectory ends in the past",
    ),
    Case(
        "forward_wrong_length",
        "forward",
        lambda: Float64MultiArray(data=[0.0, 0.0, 0.0]),
        ("sim",),
        "data: expected 4 values, got 3",
    ),
    Case(
        "forward_nan",
        "forward",
        lambda: Float64MultiArray(data=[0.0, 0.0, 0.0, np.nan]),
        ("sim",),
        "data: non-finite value",
    ),
    Case(
        "forward_out_of_range",
        "forward",
        lambda: Float64MultiArray(data=[-3.0, 0.0, 0.0, 0.0]),
        ("sim",),
        "joint1 = -3.0000 is outside its limits",
    ),
]


class Stack:
    def __init__(self, ros, sim_node, start_node, tmp_path_factory) -> None:
        self.ros = ros
        self.goals = tmp_path_factory.mktemp("goals")
        self.procs = {"sim": sim_node}
        robot = ("--params-file", ROBOT)
        self.procs["encoder"] = start_node(
            "ami_ros.ros.encoder_node", {"diagnostics_period": 0.3}, "encoder", robot
        )
        self.procs["predictor"] = start_node(
            "ami_ros.ros.predictor_node", {"diagnostics_period": 0.3}, "predictor", robot
        )
        self.procs["planner"] = start_node(
            "ami_ros.ros.planner_node",
            {"goal_memory_dir": str(self.goals), "diagnostics_period": 0.3},
            "planner",
            (*robot, "-r", "ami/goal_image:=sim/goal_image"),
        )
        node = ros.node
        self.publishers = {
            "camera": node.create_publisher(Image, "camera/image_raw", 10),
            "joints": node.create_publisher(JointState, "joint_states", 10),
            "latent": node.create_publisher(Image, "ami/latent", 10),
            "goal": node.create_publisher(Image, "sim/goal_image", LATCHED),
            "goal_name": node.create_publisher(String, "ami/goal_name", 10),
            "save_goal": node.create_publisher(String, "ami/save_goal", 10),
            "trajectory": node.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10),
            "forward": node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10),
            "estop": node.create_publisher(Bool, "ami/estop", 10),
        }
        self.commands: list[tuple[float, JointTrajectory]] = []
        self.robot_joints: list[tuple[float, np.ndarray]] = []
        self.resets: list[float] = []
        node.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self._on_command, 100)
        node.create_subscription(JointState, "joint_states", self._on_joints, 100)
        self.progress = ros.subscribe(DiagnosticStatus, "ami/progress", keep=20)
        self.diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics", keep=200)
        self.enable = node.create_client(SetBool, "ami/enable")
        ros.spin_until(
            lambda: self.state() == "planning", 120.0, "the planner to plan towards the sim's goal"
        )

    def _on_command(self, msg: JointTrajectory) -> None:
        if msg.header.frame_id != MARK:
            self.commands.append((time.monotonic(), msg))

    def _on_joints(self, msg: JointState) -> None:
        if msg.header.frame_id != MARK and msg.name == JOINTS:
            self.robot_joints.append((time.monotonic(), np.array(msg.position)))
            del self.robot_joints[:-2000]

    def state(self) -> str:
        self.progress.clear()
        msg = self.ros.spin_until(lambda: self.progress and self.progress[-1], 10.0, "ami/progress")
        return msg.message

    def check_alive(self) -> None:
        for proc in self.procs.values():
            proc.check_alive()

    def publish(self, topic: str, msg: Any) -> None:
        publisher = self.publishers[topic]
        self.ros.spin_until(publisher.get_subscription_count, 10.0, f"a subscriber on {publisher.topic_name}")
        publisher.publish(msg)

    def reported(self, node: str, reason: str) -> bool:
        """Whether a /diagnostics status of `node` names `reason` in one of its values."""
        return any(
            s.name.startswith(f"{node}_node") and any(reason in kv.value for kv in s.values)
            for m in self.diagnostics
            for s in m.status
        )

    def reset_sim(self) -> None:
        client = self.ros.node.create_client(Trigger, "sim/reset")
        assert self.ros.call(client, Trigger.Request()).success
        self.resets.append(time.monotonic())  # the arm jumps: a plan made just before is stale


@pytest.fixture(scope="module")
def stack(ros, sim_node, start_node, tmp_path_factory) -> Stack:
    return Stack(ros, sim_node, start_node, tmp_path_factory)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_its_reason(stack: Stack, case: Case) -> None:
    stack.diagnostics.clear()
    pending = set(case.nodes)
    deadline = time.monotonic() + 10.0
    while pending:
        stack.publish(case.topic, case.build())
        stack.ros.spin_for(0.15)
        pending = {
            n
            for n in pending
            if not (stack.reported(n, case.reason) and case.reason in stack.procs[n].log(200_000))
        }
        stack.check_alive()
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}:\n{stack.procs[n].log(1500)}" for n in pending)
            pytest.fail(f"{case.id}: {sorted(pending)} did not report {case.reason!r}\n{logs}")


def test_reordered_joints_with_an_extra_one_are_accepted(stack: Stack) -> None:
    """A joint_state_broadcaster may list more joints, in any order: matched by name, no error."""
    names = ["gripper", *JOINTS[::-1]]
    stack.diagnostics.clear()
    for _ in range(5):
        stack.publish("joints", joints(names, (0.0, *stack.robot_joints[-1][1][::-1])))
        stack.ros.spin_for(0.1)
    stack.ros.spin_for(0.5)
    assert not any(stack.reported(n, "gripper") for n in ("encoder", "planner"))
    stack.check_alive()


def test_a_flood_of_one_bad_input_is_logged_a_few_times_not_every_time(stack: Stack) -> None:
    before = stack.procs["sim"].log(10_000_000).count("flood_joint")
    for _ in range(100):
        stack.publish("trajectory", trajectory(["joint1", "joint2", "joint3", "flood_joint"]))
        stack.ros.spin_for(0.01)
    stack.ros.spin_until(lambda: stack.reported("sim", "flood_joint"), 5.0, "the flood in /diagnostics")
    logged = stack.procs["sim"].log(10_000_000).count("flood_joint") - before
    assert 1 <= logged <= 5, f"{logged} log lines for 100 bad commands in ~1-2 s"


def test_estop_toggled_at_high_rate_stops_the_robot_and_enable_resumes(stack: Stack) -> None:
    stack.reset_sim()
    stack.ros.spin_until(lambda: stack.state() == "planning", 15.0, "planning towards the new goal")
    for i in range(200):  # 200 toggles at ~100 Hz, interleaved with enable requests
        stack.publish("estop", Bool(data=i % 2 == 0))
        if i % 20 == 10:
            stack.enable.call_async(SetBool.Request(data=True))
        stack.ros.spin_for(0.005)
    stack.publish("estop", Bool(data=True))  # the last word is a stop
    stack.ros.spin_until(lambda: stack.state() == "disabled", 5.0, "the disabled state")
    stack.ros.spin_for(0.3)  # an enable request still in flight may land: stop again after it
    stack.publish("estop", Bool(data=True))
    stack.ros.spin_until(lambda: stack.state() == "disabled", 5.0, "the disabled state")
    count = len(stack.commands)
    stack.ros.spin_for(1.0)
    assert not [m for _, m in stack.commands[count:] if m.points], "the robot was commanded while e-stopped"
    assert stack.ros.call(stack.enable, SetBool.Request(data=True)).success
    stack.ros.spin_until(
        lambda: any(m.points for _, m in stack.commands[count:]), 10.0, "commands after enabling"
    )
    stack.check_alive()


def test_after_all_bad_input_no_node_died_and_no_command_left_the_limits(stack: Stack) -> None:
    stack.reset_sim()  # a fresh goal (a case above may have changed it)
    count = len(stack.commands)
    stack.ros.spin_until(
        lambda: len([m for _, m in stack.commands[count:] if m.points]) >= 3, 30.0, "3 commands"
    )
    stack.check_alive()

    def joint_surprise():
        for m in stack.diagnostics:
            for s in m.status:
                values = {kv.key: kv.value for kv in s.values}
                if (
                    s.name.startswith("predictor_node")
                    and values.get("surprise_joints_window_mean", "nan") != "nan"
                ):
                    return float(values["surprise_joints_window_mean"])
        return None

    assert np.isfinite(stack.ros.spin_until(joint_surprise, 10.0, "the predictor's joint surprise"))
    moves = [(t, m) for t, m in stack.commands if m.points]
    assert len(moves) >= 10
    times = np.array([t for t, _ in stack.robot_joints])
    for t, msg in moves:
        assert msg.joint_names == JOINTS and len(msg.points) == 1
        target = np.array(msg.points[0].positions)
        assert np.all(np.isfinite(target)) and np.all(target >= LOWER) and np.all(target <= UPPER)
        i = int(np.searchsorted(times, t)) - 1
        just_reset = any(0 <= t - r < 1.0 for r in stack.resets)  # teleported while a plan was made
        if i >= 0 and not just_reset:  # one step from the arm, give or take its motion since the tick
            assert np.abs(target - stack.robot_joints[i][1]).max() <= MAX_STEP + 0.15
