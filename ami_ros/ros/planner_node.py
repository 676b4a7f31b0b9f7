"""planner_node: the controller (`ami_ros.core.controller`) as a ROS 2 lifecycle node.

In: ami/latent (32FC1 from encoder_node; drives ticks), joint_states, ami/goal_image (latched),
ami/goal_name (a saved goal; "" clears it), ami/save_goal (save the newest latent under a name),
ami/estop (true disables until the ami/enable service). Out: the command on
arm_controller/joint_trajectory or forward_position_controller/commands (`command_interface`; a
hold is an empty trajectory or the measured positions), ami/progress, /diagnostics. Parameters:
`ControllerConfig`, `PlannerNodeConfig`, `runtime.*`, `autostart` (`ami_ros.ros.lifecycle`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from typing import NoReturn

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool

from ami_ros.config import ControllerConfig, PlannerNodeConfig
from ami_ros.core.controller import Controller, recent
from ami_ros.core.goal_memory import Goal, GoalMemory
from ami_ros.core.preprocess import to_rgb
from ami_ros.core.stamps import check_stamp
from ami_ros.core.subgoals import approach_subgoals
from ami_ros.core.trace import LatencyTrace
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.ros.arm_command import ArmCommand
from ami_ros.ros.fault_log import FaultLog
from ami_ros.ros.lifecycle import ManagedNode
from ami_ros.ros.model_loading import declare_runtime, load_node_model
from ami_ros.ros.params import declare_from_dataclass, read_dataclass
from ami_ros.ros.spin import spin_node

GRAPHS = ("encoder.onnx", "rollout_cost.onnx", "policy.onnx")  # goal images, planning, proposal
INPUT_ERRORS = (ValueError, KeyError, OSError)


class PlannerNode(ManagedNode):
    """Loads its graphs on configure, plans while active, holds the arm as it deactivates."""

    def __init__(self, **kwargs) -> None:
        super().__init__("planner_node", **kwargs)
        declare_from_dataclass(self, ControllerConfig)
        declare_from_dataclass(self, PlannerNodeConfig)
        declare_runtime(self)

    def configure(self) -> None:
        self.config = c = read_dataclass(self, PlannerNodeConfig)
        cc = read_dataclass(self, ControllerConfig)
        limits = (cc.joint_lower, cc.joint_upper)
        self.runtime = load_node_model(self, cc.joint_names, GRAPHS, cc.control_period, limits)
        subgoals = approach_subgoals(cc, self.runtime.action_limits)  # planned beside the ticks
        self.controller = Controller(cc, self.runtime, enabled=c.start_enabled, subgoals=subgoals)
        self.memory, self.fault = GoalMemory(c.goal_memory_dir), FaultLog.of(self)
        self.trace = LatencyTrace(c.latency_trace)
        self._lock = threading.Lock()  # orders a stop's hold and a tick's command
        self._last_tick, self._latency_ms = -np.inf, deque(maxlen=500)  # node clock; camera -> command
        self._tick_stamp = -np.inf  # the stamp of the last latent that started a tick
        self.arm = ArmCommand(self, c.command_interface, cc.joint_names, cc.control_period)
        self._pub_progress = self.create_lifecycle_publisher(DiagnosticStatus, "ami/progress", 10)
        self._pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        p = self.controller.planner.config
        search = f"{p.method} ({p.samples} samples x {p.iterations} iterations, horizon {p.horizon})"
        self.get_logger().info(
            f"planning with {search}; commands on {self.arm.topic}; goals in {self.memory.folder}"
        )

    def activate(self) -> None:
        # Latents drive ticks, and a timer when none has come for 1.5 control periods (so stale
        # inputs are noticed; at 1 period it raced the latents, which then waited for its tick);
        # one mutually exclusive group, so ticks never overlap.
        ticks, period = MutuallyExclusiveCallbackGroup(), self.controller.config.control_period
        sub, guard = self.create_subscription, functools.partial(self.fault.guard, errors=INPUT_ERRORS)
        self.inputs(
            sub(Image, "ami/latent", self._on_latent, qos.LATEST, callback_group=ticks),
            sub(JointState, "joint_states", guard("joint_states", self._on_joints), qos.SENSOR),
            sub(Image, "ami/goal_image", guard("ami/goal_image", self._on_goal_image), qos.LATCHED),
            sub(String, "ami/goal_name", guard("ami/goal_name", self._on_goal_name), 10),
            sub(String, "ami/save_goal", guard("ami/save_goal", self._on_save_goal), 10),
            sub(Bool, "ami/estop", lambda m: m.data and self._enable(False, "e-stop"), 10),
            self.create_service(SetBool, "ami/enable", self._on_enable),
            self.create_timer(period, lambda: self._due(1.5) and self._tick(), callback_group=ticks),
            self.create_timer(self.config.diagnostics_period, self._publish_diagnostics),
        )

    def deactivate(self) -> None:
        with self._lock:
            self._publish_hold()  # the arm stops here, not at the end of the last command

    def release(self) -> None:
        if getattr(self, "runtime", None) is not None:
            self.runtime.close()
        self.runtime = None
        if getattr(self, "trace", None) is not None:
            self.trace.close()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _due(self, fraction: float) -> bool:
        elapsed = self._now() - self._last_tick  # < 0: the clock jumped back
        return elapsed >= fraction * self.controller.config.control_period or elapsed < 0

    def _on_latent(self, msg: Image) -> None:
        self.trace("latent", conv.to_seconds(msg.header.stamp))
        try:
            latent = conv.image_to_latent(msg, self.runtime.latent_shape)
            check_stamp(stamp := conv.to_seconds(msg.header.stamp), self._now())
        except ValueError as err:
            return self.fault(f"ami/latent ignored: {err}")
        self.controller.add_latent(stamp, latent)
        # A tick per control period of camera time: at 30 Hz every third latent, and every latent of
        # an encoder limited to the control rate. Judged by stamps, not by arrival, so that a
        # latent a little early on the node's clock does not wait for the timer.
        if not 0 <= stamp - self._tick_stamp < 0.8 * self.controller.config.control_period:
            self._tick_stamp = stamp
            self._tick()

    def _on_joints(self, msg: JointState) -> None:
        check_stamp(stamp := conv.to_seconds(msg.header.stamp), self._now())
        self.controller.add_joints(stamp, msg.name, msg.position)

    def _on_goal_image(self, msg: Image) -> None:
        rgb = to_rgb(conv.image_to_numpy(msg), msg.encoding)
        self._set_goal(self.controller.goal_from_image(rgb, f"image@{conv.to_seconds(msg.header.stamp):.3f}"))

    def _on_goal_name(self, msg: String) -> None:
        shape, joints = self.runtime.latent_shape, len(self.runtime.joint_names)
        self._set_goal(self.memory.load(msg.data, shape, joints) if msg.data else None)

    def _set_goal(self, goal: Goal | None) -> None:
        self.controller.set_goal(goal)
        self.get_logger().info(f"goal: {goal.name if goal else 'none'}")

    def _on_save_goal(self, msg: String) -> None:
        if (goal := self.controller.goal_here(msg.data)) is None:
            raise ValueError(f"no latent received yet to save as {msg.data!r}")
        self.get_logger().info(f"saved goal {msg.data!r} to {self.memory.save(goal)}")

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
        self._last_tick, started = self._now(), time.time()
        d, log = self.controller.tick(self._last_tick), self.get_logger()
        if d.changed and d.holding:
            log.info(f"holding position: {d.state} (energy {d.energy:.4g})", throttle_duration_sec=2.0)
        if d.interventions:
            log.warning(f"safety filter: {'; '.join(d.interventions)}", throttle_duration_sec=2.0)
        age = self._now() - d.stamp
        if late := self.controller.late(d, age):
            self.fault(late, "warning")
        with self._lock:  # a stop that came while planning voids the plan
            if d.command is not None and not late and self.controller.enabled:
                self.arm.send(d.command)
                self._latency_ms.append(1e3 * age)
                self.trace("tick", d.stamp, started)
                self.trace("command", d.stamp)
            elif d.started_holding or late:
                self._publish_hold()
            if late:
                self.trace("late", d.stamp)
        self._pub_progress.publish(self._status("progress", DiagnosticStatus.OK).status[0])

    def _publish_hold(self) -> None:
        """Stop now: an empty trajectory, or the measured positions (`ArmCommand.hold`)."""
        joints = self.controller.latest_joints()
        self.arm.hold(None if joints is None else joints[1])

    def _status(self, what: str, level: bytes, **extra: str) -> DiagnosticArray:
        values = self.controller.status() | recent("stamp_to_command_ms", self._latency_ms) | extra
        now = self.get_clock().now().to_msg()
        return conv.diagnostic(f"{self.get_name()}: {what}", level, self.controller.state, values, now)

    def _publish_diagnostics(self) -> None:
        ctl, rt = self.controller, self.runtime
        stale = ctl.state.startswith(("latent stale", "joint_states stale"))
        level = DiagnosticStatus.WARN if stale or not ctl.enabled else DiagnosticStatus.OK
        extra = {"execution_provider": rt.providers["rollout_cost.onnx"], "model_dir": str(rt.model_dir),
                 "last_error": self.fault.last, "saved_goals": ",".join(self.memory.names())}  # fmt: skip
        self._pub_diag.publish(self._status("planner", level, **extra))


def main(args: list[str] | None = None) -> NoReturn:
    spin_node(PlannerNode, "planner_node", args)


if __name__ == "__main__":
    main()
