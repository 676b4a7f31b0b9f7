"""ami_stack: encoder_node, predictor_node and planner_node in one process, one executor.

rclpy's form of composition (it has no component container): the same node classes, the same
names, parameters and topics as the three executables, so `ami.launch.py one_process:=true` is a
drop-in replacement. One process saves two interpreters and their model sessions' memory, and a
latent goes from encoder to planner without crossing a process boundary or a second scheduler.

    ros2 run ami_ros ami_stack --ros-args --params-file robot.yaml -r __ns:=/robot1

One single-threaded executor runs all three. With the encoder limited to the control rate, a
frame is encoded, then planned, about once a control period, so the two rarely wait for each
other; rclpy's MultiThreadedExecutor cost more than that wait (measured by `ami-ros bench --stack`:
docs/results.md).
"""

from __future__ import annotations

from typing import NoReturn

from ami_ros.ros.encoder_node import EncoderNode
from ami_ros.ros.planner_node import PlannerNode
from ami_ros.ros.predictor_node import PredictorNode
from ami_ros.ros.spin import spin_nodes


def main(args: list[str] | None = None) -> NoReturn:
    spin_nodes([EncoderNode, PredictorNode, PlannerNode], "ami_stack", args)


if __name__ == "__main__":
    main()
