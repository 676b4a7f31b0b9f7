"""numpy <-> standard ROS 2 messages as rosbags objects (no ROS runtime), for writing and reading bags.

The same layouts as `ami_ros.ros.conversions` (which builds rclpy messages for live topics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ami_ros.core.preprocess import to_rgb
from ami_ros.data.bag import typestore

IMAGE = "sensor_msgs/msg/Image"
JOINT_STATE = "sensor_msgs/msg/JointState"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def _t(name: str) -> Any:
    return typestore().types[name]


def _time(stamp_ns: int, kind: str = "builtin_interfaces/msg/Time") -> Any:
    return _t(kind)(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def header(stamp_ns: int, frame_id: str = "") -> Any:
    return _t("std_msgs/msg/Header")(stamp=_time(stamp_ns), frame_id=frame_id)


def stamp_ns(msg: Any) -> int:
    """The header stamp of a message, in ns."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def image(array: np.ndarray, stamp: int, frame_id: str = "camera_optical_frame") -> Any:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8 stamped `stamp` ns."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    h, w = array.shape[:2]
    return _t(IMAGE)(
        header=header(stamp, frame_id),
        height=h,
        width=w,
        encoding="rgb8",
        is_bigendian=0,
        step=3 * w,
        data=np.ascontiguousarray(array).reshape(-1),
    )


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, mono8) -> (H, W, 3) uint8 RGB.

    Raises:
        ValueError: another encoding (named in the message).
    """
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; expected one of {sorted(_CHANNELS)}")
    rows = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    return to_rgb(rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels), msg.encoding)


def joint_state(
    names: Sequence[str], position: np.ndarray, velocity: np.ndarray, effort: np.ndarray, stamp: int
) -> Any:
    return _t(JOINT_STATE)(
        header=header(stamp),
        name=list(names),
        position=np.asarray(position, dtype=np.float64),
        velocity=np.asarray(velocity, dtype=np.float64),
        effort=np.asarray(effort, dtype=np.float64),
    )


def joint_trajectory(names: Sequence[str], positions: np.ndarray, duration: float, stamp: int) -> Any:
    """A one-point JointTrajectory: reach `positions` `duration` seconds after `stamp`."""
    empty = np.zeros(0, dtype=np.float64)
    point = _t("trajectory_msgs/msg/JointTrajectoryPoint")(
        positions=np.asarray(positions, dtype=np.float64),
        velocities=empty,
        accelerations=empty,
        effort=empty,
        time_from_start=_time(round(duration * 1e9), "builtin_interfaces/msg/Duration"),
    )
    return _t(JOINT_TRAJECTORY)(header=header(stamp), joint_names=list(names), points=[point])


def float64_array(values: np.ndarray) -> Any:
    layout = _t("std_msgs/msg/MultiArrayLayout")(dim=[], data_offset=0)
    return _t(FLOAT64_ARRAY)(layout=layout, data=np.asarray(values, dtype=np.float64))


def pose_stamped(position: np.ndarray, quat_wxyz: np.ndarray, stamp: int, frame_id: str = "world") -> Any:
    """(3,) position and (4,) quaternion (w, x, y, z, MuJoCo's order) -> PoseStamped."""
    x, y, z = (float(v) for v in position)
    qw, qx, qy, qz = (float(v) for v in quat_wxyz)
    pose = _t("geometry_msgs/msg/Pose")(
        position=_t("geometry_msgs/msg/Point")(x=x, y=y, z=z),
        orientation=_t("geometry_msgs/msg/Quaternion")(x=qx, y=qy, z=qz, w=qw),
    )
    return _t(POSE_STAMPED)(header=header(stamp, frame_id), pose=pose)
