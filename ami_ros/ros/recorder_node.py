"""recorder_node: record live topics to a rosbag2 MCAP bag on machines without rosbag2.

Writes what `ros2 bag record -s mcap` writes (see `ami_ros.data.bag`): messages are taken from
the middleware still serialized (`raw=True` subscriptions) and stored byte for byte, with the
receive time (the node clock: sim time under `use_sim_time`) as log time. Message types are
discovered from the graph; a topic that appears later is picked up when it does. QoS adapts to
the publishers as rosbag2 does: BEST_EFFORT if any publisher is, TRANSIENT_LOCAL if all are.

Ctrl-C (SIGINT) or shutdown finishes the file: MCAP summary and metadata.yaml with counts.

    ros2 run ami_ros recorder_node --ros-args -p topics:="[camera/image_raw, joint_states]" \
        -p output:=bags/run1
"""

from __future__ import annotations

import importlib
import time
from typing import Any, NoReturn

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ami_ros.config import ConfigError, RecorderConfig
from ami_ros.data.bag import BagWriter, default_qos
from ami_ros.ros.params import declare_from_dataclass, read_dataclass
from ami_ros.ros.spin import spin_node


def message_class(type_name: str) -> type:
    """`sensor_msgs/msg/Image` -> the rclpy message class."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class RecorderNode(Node):
    """Subscribes (raw) to the configured topics as they appear and writes them to one bag."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder_node", **kwargs)
        declare_from_dataclass(self, RecorderConfig)
        self.config = read_dataclass(self, RecorderConfig)
        output = self.config.output or time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S")
        try:
            self.writer = BagWriter(output, self.config.compression)
        except Exception as err:  # rosbags: the directory exists, or is not writable
            raise ConfigError(f"output: cannot create bag {output}: {err}") from err
        self._wanted = [self._resolve(t) for t in self.config.topics]
        self._recording: dict[str, Any] = {}
        self._skipped: set[str] = set()
        self.create_timer(self.config.discovery_period, self._discover)
        self.get_logger().info(f"recording {self._wanted} to {self.writer.path}")

    def _resolve(self, topic: str) -> str:
        if topic.startswith("/"):
            return topic
        return f"{self.get_namespace().rstrip('/')}/{topic}"

    def _discover(self) -> None:
        types = dict(self.get_topic_names_and_types())
        for topic in self._wanted:
            if topic in self._recording or topic in self._skipped or topic not in types:
                continue
            self._subscribe(topic, types[topic][0])

    def _subscribe(self, topic: str, type_name: str) -> None:
        publishers = [p.qos_profile for p in self.get_publishers_info_by_topic(topic)]
        reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in publishers)
        latched = bool(publishers) and all(
            q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in publishers
        )
        try:
            self.writer.add_topic(topic, type_name, qos=[default_qos(reliable, 10, latched)])
            msg_class = message_class(type_name)
        except (KeyError, ImportError, AttributeError, ValueError) as err:
            self._skipped.add(topic)
            self.get_logger().error(f"not recording {topic}: {err}")
            return
        qos = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )
        self._recording[topic] = self.create_subscription(
            msg_class, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True
        )
        self.get_logger().info(f"recording {topic} ({type_name})")

    def _on_message(self, topic: str, data: bytes) -> None:
        self.writer.write_raw(topic, self.get_clock().now().nanoseconds, data)

    def close(self) -> None:
        """Finish the bag (idempotent); logs the message counts."""
        if not self.writer.closed:
            self.writer.close()
            self.get_logger().info(f"wrote {self.writer.path}: {self.writer.message_counts}")


def main(args: list[str] | None = None) -> NoReturn:
    """Record until Ctrl-C or shutdown, finish the bag, then end the process with the exit code."""
    spin_node(RecorderNode, "recorder_node", args)


if __name__ == "__main__":
    main()
