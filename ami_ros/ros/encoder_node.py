"""encoder_node: camera frames + joint states -> ami/latent, stamped with the frame's stamp.

Subscribes:
    camera/image_raw (sensor_msgs/Image: rgb8, bgr8 or mono8, any size): BEST_EFFORT, depth 1, so
        a slow encoder always works on the newest frame and never on a queue of old ones, and any
        camera publisher matches. Large frames over best effort lose fragments (640x480 rgb8 over
        Fast DDS: most frames): with a RELIABLE camera publisher, set the ROS QoS override
        `qos_overrides./<ns>/camera/image_raw.subscription.reliability: reliable`.
    joint_states (sensor_msgs/JointState): joints matched by name, in any order.
Publishes:
    ami/latent (sensor_msgs/Image, 32FC1, height = tokens, width = latent dim; header = the camera
        frame's): the encoder's latent of the frame paired with the joint state nearest its stamp
        (within `max_skew`). Its last row is the proprio token (joints = row[:J] * joint limits).
    /diagnostics: frames in / latents out, encode time, skew drops, execution provider, last error.
Parameters: `EncoderNodeConfig` fields, `RuntimeConfig` fields under `runtime.`, and `autostart`.
Lifecycle: a managed node (`ami_ros.ros.lifecycle`): configure loads and warms the encoder graph
    only; subscriptions and the diagnostics timer exist only while active.

A frame with no joint state within `max_skew` waits for the next joint state (at most one frame
waits); a frame in an unsupported encoding is dropped with a throttled error naming it; with
`max_rate`, frames sooner than it allows are skipped unread.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from typing import NoReturn

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image, JointState

from ami_ros.config import EncoderNodeConfig
from ami_ros.core.buffers import JointStateBuffer
from ami_ros.core.controller import recent
from ami_ros.core.preprocess import encode_frame, to_rgb
from ami_ros.core.stamps import check_stamp
from ami_ros.core.trace import LatencyTrace
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.ros.fault_log import FaultLog
from ami_ros.ros.lifecycle import ManagedNode
from ami_ros.ros.model_loading import declare_runtime, load_node_model
from ami_ros.ros.params import declare_from_dataclass, read_dataclass
from ami_ros.ros.spin import spin_node


class EncoderNode(ManagedNode):
    """Lifecycle node: loads the encoder graph on configure, encodes while active."""

    def __init__(self, **kwargs) -> None:
        super().__init__("encoder_node", **kwargs)
        declare_from_dataclass(self, EncoderNodeConfig)
        declare_runtime(self)

    def configure(self) -> None:
        self.config = c = read_dataclass(self, EncoderNodeConfig)
        self.runtime = load_node_model(self, c.joint_names, graphs=("encoder.onnx",))
        self.joints = JointStateBuffer(c.joint_names)
        self._pending: Image | None = None
        self._frames = self._latents = self._skew_drops = self._rate_skips = self._errors = 0
        self._last_encoded = -np.inf  # stamp of the last frame encoded
        self._encode_ms: deque[float] = deque(maxlen=200)
        self._last_error = ""
        self.trace = LatencyTrace(c.latency_trace)
        self._pub = self.create_lifecycle_publisher(Image, "ami/latent", 10)
        self._pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)

    def activate(self) -> None:
        self.inputs(
            self.create_subscription(
                Image,
                "camera/image_raw",
                self._on_image,
                copy.copy(qos.LATEST),
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            ),
            self.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR),
            self.create_timer(self.config.diagnostics_period, self._publish_diagnostics),
        )

    def release(self) -> None:
        if getattr(self, "runtime", None) is not None:
            self.runtime.close()
        self.runtime = None
        self._pending = None
        if getattr(self, "trace", None) is not None:
            self.trace.close()

    def _error(self, text: str) -> None:
        self._errors += 1
        self._last_error = text
        FaultLog.of(self)(text)  # one throttled line per kind of error

    def _on_joints(self, msg: JointState) -> None:
        try:
            stamp = conv.to_seconds(msg.header.stamp)
            check_stamp(stamp, self.get_clock().now().nanoseconds * 1e-9)
            self.joints.add(stamp, msg.name, msg.position)
        except ValueError as err:
            return self._error(f"joint_states ignored: {err}")
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._on_image(pending, retry=True)

    def _on_image(self, msg: Image, retry: bool = False) -> None:
        stamp = conv.to_seconds(msg.header.stamp)
        if not retry:
            self._frames += 1
            self.trace("received", stamp)
        rate = self.config.max_rate
        if rate and not retry and 0 <= stamp - self._last_encoded < 0.9 / rate:
            self._rate_skips += 1  # sooner than max_rate allows (a clock that jumped back: encoded)
            return
        try:  # a frame that cannot be encoded is refused before it waits for a joint state
            check_stamp(stamp, self.get_clock().now().nanoseconds * 1e-9)
            rgb = to_rgb(conv.image_to_numpy(msg), msg.encoding)
        except ValueError as err:
            return self._error(f"camera/image_raw frame dropped: {err}")
        q = self.joints.nearest(stamp, self.config.max_skew)
        if q is None:
            latest = self.joints.latest()
            if not retry and latest is not None and latest[0] < stamp:
                self._pending = msg  # the matching joint state may still be on its way
            else:
                self._skew_drops += 1
                self.get_logger().warning(
                    f"frame at {stamp:.3f} s dropped: no joint state within max_skew "
                    f"{self.config.max_skew} s (newest {latest[0] if latest else None})",
                    throttle_duration_sec=2.0,
                )
            return
        t0 = time.perf_counter()
        latent, _ = encode_frame(self.runtime, rgb, q)
        self._encode_ms.append(1e3 * (time.perf_counter() - t0))
        self.trace("encoded", stamp)
        self._pub.publish(conv.latent_to_image(latent, msg.header))
        self._latents += 1
        self._last_encoded = stamp

    def _publish_diagnostics(self) -> None:
        level = DiagnosticStatus.OK
        message = "encoding"
        if self._latents == 0:
            level, message = (
                DiagnosticStatus.WARN,
                "no latent published yet (waiting for camera and joint_states)",
            )
        values = {
            "frames_received": self._frames,
            "latents_published": self._latents,
            "skew_drops": self._skew_drops,
            "rate_skips": self._rate_skips,
            "errors": self._errors,
            "last_error": self._last_error,
            "execution_provider": self.runtime.providers["encoder.onnx"],
            "model_dir": str(self.runtime.model_dir),
        } | recent("encode_ms", self._encode_ms)
        self._pub_diag.publish(
            conv.diagnostic(
                f"{self.get_name()}: encoder", level, message, values, self.get_clock().now().to_msg()
            )
        )


def main(args: list[str] | None = None) -> NoReturn:
    spin_node(EncoderNode, "encoder_node", args)


if __name__ == "__main__":
    main()
