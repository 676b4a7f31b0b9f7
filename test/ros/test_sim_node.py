"""sim_node as a real process: what arrives on its topics, and how it treats good and bad commands.

One sim_node process serves the module (tests run in file order and share it); each test reads
the arm's state from joint_states before acting, so it does not depend on where the last one left
the arm.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ami_ros.ros.conversions import image_to_numpy, to_seconds
from ami_ros.ros.qos import LATCHED

pytestmark = pytest.mark.ros

JOINTS = ["joint1", "joint2", "joint3", "joint4"]
WIDTH, HEIGHT = 96, 80  # not the default size: proves the sim.image_* parameters are applied
SEED = 5
BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
TOLERANCE = 0.02  # rad


@pytest.fixture(scope="module")
def sim_node_params() -> dict[str, Any]:
    return {"sim.image_width": WIDTH, "sim.image_height": HEIGHT, "seed": SEED, "diagnostics_period": 0.2}


class Sim:
    """The test's view of sim_node: its topics, commands and services."""

    def __init__(self, ros, proc) -> None:
        self.ros, self.proc, node = ros, proc, ros.node
        self.joints = ros.subscribe(JointState, "joint_states", keep=5)
        self.diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics", keep=5)
        self.clock = ros.subscribe(Clock, "/clock", keep=500)
        self.object_pose = ros.subscribe(PoseStamped, "sim/object_pose", keep=1)
        self.trajectory = node.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
        self.forward = node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        self.reset_client = node.create_client(Trigger, "sim/reset")
        self.params_client = node.create_client(SetParameters, "sim_node/set_parameters")
        ros.spin_until(lambda: self.diagnostics and self.joints, 10.0, "diagnostics and joint_states")
        ros.spin_until(
            lambda: self.trajectory.get_subscription_count() and self.forward.get_subscription_count(),
            10.0,
            "sim_node's command subscriptions",
        )

    def positions(self) -> np.ndarray:
        """Joint positions (joint1..4) from the latest joint_states, after a fresh one arrives."""
        self.joints.clear()
        msg = self.ros.spin_until(lambda: self.joints and self.joints[-1], 5.0, "joint_states")
        by_name = dict(zip(msg.name, msg.position, strict=True))
        return np.array([by_name[j] for j in JOINTS])

    def status(self) -> dict[str, str]:
        """Key-values of the latest /diagnostics status, after a fresh one arrives."""
        self.diagnostics.clear()
        msg = self.ros.spin_until(lambda: self.diagnostics and self.diagnostics[-1], 5.0, "/diagnostics")
        return {kv.key: kv.value for kv in msg.status[0].values}

    def wait_until_at(self, target: np.ndarray, timeout: float = 5.0) -> np.ndarray:
        def reached() -> bool:
            return bool(self.joints) and np.abs(_positions(self.joints[-1]) - target).max() < TOLERANCE

        self.ros.spin_until(reached, timeout, f"the arm to reach {np.round(target, 3).tolist()}")
        return _positions(self.joints[-1])

    def next_rejection(self, count_before: int) -> dict[str, str]:
        """The diagnostics status once `rejected_commands` exceeds `count_before`."""

        def rejected() -> dict[str, str] | None:
            status = self.status()
            return status if int(status["rejected_commands"]) > count_before else None

        return self.ros.spin_until(rejected, 5.0, "the command to be rejected")

    def set_parameters(self, **values: Any) -> list:
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        return self.ros.call(self.params_client, request).results

    def latched(self, msg_type: type, topic: str) -> Any:
        """Subscribe after the fact (TRANSIENT_LOCAL) and return the message that was kept."""
        received = self.ros.subscribe(msg_type, topic, LATCHED, keep=1)
        return self.ros.spin_until(lambda: received and received[-1], 5.0, f"latched {topic}")


def _positions(msg: JointState) -> np.ndarray:
    by_name = dict(zip(msg.name, msg.position, strict=True))
    return np.array([by_name[j] for j in JOINTS])


def toward_zero(q: np.ndarray, step: float = 0.3) -> np.ndarray:
    """A target `step` rad from `q` on every joint, towards the middle of the range (within limits)."""
    return q - step * np.where(q >= 0, 1.0, -1.0)


def trajectory(names: list[str], points: list[list[float]], times: list[float]) -> JointTrajectory:
    msg = JointTrajectory(joint_names=names)
    for positions, t in zip(points, times, strict=True):
        sec = int(t)
        msg.points.append(
            JointTrajectoryPoint(
                positions=positions, time_from_start=Duration(sec=sec, nanosec=int((t - sec) * 1e9))
            )
        )
    return msg


@pytest.fixture(scope="module")
def sim(ros, sim_node) -> Sim:
    return Sim(ros, sim_node)


def test_camera_images_camera_info_and_joint_states_arrive(sim: Sim) -> None:
    images = sim.ros.subscribe(Image, "camera/image_raw", BEST_EFFORT, keep=10)
    infos = sim.ros.subscribe(CameraInfo, "camera/camera_info", 10, keep=30)
    sim.ros.spin_until(lambda: len(images) >= 6 and len(infos) >= 6, 10.0, "6 images and camera infos")

    image = images[-1]
    assert (image.encoding, image.width, image.height, image.step) == ("rgb8", WIDTH, HEIGHT, 3 * WIDTH)
    assert image.header.frame_id == "camera_optical_frame"
    pixels = image_to_numpy(image)
    assert pixels.shape == (HEIGHT, WIDTH, 3) and pixels.std() > 5  # a rendered scene, not a blank

    info = next(i for i in infos if i.header.stamp == image.header.stamp)  # same stamp as its image
    assert (info.width, info.height, info.distortion_model) == (WIDTH, HEIGHT, "plumb_bob")
    assert info.header.frame_id == "camera_optical_frame" and list(info.d) == [0.0] * 5
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    assert fx == fy > 0 and (cx, cy) == ((WIDTH - 1) / 2, (HEIGHT - 1) / 2) and info.p[0] == fx

    stamps = np.array([to_seconds(i.header.stamp) for i in images])
    assert np.all(np.diff(stamps) > 0), f"image stamps must increase: {stamps}"
    assert stamps[-1] < 1e6, "stamps must be simulated time, not wall time"
    assert 1 / 30 - 0.003 <= np.median(np.diff(stamps)) <= 1 / 30 + 0.003  # 30 Hz of simulated time

    joints = sim.joints[-1]
    assert (
        list(joints.name) == JOINTS
        and len(joints.position) == len(joints.velocity) == len(joints.effort) == 4
    )


def test_joint_trajectory_with_shuffled_names_reaches_its_target(sim: Sim) -> None:
    q0 = sim.positions()
    target = toward_zero(q0)
    order = [2, 0, 3, 1]  # joint3, joint1, joint4, joint2
    mid = (q0 + target) / 2
    msg = trajectory([JOINTS[i] for i in order], [mid[order].tolist(), target[order].tolist()], [0.4, 0.8])
    sim.trajectory.publish(msg)
    reached = sim.wait_until_at(target)
    sim.ros.spin_for(0.3)  # after the last point the last point is held
    np.testing.assert_allclose(sim.positions(), reached, atol=TOLERANCE)


BAD_TRAJECTORIES = {
    "unknown joint": (["joint1", "joint2", "joint3", "elbow"], None, [0.5], "unknown joint"),
    "partial joints": (JOINTS[:3], 3, [0.5], "partial joint set"),
    "duplicate joint": (["joint1", "joint1", "joint2", "joint3"], None, [0.5], "duplicate joint"),
    "length mismatch": (JOINTS, 3, [0.5], "3 values for 4 joint names"),
    "nan": (JOINTS, "nan", [0.5], "non-finite"),
    "out of limits": (JOINTS, "limit", [0.5], "outside its limits"),
    "non-increasing time": (JOINTS, None, [0.5, 0.5], "strictly increasing"),
}


@pytest.mark.parametrize("case", list(BAD_TRAJECTORIES))
def test_invalid_trajectory_is_rejected_and_the_arm_holds(sim: Sim, case: str) -> None:
    names, variant, times, reason = BAD_TRAJECTORIES[case]
    q0 = sim.positions()
    target = toward_zero(q0, 0.5)
    if variant == "nan":
        target[1] = np.nan
    elif variant == "limit":
        target[0] = 2.5  # joint1 limit is 1.9 rad
    positions = target[:variant].tolist() if isinstance(variant, int) else target.tolist()
    rejected = int(sim.status()["rejected_commands"])

    sim.trajectory.publish(trajectory(names, [positions] * len(times), times))
    status = sim.next_rejection(rejected)
    assert (
        reason in status["last_rejection"] and "arm_controller/joint_trajectory" in status["last_rejection"]
    )
    sim.ros.spin_for(0.3)
    np.testing.assert_allclose(sim.positions(), q0, atol=0.005, err_msg="the arm moved on a rejected command")


def test_node_keeps_serving_after_rejections(sim: Sim) -> None:
    target = toward_zero(sim.positions())
    sim.trajectory.publish(trajectory(JOINTS, [target.tolist()], [0.5]))
    sim.wait_until_at(target)
    assert "rejected command" in sim.proc.log(), "rejections are logged"


def test_rejected_command_keeps_the_motion_and_empty_trajectory_cancels_it(sim: Sim) -> None:
    target = toward_zero(sim.positions(), 0.4)
    sim.trajectory.publish(trajectory(JOINTS, [target.tolist()], [1.2]))
    sim.ros.spin_for(0.3)
    sim.trajectory.publish(trajectory(["elbow"], [[0.0]], [0.5]))  # rejected: the motion goes on
    sim.wait_until_at(target)

    q0 = sim.positions()
    target = toward_zero(q0, 0.4)
    sim.trajectory.publish(trajectory(JOINTS, [target.tolist()], [1.2]))
    sim.ros.spin_for(0.4)
    sim.trajectory.publish(JointTrajectory(joint_names=JOINTS))  # no points: stop and hold
    sim.ros.spin_for(0.3)
    stopped = sim.positions()
    sim.ros.spin_for(0.5)
    np.testing.assert_allclose(sim.positions(), stopped, atol=0.005)
    assert np.abs(stopped - target).max() > 0.1 and np.abs(stopped - q0).max() > 0.02


def test_forward_position_command_moves_the_arm_and_wrong_length_is_rejected(sim: Sim) -> None:
    target = toward_zero(sim.positions())
    sim.forward.publish(Float64MultiArray(data=target.tolist()))
    sim.wait_until_at(target)

    rejected = int(sim.status()["rejected_commands"])
    sim.forward.publish(Float64MultiArray(data=[0.0, 0.0]))
    status = sim.next_rejection(rejected)
    assert "forward_position_controller/commands: data: expected 4 values" in status["last_rejection"]
    sim.ros.spin_for(0.2)
    np.testing.assert_allclose(sim.positions(), target, atol=TOLERANCE)  # still holding the valid target


def test_reset_service_returns_the_seed_and_republishes_the_goal_image(sim: Sim) -> None:
    before = int(sim.status()["seed"])
    response = sim.ros.call(sim.reset_client, Trigger.Request())
    assert response.success and int(response.message) == before + 1
    assert sim.status()["seed"] == response.message
    goal = sim.latched(Image, "sim/goal_image")  # subscribed after the reset: TRANSIENT_LOCAL
    assert goal.encoding == "rgb8" and image_to_numpy(goal).shape == (HEIGHT, WIDTH, 3)
    assert sim.latched(PoseStamped, "sim/goal_pose").header.frame_id == "world"


def test_setting_the_seed_parameter_resets_deterministically(sim: Sim) -> None:
    def reset_to(seed: int) -> tuple[np.ndarray, PoseStamped]:
        (result,) = sim.set_parameters(seed=seed)
        assert result.successful, result.reason
        sim.ros.spin_for(0.2)
        sim.object_pose.clear()
        return sim.positions(), sim.ros.spin_until(
            lambda: sim.object_pose and sim.object_pose[-1], 5.0, "pose"
        )

    q_first, block_first = reset_to(11)
    moved = toward_zero(q_first)
    sim.forward.publish(Float64MultiArray(data=moved.tolist()))
    sim.wait_until_at(moved)
    q_again, block_again = reset_to(11)
    np.testing.assert_allclose(q_again, q_first, atol=1e-4)
    block = [np.array([p.x, p.y, p.z]) for p in (block_first.pose.position, block_again.pose.position)]
    np.testing.assert_allclose(block[1], block[0], atol=1e-4)  # the block is back where the seed put it
    assert not np.allclose(reset_to(12)[0], q_first, atol=1e-2), "another seed, another start"

    (push,) = sim.set_parameters(**{"sim.task": "push"})
    assert push.successful and sim.status()["task"] == "push"
    (fly,) = sim.set_parameters(**{"sim.task": "fly"})
    assert not fly.successful and "task must be 'reach' or 'push'" in fly.reason
    (bad,) = sim.set_parameters(seed=-1)
    assert not bad.successful and "seed must be >= 0" in bad.reason
    (read_only,) = sim.set_parameters(control_rate=50.0)
    assert not read_only.successful


def test_clock_advances_at_real_time(sim: Sim) -> None:
    sim.clock.clear()
    sim.ros.spin_until(lambda: sim.clock, 5.0, "/clock")
    wall0, clock0 = time.monotonic(), to_seconds(sim.clock[-1].clock)
    sim.ros.spin_for(3.0)
    wall1, clock1 = time.monotonic(), to_seconds(sim.clock[-1].clock)
    rtf = (clock1 - clock0) / (wall1 - wall0)
    print(f"measured real-time factor over 3 s: {rtf:.3f} (node's own: {sim.status()['real_time_factor']})")
    assert clock1 > clock0
    # Paced at real time, neither free-running (4-5x here) nor stalled; the figure itself, 1.00 on
    # an idle machine, is the README's benchmark. It measured 0.85 once on a loaded shared
    # 2-core machine (the sim drops a stall's backlog rather than catch up).
    assert 0.6 <= rtf <= 1.4


def test_invalid_configuration_exits_with_a_clear_error(start_node) -> None:
    proc = start_node("ami_ros.ros.sim_node", {"sim.camera": "fisheye"}, name="bad_config")
    assert proc.wait(60) == 1
    log = proc.log()
    assert "invalid configuration" in log and "camera must be 'scene' or 'top'" in log
    assert "Traceback" not in log
