"""planner_node: the controller (`ami_ros.core.controller`) on ROS 2 — messages in, commands out.

Subscribes: ami/latent (32FC1 Image from encoder_node; drives ticks), joint_states, ami/goal_image
(latched Image rgb8/bgr8/mono8), ami/goal_name (String: a saved goal; "" clears the goal),
ami/save_goal (String: save the newest latent under this name in `goal_memory_dir`), ami/estop
(Bool: true disables until ami/enable). Service: ami/enable (SetBool). Publishes: the command on
arm_controller/joint_trajectory or forward_position_controller/commands (`command_interface`; a
hold is an empty trajectory or the measured positions), ami/progress every tick, /diagnostics.
Parameters: `ControllerConfig` (plain names, `planner.*`, `safety.*`), `PlannerNodeConfig`, `runtime.*`.
Lifecycle (`ami_ros.ros.lifecycle`): configure loads the encoder, rollout-cost and (when the
model has one) proposal graphs only;
inputs, the enable service and the tick timer exist only while active; deactivating or shutting
down while active publishes a hold first. Parameter `autostart` (default true).
"""

from __future__ import annotations

import sys
import threading
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from ami_ros.config import ControllerConfig, PlannerNodeConfig
from ami_ros.core.controller import Controller, recent
from ami_ros.core.goal_memory import Goal, GoalMemory
from ami_ros.core.preprocess import to_rgb
from ami_ros.core.stamps import check_stamp
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.ros.fault_log import FaultLog
from ami_ros.ros.lifecycle import ManagedNode
from ami_ros.ros.model_loading import declare_runtime, load_node_model
from ami_ros.ros.params import declare_from_dataclass, read_dataclass
from ami_ros.ros.spin import spin_node

INPUT_ERRORS = (ValueError, KeyError, OSError)


class PlannerNode(ManagedNode):
    """Lifecycle node: loads the encoder, rollout-cost and proposal graphs on configure, plans while active,
    and holds the arm as it deactivates or shuts down."""

    def __init__(self, **kwargs) -> None:
        super().__init__("planner_node", **kwargs)
        declare_from_dataclass(self, ControllerConfig)
        declare_from_dataclass(self, PlannerNodeConfig)
        declare_runtime(self)

    def configure(self) -> None:
        self.config = c = read_dataclass(self, PlannerNodeConfig)
        cc = read_dataclass(self, ControllerConfig)
        self.runtime = load_node_model(
            self, cc.joint_names, ("encoder.onnx", "rollout_cost.onnx", "policy.onnx"), cc.control_period,
            (cc.joint_lower, cc.joint_upper),
        )  # fmt: skip
        self.controller = Controller(cc, self.runtime, enabled=c.start_enabled)
        self.memory = GoalMemory(c.goal_memory_dir)
        self._lock = threading.Lock()  # orders a stop's hold and a tick's command
        self._last_tick = -np.inf  # node-clock time of the last tick
        self._latency_ms: deque[float] = deque(maxlen=500)
        self._interventions, self._last_error = 0, ""
        forward = c.command_interface == "forward"
        topic = "forward_position_controller/commands" if forward else "arm_controller/joint_trajectory"
        self._pub_cmd = self.create_lifecycle_publisher(
            Float64MultiArray if forward else JointTrajectory, topic, 10
        )
        self._pub_progress = self.create_lifecycle_publisher(DiagnosticStatus, "ami/progress", 10)
        self._pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        p = self.controller.planner.config
        self.get_logger().info(
            f"planning with {p.method} ({p.samples} samples x {p.iterations} iterations, horizon "
            f"{p.horizon}); commands on {topic}; goals in {self.memory.folder}"
        )

    def activate(self) -> None:
        # Latents drive ticks (a plan starts as soon as a frame is encoded), a timer when none does
        # (so stale inputs are noticed); one group, so ticks never overlap while inputs keep coming.
        ticks = MutuallyExclusiveCallbackGroup()
        period = self.controller.config.control_period
        self.inputs(
            self.create_subscription(Image, "ami/latent", self._on_latent, qos.LATEST, callback_group=ticks),
            self.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR),
            self.create_subscription(Image, "ami/goal_image", self._on_goal_image, qos.LATCHED),
            self.create_subscription(String, "ami/goal_name", self._on_goal_name, 10),
            self.create_subscription(String, "ami/save_goal", self._on_save_goal, 10),
            self.create_subscription(
                Bool, "ami/estop", lambda m: m.data and self._enable(False, "e-stop"), 10
            ),
            self.create_service(SetBool, "ami/enable", self._on_enable),
            self.create_timer(period, lambda: self._due(1.0) and self._tick(), callback_group=ticks),
            self.create_timer(self.config.diagnostics_period, self._publish_diagnostics),
        )

    def deactivate(self) -> None:
        with self._lock:
            self._publish_hold()  # the arm stops here, not at the end of the last command

    def release(self) -> None:
        if getattr(self, "runtime", None) is not None:
            self.runtime.close()
        self.runtime = None

    def close(self) -> None:
        pass  # nothing to flush (spin_node calls it on every exit path)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _error(self, text: str) -> None:
        self._last_error = text
        FaultLog.of(self)(text)  # one throttled line per kind of error

    def _due(self, fraction: float) -> bool:
        elapsed = self._now() - self._last_tick  # < 0: the clock jumped back
        return elapsed >= fraction * self.controller.config.control_period or elapsed < 0

    def _on_latent(self, msg: Image) -> None:
        stamp = conv.to_seconds(msg.header.stamp)
        try:
            latent = conv.image_to_latent(msg, self.runtime.latent_shape)
            check_stamp(stamp, self._now())
        except ValueError as err:
            return self._error(f"ami/latent ignored: {err}")
        self.controller.add_latent(stamp, latent)
        if self._due(0.8):  # a control period has (nearly) passed: with a 30 Hz camera, every third latent
            self._tick()

    def _on_joints(self, msg: JointState) -> None:
        try:
            stamp = conv.to_seconds(msg.header.stamp)
            check_stamp(stamp, self._now())
            self.controller.add_joints(stamp, msg.name, msg.position)
        except ValueError as err:
            self._error(f"joint_states ignored: {err}")

    def _on_goal_image(self, msg: Image) -> None:
        try:
            rgb = to_rgb(conv.image_to_numpy(msg), msg.encoding)
        except ValueError as err:
            return self._error(f"ami/goal_image ignored: {err}")
        self._set_goal(self.controller.goal_from_image(rgb, f"image@{conv.to_seconds(msg.header.stamp):.3f}"))

    def _on_goal_name(self, msg: String) -> None:
        try:
            shape, joints = self.runtime.latent_shape, len(self.runtime.joint_names)
            self._set_goal(self.memory.load(msg.data, shape, joints) if msg.data else None)
        except INPUT_ERRORS as err:
            self._error(f"ami/goal_name ignored: {err.args[0]}")

    def _set_goal(self, goal: Goal | None) -> None:
        self.controller.set_goal(goal)
        self.get_logger().info(f"goal: {goal.name if goal else 'none'}")

    def _on_save_goal(self, msg: String) -> None:
        try:
            if (goal := self.controller.goal_here(msg.data)) is None:
                raise ValueError("no latent received yet")
            self.get_logger().info(f"saved goal {msg.data!r} to {self.memory.save(goal)}")
        except INPUT_ERRORS as err:
            self._error(f"ami/save_goal {msg.data!r}: {err}")

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._enable(bool(request.data), "ami/enable")
        response.success, response.message = True, "enabled" if request.data else "disabled"
        return response

    def _enable(self, enabled: bool, why: str) -> None:
        with self._lock:
            was = self.controller.enabled
            if self.controller.set_enabled(enabled):  # stop now, not at the next tick
                self._publish_hold()
        if was != enabled:
            self.get_logger().info(f"{why}: {'enabled' if enabled else 'holding until ami/enable'}")

    def _tick(self) -> None:
        self._last_tick = self._now()
        d, log = self.controller.tick(self._last_tick), self.get_logger()
        if d.changed and d.holding:
            log.info(f"holding position: {d.state} (energy {d.energy:.4g})", throttle_duration_sec=2.0)
        if d.interventions:
            self._interventions += 1
            log.warning(f"safety filter: {'; '.join(d.interventions)}", throttle_duration_sec=2.0)
        # A plan whose latent grew older than 2 x max_age while planning is void (an overloaded
        # machine): so no command ever leaves more than 2 x max_age after its camera frame.
        age, limit = self._now() - d.stamp, 2 * self.controller.config.max_age
        late = d.command is not None and age > limit
        if late:
            FaultLog.of(self)(
                f"plan dropped: its latent was {age:.2f} s old once planned (> {limit} s)", "warning"
            )
        with self._lock:  # a stop that came while planning voids the plan
            if d.command is not None and not late and self.controller.enabled:
                self._pub_cmd.publish(self._command(d.command))
                self._latency_ms.append(1e3 * age)
            elif d.started_holding or late:
                self._publish_hold()
        self._pub_progress.publish(self._status("progress", DiagnosticStatus.OK).status[0])

    def _command(self, positions: np.ndarray | None) -> JointTrajectory | Float64MultiArray:
        c = self.controller.config
        return conv.joint_command(self.config.command_interface, c.joint_names, positions, c.control_period)

    def _publish_hold(self) -> None:
        """Stop: an empty trajectory (the controller holds where the arm is) or the measured positions."""
        if self.config.command_interface == "trajectory":
            return self._pub_cmd.publish(self._command(None))
        if (joints := self.controller.latest_joints()) is not None:
            self._pub_cmd.publish(self._command(joints[1]))

    def _status(self, what: str, level: bytes, **extra: str) -> DiagnosticArray:
        values = self.controller.status() | recent("stamp_to_command_ms", self._latency_ms) | extra
        now = self.get_clock().now().to_msg()
        return conv.diagnostic(f"{self.get_name()}: {what}", level, self.controller.state, values, now)

    def _publish_diagnostics(self) -> None:
        ctl, rt = self.controller, self.runtime
        stale = ctl.state.startswith(("latent stale", "joint_states stale"))
        level = DiagnosticStatus.WARN if stale or not ctl.enabled else DiagnosticStatus.OK
        extra = {"execution_provider": rt.providers["rollout_cost.onnx"], "model_dir": str(rt.model_dir),
                 "safety_interventions": str(self._interventions), "last_error": self._last_error,
                 "saved_goals": ",".join(self.memory.names())}  # fmt: skip
        self._pub_diag.publish(self._status("planner", level, **extra))


def main(args: list[str] | None = None) -> int:
    return spin_node(PlannerNode, "planner_node", args, threads=2)


if __name__ == "__main__":
    sys.exit(main())
