"""The arm's command output as ros2_control's controllers take it (planner_node's publisher)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from ami_ros.ros import conversions as conv
from ami_ros.ros.lifecycle import ManagedNode

TOPICS = {
    "trajectory": (JointTrajectory, "arm_controller/joint_trajectory"),
    "forward": (Float64MultiArray, "forward_position_controller/commands"),
}
"""`command_interface` -> (message type, topic): joint_trajectory_controller or
forward_command_controller."""


class ArmCommand:
    """A lifecycle publisher of joint-position commands on the `interface`'s topic.

    Args:
        node: the managed node that owns the publisher (it publishes only while active).
        interface: `trajectory` or `forward` (`PlannerNodeConfig.command_interface`).
        joint_names: the command's joint order.
        period: how far ahead (s) a trajectory command's point lies: one control period.
    """

    def __init__(self, node: ManagedNode, interface: str, joint_names: Sequence[str], period: float) -> None:
        self.interface, self.names, self.period = interface, list(joint_names), period
        msg_type, self.topic = TOPICS[interface]
        self._pub = node.create_lifecycle_publisher(msg_type, self.topic, 10)

    def send(self, positions: np.ndarray) -> None:
        """Command (J,) joint positions (rad), reached one control period from now."""
        self._pub.publish(conv.joint_command(self.interface, self.names, positions, self.period))

    def hold(self, measured: np.ndarray | None) -> None:
        """Stop: an empty trajectory (the controller holds where the arm is), or for `forward` the
        measured positions (none measured yet: nothing to send, nothing was commanded)."""
        if self.interface == "trajectory":
            self._pub.publish(conv.joint_command(self.interface, self.names, None, self.period))
        elif measured is not None:
            self.send(measured)
