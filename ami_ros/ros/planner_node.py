"""planner_node: latent model-predictive control towards a goal, through the safety filter.

Every `control_period` it takes the newest latent and the one a control period earlier (the
model's history), searches action sequences with CEM or MPPI on the model's fused rollout-cost
graph (its own onnxruntime session, in-process), passes the first action through the safety filter
and publishes it as a joint-position command. The plan is warm-started from the previous tick and
recomputed every tick (receding horizon); nothing of an old plan is ever executed on its own.

Subscribes:
    ami/latent (sensor_msgs/Image 32FC1, from encoder_node), joint_states (sensor_msgs/JointState).
    ami/goal_image (sensor_msgs/Image rgb8/bgr8/mono8, RELIABLE + TRANSIENT_LOCAL): a new goal,
        encoded by the planner's own encoder session.
    ami/goal_name (std_msgs/String): plan towards the goal saved under this name; "" clears the goal.
    ami/save_goal (std_msgs/String): save the current latent and joint positions under this name
        in `goal_memory_dir` (one .npz per goal, kept across restarts).
    ami/estop (std_msgs/Bool): true stops (hold position, disabled) until ami/enable re-enables.
Services:
    ami/enable (std_srvs/SetBool): true enables commanding, false disables it (hold position).
Publishes:
    arm_controller/joint_trajectory (trajectory_msgs/JointTrajectory, one point `control_period`
        ahead) or forward_position_controller/commands (std_msgs/Float64MultiArray), by
        `command_interface`. Holding position is an empty JointTrajectory (joint_trajectory_controller
        then holds where the arm is) or the last measured positions (forward interface).
    ami/progress (diagnostic_msgs/DiagnosticStatus) every tick: state, goal, energy, steps,
        reached, tick and stamp-to-command latency.
    /diagnostics: the same, plus execution provider and safety-filter interventions.

It holds position, and says why in ami/progress and a throttled log line, when: disabled or
e-stopped, no goal, the newest latent or joint state is older than `max_age`, or the goal is reached
(energy below `success_energy`; planning resumes if it rises above twice that).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections import deque

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ami_ros.config import ConfigError, PlannerConfig, PlannerNodeConfig, SafetyConfig
from ami_ros.core.buffers import JointStateBuffer, LatentHistory
from ami_ros.core.energy import goal_energy
from ami_ros.core.goal_memory import Goal, GoalMemory
from ami_ros.core.planner import Planner
from ami_ros.core.preprocess import resize_frame, to_rgb
from ami_ros.core.safety import SafetyFilter
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.ros.model_loading import load_node_model
from ami_ros.ros.params import declare_from_dataclass, read_dataclass
from ami_ros.ros.spin import spin_node


class PlannerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("planner_node", **kwargs)
        declare_from_dataclass(self, PlannerNodeConfig)
        declare_from_dataclass(self, PlannerConfig, prefix="planner.")
        declare_from_dataclass(self, SafetyConfig, prefix="safety.")
        self.config = c = read_dataclass(self, PlannerNodeConfig)
        self.runtime = rt = load_node_model(self, c.joint_names)
        planner_cfg = read_dataclass(self, PlannerConfig, prefix="planner.")
        if planner_cfg.horizon != rt.horizon:
            self.get_logger().info(
                f"planner.horizon {planner_cfg.horizon} -> {rt.horizon} (fixed by the model)"
            )
            planner_cfg = dataclasses.replace(planner_cfg, horizon=rt.horizon)
        self.planner = Planner(planner_cfg, rt.action_limits, np.random.default_rng(planner_cfg.seed))
        self.safety = SafetyFilter(
            np.array(c.joint_lower),
            np.array(c.joint_upper),
            np.array(c.velocity_limits),
            read_dataclass(self, SafetyConfig, prefix="safety."),
        )
        self.weights = np.asarray(c.cost_weights or rt.cost_weights, np.float32)
        if len(self.weights) != len(rt.cost_weights):
            raise ConfigError(
                f"cost_weights: the model takes {len(rt.cost_weights)} weights, got {len(self.weights)}"
            )
        self.memory = GoalMemory(c.goal_memory_dir)
        self.latents = LatentHistory()
        self.joints = JointStateBuffer(c.joint_names)
        self._lock = threading.Lock()
        self.goal: Goal | None = None
        self._goal_changed = False
        self.enabled = c.start_enabled
        self.reached = False
        self.state = "starting"
        self.energy = float("nan")
        self.steps = 0
        self._holding = False
        self._last_tick = -np.inf  # node-clock time of the last tick
        self._tick_ms: deque[float] = deque(maxlen=500)
        self._latency_ms: deque[float] = deque(maxlen=500)
        self._interventions = 0
        self._last_error = ""

        if c.command_interface == "trajectory":
            self._pub_cmd = self.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
        else:
            self._pub_cmd = self.create_publisher(
                Float64MultiArray, "forward_position_controller/commands", 10
            )
        self._pub_progress = self.create_publisher(DiagnosticStatus, "ami/progress", 10)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Ticks are driven by arriving latents (a plan starts as soon as the newest frame is
        # encoded, not at the next timer beat) and by a timer when no latent drives them (so
        # stale inputs are noticed). Both are in one group, so ticks never overlap; the other
        # callbacks run beside them (MultiThreadedExecutor); `_lock` guards what they share.
        tick_group = MutuallyExclusiveCallbackGroup()
        # Depth 1, best effort: after a long tick the next one starts from the newest latent, not
        # from a queue of latents that arrived while it planned.
        self.create_subscription(Image, "ami/latent", self._on_latent, qos.LATEST, callback_group=tick_group)
        self.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR)
        self.create_subscription(Image, "ami/goal_image", self._on_goal_image, qos.LATCHED)
        self.create_subscription(String, "ami/goal_name", self._on_goal_name, 10)
        self.create_subscription(String, "ami/save_goal", self._on_save_goal, 10)
        self.create_subscription(Bool, "ami/estop", self._on_estop, 10)
        self.create_service(SetBool, "ami/enable", self._on_enable)
        self.create_timer(c.control_period, self._on_timer, callback_group=tick_group)
        self.create_timer(c.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(
            f"planning with {planner_cfg.method} ({planner_cfg.samples} samples x {planner_cfg.iterations} "
            f"iterations, horizon {rt.horizon}); commands on {self._pub_cmd.topic_name}; "
            f"goals in {self.memory.folder}"
        )

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _error(self, text: str) -> None:
        self._last_error = text
        self.get_logger().error(text, throttle_duration_sec=2.0)

    def _on_latent(self, msg: Image) -> None:
        try:
            latent = conv.image_to_latent(msg, self.runtime.latent_shape)
        except ValueError as err:
            return self._error(f"ami/latent ignored: {err}")
        with self._lock:
            self.latents.add(conv.to_seconds(msg.header.stamp), latent)
        if self._due(0.8):  # a control period has (nearly) passed: with a 30 Hz camera, every third latent
            self._tick()

    def _on_timer(self) -> None:
        if self._due(1.0):
            self._tick()  # no latent drove a tick for a period: the tick's checks hold the arm

    def _due(self, fraction: float) -> bool:
        elapsed = self._now() - self._last_tick
        return elapsed >= fraction * self.config.control_period or elapsed < 0  # < 0: the clock jumped back

    def _on_joints(self, msg: JointState) -> None:
        try:
            with self._lock:
                self.joints.add(conv.to_seconds(msg.header.stamp), msg.name, msg.position)
        except ValueError as err:
            self._error(f"joint_states ignored: {err}")

    def _set_goal(self, goal: Goal | None) -> None:
        with self._lock:
            self.goal, self._goal_changed = goal, True
        self.get_logger().info(f"goal: {goal.name if goal else 'none'}")

    def _on_goal_image(self, msg: Image) -> None:
        try:
            rgb = to_rgb(conv.image_to_numpy(msg), msg.encoding)
        except ValueError as err:
            return self._error(f"ami/goal_image ignored: {err}")
        rt = self.runtime
        latent, joints = rt.encode(
            resize_frame(rgb, rt.image_size), np.zeros(len(rt.joint_names), np.float32)
        )
        self._set_goal(Goal(f"image@{conv.to_seconds(msg.header.stamp):.3f}", latent, joints))

    def _on_goal_name(self, msg: String) -> None:
        if not msg.data:
            return self._set_goal(None)
        try:
            goal = self.memory.load(msg.data, self.runtime.latent_shape, len(self.runtime.joint_names))
        except (KeyError, ValueError) as err:
            return self._error(f"ami/goal_name: {err.args[0]}")
        self._set_goal(goal)

    def _on_save_goal(self, msg: String) -> None:
        with self._lock:
            newest = self.latents.latest()
        if newest is None:
            return self._error(f"ami/save_goal {msg.data!r}: no latent received yet")
        latent = newest[1]
        joints = latent[-1, : len(self.runtime.joint_limits)] * self.runtime.joint_limits
        try:
            path = self.memory.save(Goal(msg.data, latent, joints))
        except (ValueError, OSError) as err:
            return self._error(f"ami/save_goal: {err}")
        self.get_logger().info(f"saved goal {msg.data!r} to {path}")

    def _set_enabled(self, enabled: bool, why: str) -> None:
        with self._lock:
            was, self.enabled = self.enabled, enabled
        if was and not enabled:  # stop now, not at the next tick
            self.get_logger().warning(f"{why}: holding position until re-enabled (ami/enable)")
            self._publish_hold()
        elif enabled and not was:
            self.get_logger().info(f"{why}: enabled")

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self._set_enabled(False, "e-stop")

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._set_enabled(bool(request.data), "ami/enable")
        response.success, response.message = True, "enabled" if request.data else "disabled"
        return response

    # ------------------------------------------------------------------ control tick
    def _tick(self) -> None:
        t0, now, c = time.perf_counter(), self._now(), self.config
        self._last_tick = now
        with self._lock:  # one consistent snapshot of the inputs
            enabled, goal, changed = self.enabled, self.goal, self._goal_changed
            self._goal_changed = False
            newest, joints = self.latents.latest(), self.joints.latest()
            history = self.latents.history(self.runtime.history, c.control_period)
        if changed:
            self.reached, self.steps, self.energy = False, 0, float("nan")
            self.planner.reset()
        reason = None
        if not enabled:
            reason = "disabled"
        elif goal is None:
            reason = "no goal"
        elif newest is None or now - newest[0] > c.max_age:
            age = "none received" if newest is None else f"{now - newest[0]:.2f} s old"
            reason = f"latent stale ({age}, max_age {c.max_age} s)"
        elif joints is None or now - joints[0] > c.max_age:
            age = "none received" if joints is None else f"{now - joints[0]:.2f} s old"
            reason = f"joint_states stale ({age}, max_age {c.max_age} s)"
        else:
            limits = self.runtime.joint_limits
            self.energy = goal_energy(newest[1], goal.latent, goal.joints, limits, self.weights)
            if not self.reached and self.energy < c.success_energy:
                self.reached = True
                self.get_logger().info(f"goal {goal.name} reached: energy {self.energy:.4f}")
            elif self.reached and self.energy > 2 * c.success_energy:
                self.reached = False
            if self.reached:
                reason = "goal reached"
        if reason is not None:
            if not self._holding or self.state != reason:
                self.get_logger().info(f"holding position: {reason}", throttle_duration_sec=2.0)
            if not self._holding:
                self.planner.reset()
                self._publish_hold()
            self._holding, self.state = True, reason
        else:
            self._plan_and_command(goal, history[1], joints[1], newest[0], t0)
        self._publish_progress()

    def _publish_hold(self) -> None:
        """Stop: an empty trajectory (the controller holds where the arm is) or the measured positions."""
        if self.config.command_interface == "trajectory":
            self._pub_cmd.publish(JointTrajectory(joint_names=list(self.config.joint_names)))
            return
        with self._lock:
            joints = self.joints.latest()
        if joints is not None:
            self._pub_cmd.publish(Float64MultiArray(data=joints[1].tolist()))

    def _plan_and_command(
        self, goal: Goal, history: np.ndarray, q: np.ndarray, stamp: float, t0: float
    ) -> None:
        rt = self.runtime
        plan = self.planner.plan(
            lambda a: rt.rollout_cost(history, goal.latent, goal.joints, a, self.weights)
        )
        target, reasons = self.safety.filter(q, q + plan[0], self.config.control_period)
        if reasons:
            self._interventions += 1
            self.get_logger().warning(f"safety filter: {'; '.join(reasons)}", throttle_duration_sec=2.0)
        with self._lock:
            if not self.enabled or self.goal is not goal:
                return  # stopped or retargeted while planning: this plan is void
            self._publish_command(target)
        self._tick_ms.append(1e3 * (time.perf_counter() - t0))
        self._latency_ms.append(1e3 * (self._now() - stamp))
        self.steps += 1
        self._holding, self.state = False, "planning"

    def _publish_command(self, target: np.ndarray) -> None:
        if self.config.command_interface == "forward":
            self._pub_cmd.publish(Float64MultiArray(data=target.tolist()))
            return
        period = self.config.control_period
        point = JointTrajectoryPoint(positions=target.tolist())
        point.time_from_start = Duration(sec=int(period), nanosec=round((period % 1) * 1e9))
        self._pub_cmd.publish(JointTrajectory(joint_names=list(self.config.joint_names), points=[point]))

    # ------------------------------------------------------------------ reporting
    def _values(self) -> dict[str, str]:
        def stats(samples: deque[float]) -> tuple[str, str, str]:
            if not samples:
                return "nan", "nan", "nan"
            a = np.asarray(samples)
            return f"{a[-1]:.2f}", f"{np.percentile(a, 50):.2f}", f"{np.percentile(a, 99):.2f}"

        tick, tick_p50, tick_p99 = stats(self._tick_ms)
        latency, _, latency_p99 = stats(self._latency_ms)
        return {
            "state": self.state,
            "enabled": str(self.enabled).lower(),
            "goal": self.goal.name if self.goal else "",
            "energy": f"{self.energy:.6f}",
            "success_energy": str(self.config.success_energy),
            "steps": str(self.steps),
            "reached": str(self.reached).lower(),
            "tick_ms": tick,
            "tick_ms_p50": tick_p50,
            "tick_ms_p99": tick_p99,
            "stamp_to_command_ms": latency,
            "stamp_to_command_ms_p99": latency_p99,
        }

    def _publish_progress(self) -> None:
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK,
            name=f"{self.get_name()}: progress",
            message=self.state,
            hardware_id="ami_ros",
        )
        status.values = [KeyValue(key=k, value=v) for k, v in self._values().items()]
        self._pub_progress.publish(status)

    def _publish_diagnostics(self) -> None:
        stale = self.state.startswith(("latent stale", "joint_states stale"))
        level = DiagnosticStatus.WARN if stale or not self.enabled else DiagnosticStatus.OK
        values = self._values() | {
            "execution_provider": self.runtime.providers["rollout_cost.onnx"],
            "model_dir": str(self.runtime.model_dir),
            "safety_interventions": str(self._interventions),
            "saved_goals": ",".join(self.memory.names()),
            "last_error": self._last_error,
        }
        self._pub_diag.publish(
            conv.diagnostic(
                f"{self.get_name()}: planner", level, self.state, values, self.get_clock().now().to_msg()
            )
        )


def main(args: list[str] | None = None) -> int:
    return spin_node(PlannerNode, "planner_node", args, threads=2)


if __name__ == "__main__":
    sys.exit(main())
