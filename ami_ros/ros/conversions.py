"""numpy <-> ROS message conversions; no logic beyond the conversion itself.

Images avoid cv_bridge (not on every install): `msg.data = arr.tobytes()` is about a thousand
times faster than assigning an ndarray to `msg.data`, and `image_to_numpy` is a zero-copy view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
MAX_PIXELS = 50_000_000
"""Frames larger than this (an 8K frame is 33 Mpx) are refused: a lying height or width."""


def to_time(seconds: float) -> Time:
    """builtin_interfaces/Time for `seconds` >= 0."""
    sec = int(seconds)
    nanosec = min(round((seconds - sec) * 1e9), 999_999_999)
    return Time(sec=sec, nanosec=nanosec)


def to_seconds(stamp: Time | Duration) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def numpy_to_image(array: np.ndarray, stamp: Time, frame_id: str, encoding: str = "rgb8") -> Image:
    """(H, W, 3) uint8 (rgb8/bgr8) or (H, W) uint8 (mono8) -> sensor_msgs/Image."""
    channels = _CHANNELS.get(encoding)
    if channels is None or array.dtype != np.uint8 or array.shape[2:] not in ((), (channels,)):
        raise ValueError(f"cannot encode a {array.dtype} array of shape {array.shape} as {encoding!r}")
    msg = Image(encoding=encoding, height=array.shape[0], width=array.shape[1], is_bigendian=0)
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.step = array.shape[1] * channels
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def image_to_numpy(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, mono8) -> (H, W, C) uint8 view in the message's encoding."""
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; expected one of {sorted(_CHANNELS)}")
    if msg.height * msg.width == 0:
        raise ValueError(f"empty image ({msg.height}x{msg.width})")
    if msg.height * msg.width > MAX_PIXELS:
        raise ValueError(f"{msg.height}x{msg.width} is larger than {MAX_PIXELS} pixels")
    _check_layout(msg, msg.width * channels)
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    return rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)


def _check_layout(msg: Image, row_bytes: int) -> None:
    """Raise ValueError unless `msg.step` holds a row and `msg.data` is exactly step x height."""
    if msg.step < row_bytes:
        raise ValueError(
            f"step {msg.step} is less than width {msg.width} x {row_bytes // max(msg.width, 1)} bytes"
        )
    if len(msg.data) != msg.step * msg.height:
        raise ValueError(f"{len(msg.data)} bytes of data, step x height is {msg.step * msg.height}")


def camera_info(
    intrinsics: tuple[float, float, float, float], width: int, height: int, stamp: Time, frame_id: str
) -> CameraInfo:
    """Pinhole CameraInfo, plumb_bob model with zero distortion, from (fx, fy, cx, cy)."""
    fx, fy, cx, cy = intrinsics
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5)
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def pose_stamped(position: np.ndarray, quat_wxyz: np.ndarray, stamp: Time, frame_id: str) -> PoseStamped:
    """(3,) position and (4,) quaternion (w, x, y, z, MuJoCo's order) -> PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.w, q.x, q.y, q.z = (float(v) for v in quat_wxyz)
    return msg


def yaw_quaternion(yaw: float) -> np.ndarray:
    """(w, x, y, z) quaternion of a rotation by `yaw` about z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def joint_state(
    names: Sequence[str], position: np.ndarray, velocity: np.ndarray, effort: np.ndarray, stamp: Time
) -> JointState:
    msg = JointState(name=list(names), position=position.tolist(), velocity=velocity.tolist())
    msg.effort = effort.tolist()
    msg.header.stamp = stamp
    return msg


def trajectory_arrays(
    msg: JointTrajectory,
) -> tuple[list[str], np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """JointTrajectory -> (joint names, (N,) times from start, N position rows, N velocity rows).

    Rows keep the message's lengths (ragged rows are for `ami_ros.core.trajectory` to reject).
    """
    times = np.array([to_seconds(p.time_from_start) for p in msg.points], dtype=float)
    positions = [np.asarray(p.positions, dtype=float) for p in msg.points]
    velocities = [np.asarray(p.velocities, dtype=float) for p in msg.points]
    return list(msg.joint_names), times, positions, velocities


def joint_command(
    interface: str, names: Sequence[str], positions: np.ndarray | None, period: float
) -> JointTrajectory | Float64MultiArray:
    """A joint-position command as the ros2_control controllers take it.

    `trajectory` (joint_trajectory_controller): one point `period` s ahead; positions None gives
    an empty trajectory, on which the controller holds the arm where it is. `forward`
    (forward_command_controller): the (J,) positions in joint order.
    """
    if interface == "forward":
        return Float64MultiArray(data=np.asarray(positions, float).tolist())
    msg = JointTrajectory(joint_names=list(names))
    if positions is not None:
        point = JointTrajectoryPoint(positions=np.asarray(positions, float).tolist())
        point.time_from_start = Duration(sec=int(period), nanosec=round((period % 1) * 1e9))
        msg.points = [point]
    return msg


def latent_to_image(latent: np.ndarray, header: Header) -> Image:
    """(L, D) float32 latent -> sensor_msgs/Image, encoding 32FC1, height L (tokens), width D.

    The header (stamp and frame) is the source camera frame's, so the latent keeps its time.
    """
    latent = np.ascontiguousarray(latent, dtype="<f4")
    msg = Image(encoding="32FC1", height=latent.shape[0], width=latent.shape[1], is_bigendian=0)
    msg.header = header
    msg.step = 4 * latent.shape[1]
    msg.data = latent.tobytes()
    return msg


def image_to_latent(msg: Image, shape: tuple[int, int]) -> np.ndarray:
    """32FC1 sensor_msgs/Image -> (L, D) float32 copy; raises ValueError unless it is `shape` and finite."""
    if msg.encoding != "32FC1" or (msg.height, msg.width) != tuple(shape) or msg.step != 4 * msg.width:
        raise ValueError(
            f"latent must be 32FC1 {shape[0]}x{shape[1]} (step {4 * shape[1]}), got {msg.encoding} "
            f"{msg.height}x{msg.width} (step {msg.step})"
        )
    _check_layout(msg, 4 * msg.width)
    dtype = ">f4" if msg.is_bigendian else "<f4"
    latent = np.frombuffer(msg.data, dtype).reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(latent)):
        nan = int(np.isnan(latent).sum())
        raise ValueError(f"latent has {nan} NaN and {int(np.isinf(latent).sum())} infinite values")
    return latent


def diagnostic(
    name: str, level: int, message: str, values: dict[str, object], stamp: Time
) -> DiagnosticArray:
    """A one-status DiagnosticArray; values are formatted with str()."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id="ami_ros")
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg
