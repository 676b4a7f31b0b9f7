"""The QoS profiles the nodes share, so a publisher and its subscribers cannot drift apart."""

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

LATEST = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
"""Only the newest message: a slow subscriber works on fresh data, never on a queue of old data."""

SENSOR = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
"""Sensor streams (joint_states); best effort matches both reliable and best-effort publishers."""

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
"""The last message is kept for late subscribers (goal images and poses)."""
