"""sim_node: the embedded MuJoCo robot on ROS 2, with the interfaces of a gz_ros2_control robot.

Topic names are relative (namespaces work) except /clock and /diagnostics.

Publishes:
    camera/image_raw (sensor_msgs/Image, rgb8): at `camera_rate` Hz of simulated time; QoS
        RELIABLE, KEEP_LAST 2, so both BEST_EFFORT and RELIABLE subscribers receive it.
    camera/camera_info (sensor_msgs/CameraInfo): with every image, same stamp; pinhole, plumb_bob.
    joint_states (sensor_msgs/JointState): joint1..joint4 at `control_rate` Hz of simulated time.
    /clock (rosgraph_msgs/Clock): at `control_rate` Hz when `publish_clock`. The simulated clock
        is monotonic across resets (an episode's time continues from the previous one).
    sim/end_effector_pose, sim/object_pose (geometry_msgs/PoseStamped, frame `frame_id`): ground
        truth with every camera frame, same stamp. End-effector orientation is the yaw of the
        last link (the arm is planar); the object is the block.
    sim/goal_pose (PoseStamped, TRANSIENT_LOCAL): the goal end-effector pose for `reach` tasks,
        the goal block pose for `push` tasks; on every reset and with every camera frame.
    sim/goal_image (sensor_msgs/Image, rgb8, TRANSIENT_LOCAL): render of the goal state, on reset.
    /diagnostics (diagnostic_msgs/DiagnosticArray): every `diagnostics_period` s: measured
        real-time factor, camera rate, physics steps, rejected commands and the last reason.

Subscribes (exactly as joint_trajectory_controller / forward_command_controller accept them):
    arm_controller/joint_trajectory (trajectory_msgs/JointTrajectory): see
        `ami_ros.core.trajectory` for the rules; an empty points list cancels (hold position).
    forward_position_controller/commands (std_msgs/Float64MultiArray): positions in joint order.

Services and parameters:
    sim/reset (std_srvs/Trigger): reset with seed + 1; `message` is the seed used (an integer).
    Parameters: the fields of `SimNodeConfig` (unprefixed) and `SimConfig` (prefix `sim.`).
    Setting `seed` or `sim.task` at run time resets the episode; the others are read-only.

Stamps are simulated time when `publish_clock` (as Gazebo does), else the node clock.
"""

from __future__ import annotations

import time
from typing import NoReturn

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from ami_ros.config import ConfigError, SimConfig, SimNodeConfig, from_dict
from ami_ros.core.trajectory import CommandError, JointLimits, Trajectory, build_trajectory
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.ros.fault_log import FaultLog
from ami_ros.ros.params import declare_from_dataclass, plain, read_dataclass
from ami_ros.ros.spin import spin_node
from ami_ros.sim import ArmSim

_EPS = 1e-9
_CAMERA_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)


class SimNode(Node):
    """The embedded robot as a ROS 2 node; physics runs in a timer, tracking wall time x RTF."""

    def __init__(self, **kwargs) -> None:
        super().__init__("sim_node", **kwargs)
        declare_from_dataclass(self, SimNodeConfig, dynamic=("seed",))
        declare_from_dataclass(self, SimConfig, prefix="sim.", dynamic=("task",))
        self.config = read_dataclass(self, SimNodeConfig)
        self.sim = ArmSim(read_dataclass(self, SimConfig, prefix="sim."))
        c, sim = self.config, self.sim
        self.limits = JointLimits(sim.joint_names, sim.lower, sim.upper, c.position_tolerance)
        self._trajectory: Trajectory | None = None
        self._seed, self._task = c.seed, sim.config.task
        self._time_offset = 0.0  # sim time of earlier episodes: keeps the clock monotonic
        self._control_period, self._frame_period = 1.0 / c.control_rate, 1.0 / c.camera_rate
        self._next_control = self._next_frame = 0.0
        self._owed = 0.0  # simulated seconds owed to wall time x RTF
        self._max_steps = int(
            np.ceil(5 * self._control_period * max(c.real_time_factor, 1.0) / sim.physics_dt)
        )
        self._steps = self._frames = self._rejected = 0
        self._last_rejection = ""

        self._pub_image = self.create_publisher(Image, "camera/image_raw", _CAMERA_QOS)
        self._pub_info = self.create_publisher(CameraInfo, "camera/camera_info", _CAMERA_QOS)
        self._pub_joints = self.create_publisher(JointState, "joint_states", 10)
        self._pub_clock = self.create_publisher(Clock, "/clock", 10) if c.publish_clock else None
        self._pub_ee = self.create_publisher(PoseStamped, "sim/end_effector_pose", 10)
        self._pub_object = self.create_publisher(PoseStamped, "sim/object_pose", 10)
        self._pub_goal_pose = self.create_publisher(PoseStamped, "sim/goal_pose", qos.LATCHED)
        self._pub_goal_image = self.create_publisher(Image, "sim/goal_image", qos.LATCHED)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self._on_trajectory, 10)
        self.create_subscription(
            Float64MultiArray, "forward_position_controller/commands", self._on_forward, 10
        )
        self.create_service(Trigger, "sim/reset", self._on_reset)
        self._reset(self._seed, self._task)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # RTF 0: a zero-period timer fires on every executor turn, one control period each.
        self.create_timer(self._control_period if c.real_time_factor > 0 else 0.0, self._tick)
        self.create_timer(c.diagnostics_period, self._publish_diagnostics)
        self._wall = time.monotonic()
        self._window = (self._wall, self.sim_time, 0)  # (wall, clock, frames) at the last diagnostics

    @property
    def sim_time(self) -> float:
        """Simulated seconds since start-up (monotonic across resets)."""
        return self._time_offset + self.sim.data.time

    def close(self) -> None:
        pass  # the GL context goes with the process (see `main`)

    # ------------------------------------------------------------------ real-time loop
    def _tick(self) -> None:
        wall, rtf = time.monotonic(), self.config.real_time_factor
        if rtf > 0:
            self._owed += (wall - self._wall) * rtf
            steps = min(int(self._owed / self.sim.physics_dt + 1e-6), self._max_steps)
            # After a stall, drop the backlog instead of freezing the node to catch up.
            self._owed = self._owed - steps * self.sim.physics_dt if steps < self._max_steps else 0.0
        else:
            steps = round(self._control_period / self.sim.physics_dt)
        self._wall = wall
        for _ in range(steps):
            t = self.sim_time
            if t >= self._next_control - _EPS:
                self._next_control += self._control_period
                self._control_update(t)
            if t >= self._next_frame - _EPS:
                self._next_frame += self._frame_period
                self._publish_frame()
            self.sim.step(1)
        self._steps += steps

    def _control_update(self, t: float) -> None:
        if self._trajectory is not None:
            self.sim.command(self._trajectory.sample(t))
        s, stamp = self.sim.state(), self._stamp()
        self._pub_joints.publish(conv.joint_state(self.sim.joint_names, s.qpos, s.qvel, s.effort, stamp))
        if self._pub_clock is not None:
            self._pub_clock.publish(Clock(clock=stamp))

    def _publish_frame(self) -> None:
        s, stamp, cam = self.sim.state(), self._stamp(), self.config.camera_frame_id
        self._pub_image.publish(conv.numpy_to_image(self.sim.render(), stamp, cam))
        w, h = self.sim.config.image_width, self.sim.config.image_height
        self._pub_info.publish(conv.camera_info(self.sim.camera_intrinsics(), w, h, stamp, cam))
        yaw = conv.yaw_quaternion(float(s.qpos.sum()))
        self._pub_ee.publish(conv.pose_stamped(s.end_effector, yaw, stamp, self.config.frame_id))
        self._pub_object.publish(
            conv.pose_stamped(s.block_pose[:3], s.block_pose[3:], stamp, self.config.frame_id)
        )
        self._pub_goal_pose.publish(self._goal_pose(stamp))
        self._frames += 1

    def _stamp(self) -> Time:
        return conv.to_time(self.sim_time) if self.config.publish_clock else self.get_clock().now().to_msg()

    # ------------------------------------------------------------------ commands
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:  # JTC: an empty trajectory cancels the motion and holds position
            self._trajectory = None
            self.sim.hold()
            return
        now, s = self.sim_time, self.sim.state()
        try:
            self._trajectory = build_trajectory(
                self.limits, *conv.trajectory_arrays(msg), self._start_time(msg, now), now, s.qpos, s.qvel
            )
        except CommandError as err:
            self._reject("arm_controller/joint_trajectory", err)

    def _on_forward(self, msg: Float64MultiArray) -> None:
        try:
            target = self.limits.check_positions(msg.data, "data")
        except CommandError as err:
            return self._reject("forward_position_controller/commands", err)
        self._trajectory = None
        self.sim.command(target)

    def _start_time(self, msg: JointTrajectory, now: float) -> float:
        stamp = conv.to_seconds(msg.header.stamp)
        if stamp == 0.0:
            return now
        if self.config.publish_clock:
            return stamp
        return now + stamp - self.get_clock().now().nanoseconds * 1e-9

    def _reject(self, topic: str, err: Exception) -> None:
        self._rejected += 1
        self._last_rejection = f"{topic}: {err}"
        FaultLog.of(self)(f"rejected command on {self._last_rejection}", "warning")

    # ------------------------------------------------------------------ reset and parameters
    def _reset(self, seed: int, task: str) -> None:
        self._time_offset += self.sim.data.time
        self.sim.reset(seed, task)
        self._seed, self._task, self._trajectory = seed, task, None
        stamp = self._stamp()
        self._pub_goal_image.publish(
            conv.numpy_to_image(self.sim.render_goal(), stamp, self.config.camera_frame_id)
        )
        self._pub_goal_pose.publish(self._goal_pose(stamp))
        self.get_logger().info(f"reset: seed {seed}, task {task}")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        result = self.set_parameters([Parameter("seed", value=self._seed + 1)])[0]
        response.success = result.successful
        response.message = str(self._seed) if result.successful else result.reason
        return response

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: plain(p.value) for p in params if p.name in ("seed", "sim.task")}
        if not changes:
            return SetParametersResult(successful=True)
        seed, task = changes.get("seed", self._seed), changes.get("sim.task", self._task)
        try:  # the checks of start-up, so `seed:=-1` or `sim.task:=fly` fail the same way
            from_dict(SimNodeConfig, {"seed": seed})
            from_dict(SimConfig, {"task": task}, prefix="sim.")
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self._reset(seed, task)
        return SetParametersResult(successful=True)

    def _goal_pose(self, stamp: Time) -> PoseStamped:
        goal = self.sim.goal
        if goal.task == "push":
            return conv.pose_stamped(goal.block_pose[:3], goal.block_pose[3:], stamp, self.config.frame_id)
        yaw = conv.yaw_quaternion(float(goal.arm_qpos.sum()))
        return conv.pose_stamped(goal.end_effector, yaw, stamp, self.config.frame_id)

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        wall, clock = time.monotonic(), self.sim_time
        wall0, clock0, frames0 = self._window
        elapsed = max(wall - wall0, 1e-6)
        rtf, fps = (clock - clock0) / elapsed, (self._frames - frames0) / elapsed
        self._window = (wall, clock, self._frames)
        target = self.config.real_time_factor
        slow = target > 0 and rtf < 0.9 * target
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if slow else DiagnosticStatus.OK,
            name=f"{self.get_name()}: simulation",
            hardware_id="ami_ros_embedded_sim",
            message=f"real-time factor {rtf:.2f} below target {target}" if slow else "running",
        )
        values = {
            "real_time_factor": f"{rtf:.3f}",
            "target_real_time_factor": str(target),
            "camera_rate_hz": f"{fps:.1f}",
            "sim_time": f"{clock:.3f}",
            "physics_steps": str(self._steps),
            "rejected_commands": str(self._rejected),
            "last_rejection": self._last_rejection,
            "last_error": FaultLog.of(self).last,  # rejected commands and refused parameters
            "seed": str(self._seed),
            "task": self._task,
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._stamp()
        self._pub_diag.publish(msg)
        self.get_logger().debug(f"real-time factor {rtf:.3f}, camera {fps:.1f} Hz", throttle_duration_sec=5.0)


def main(args: list[str] | None = None) -> NoReturn:
    """Run sim_node until Ctrl-C or shutdown, then end the process with the exit code.

    The process ends without tearing its EGL context down (`spin_node` ends it with `os._exit`):
    with Mesa's software renderer (llvmpipe), destroying the context after a clean ROS shutdown
    segfaulted in about 1 of 10 test runs (in eglDestroyContext, seen with faulthandler). The OS
    frees it.
    """
    spin_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    main()
