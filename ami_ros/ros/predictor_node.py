"""predictor_node: forecasts of the commands actually sent, and surprise when they miss.

For every command the robot receives, it forecasts the latent one control period after the newest
latent, from the model's history and the action the command implies (commanded target minus the
joint positions in that latent). When the latent for that instant arrives it publishes the
forecast's error: surprise. Surprise that stays above `surprise_threshold` for `surprise_window`
forecasts turns /diagnostics to WARN: the world no longer behaves as the model expects (a
collision, a moved camera, an unknown object, a model trained on another robot); so does an image
that stays unchanged while the joints move (`stillness` above `stillness_threshold`: a frozen
camera), and for `surprise_window` forecasts after one whose scene surprise exceeds
`scene_threshold` (image tokens that changed where the forecast expected none: something the model
did not see moved, such as a knocked block). The forecasting and scoring are
`ami_ros.core.forecaster.Forecaster`, the object the early-warning benchmark runs.

Subscribes: ami/latent (32FC1 Image), and arm_controller/joint_trajectory (first point) or
    forward_position_controller/commands by `command_interface`.
Publishes:
    ami/forecast (sensor_msgs/Image 32FC1, the latent layout): header stamp = the instant forecast
        (source latent's stamp + control period), frame_id = the source latent's.
    ami/surprise (std_msgs/Float32): mean squared error of the forecast's image tokens against
        the latent that arrived, one per forecast.
    /diagnostics: forecasts, surprise (last, mean of the window), threshold, the mean error of the
        forecast proprio token over the window (the joints the model expected), the window's least
        stillness and largest scene surprise, execution provider.
Lifecycle: a managed node (`ami_ros.ros.lifecycle`): configure loads and warms the predictor graph
    only; subscriptions and the diagnostics timer exist only while active. Parameter `autostart`.
"""

from __future__ import annotations

from collections import deque
from typing import NoReturn

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float64MultiArray, Header
from trajectory_msgs.msg import JointTrajectory

from ami_ros.config import PredictorNodeConfig
from ami_ros.core.forecaster import Forecaster
from ami_ros.core.stamps import check_stamp
from ami_ros.ros import conversions as conv
from ami_ros.ros.fault_log import FaultLog
from ami_ros.ros.lifecycle import ManagedNode
from ami_ros.ros.model_loading import declare_runtime, load_node_model
from ami_ros.ros.params import declare_from_dataclass, read_dataclass
from ami_ros.ros.spin import spin_node


class PredictorNode(ManagedNode):
    """Lifecycle node: loads the predictor graph on configure, forecasts while active."""

    def __init__(self, **kwargs) -> None:
        super().__init__("predictor_node", **kwargs)
        declare_from_dataclass(self, PredictorNodeConfig)
        declare_runtime(self)

    def configure(self) -> None:
        self.config = c = read_dataclass(self, PredictorNodeConfig)
        self.runtime = load_node_model(self, c.joint_names, graphs=("predictor.onnx",))
        period = float(self.runtime.manifest["actions"]["control_period_s"])
        self.forecaster = Forecaster(self.runtime, period)
        self._surprise: deque[float] = deque(maxlen=c.surprise_window)
        self._joint_surprise: deque[float] = deque(maxlen=c.surprise_window)  # proprio token's error
        self._stillness: deque[float] = deque(maxlen=c.surprise_window)
        self._scene: deque[float] = deque(maxlen=c.surprise_window)
        self._ignored = 0
        self._last_error = ""
        self._pub_forecast = self.create_lifecycle_publisher(Image, "ami/forecast", 10)
        self._pub_surprise = self.create_lifecycle_publisher(Float32, "ami/surprise", 10)
        self._pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)

    def activate(self) -> None:
        c = self.config
        if c.command_interface == "trajectory":
            commands = self.create_subscription(
                JointTrajectory, "arm_controller/joint_trajectory", self._on_trajectory, 10
            )
        else:
            commands = self.create_subscription(
                Float64MultiArray, "forward_position_controller/commands", self._on_forward, 10
            )
        self.inputs(
            self.create_subscription(Image, "ami/latent", self._on_latent, 10),
            commands,
            self.create_timer(c.diagnostics_period, self._publish_diagnostics),
        )

    def release(self) -> None:
        if getattr(self, "runtime", None) is not None:
            self.runtime.close()
        self.runtime = None

    def _error(self, text: str) -> None:
        self._ignored += 1
        self._last_error = text
        FaultLog.of(self)(text, "warning")  # one throttled line per kind of error

    def _on_latent(self, msg: Image) -> None:
        stamp = conv.to_seconds(msg.header.stamp)
        try:
            latent = conv.image_to_latent(msg, self.runtime.latent_shape)
            check_stamp(stamp, self.get_clock().now().nanoseconds * 1e-9)
        except ValueError as err:
            return self._error(f"ami/latent ignored: {err}")
        surprise = self.forecaster.observe(stamp, latent)
        if surprise is not None:
            self._surprise.append(surprise.image)
            self._joint_surprise.append(surprise.joints)
            self._stillness.append(surprise.stillness)
            self._scene.append(surprise.scene)
            self._pub_surprise.publish(Float32(data=surprise.image))

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return  # a hold: nothing to forecast
        names = list(msg.joint_names)
        missing = [n for n in self.runtime.joint_names if n not in names]
        if missing or len(msg.points[0].positions) != len(names):
            return self._error(f"command ignored: joints {missing} missing or positions of the wrong length")
        positions = msg.points[0].positions
        self._forecast(np.array([positions[names.index(n)] for n in self.runtime.joint_names]))

    def _on_forward(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != len(self.runtime.joint_names):
            return self._error(
                f"command ignored: {len(msg.data)} values for {len(self.runtime.joint_names)} joints"
            )
        self._forecast(np.asarray(msg.data, float))

    def _forecast(self, target: np.ndarray) -> None:
        forecast = self.forecaster.forecast(target)
        if forecast is not None:
            instant, latent = forecast
            header = Header(stamp=conv.to_time(instant), frame_id="ami_latent")
            self._pub_forecast.publish(conv.latent_to_image(latent, header))

    def _publish_diagnostics(self) -> None:
        c = self.config
        window = list(self._surprise)
        full = len(window) == c.surprise_window
        surprised = full and min(window) > c.surprise_threshold
        frozen = full and min(self._stillness) > c.stillness_threshold
        scene = max(self._scene, default=0.0)
        moved = scene > c.scene_threshold  # one event: it warns while it is in the window
        level = DiagnosticStatus.WARN if surprised or frozen or moved else DiagnosticStatus.OK
        message = "forecasting"
        if surprised:
            message = (
                f"surprise above {c.surprise_threshold} for {c.surprise_window} forecasts: the world does "
                "not behave as the model expects"
            )
        elif frozen:
            message = f"the camera image has not changed in {c.surprise_window} forecasts while the arm moved"
        elif moved:
            message = (
                f"scene surprise {scene:.1f} above {c.scene_threshold}: the image changed where the model "
                "expected no change (something it did not see moved, or the view changed)"
            )
        values = {
            "forecasts": self.forecaster.forecasts,
            "surprise_last": f"{window[-1]:.4f}" if window else "nan",
            "surprise_window_mean": f"{np.mean(window):.4f}" if window else "nan",
            "surprise_threshold": c.surprise_threshold,
            # the joints the model expected the commands to reach vs the measured ones: an arm that
            # does not execute its commands (`command_dropped` in `python -m ami_ros.eval.early_warning`)
            "surprise_joints_window_mean": f"{np.mean(self._joint_surprise):.5f}" if window else "nan",
            "stillness_window_min": f"{min(self._stillness):.3f}" if self._stillness else "nan",
            "scene_window_max": f"{scene:.3f}" if self._scene else "nan",
            "ignored_messages": self._ignored,
            "last_error": self._last_error,
            "execution_provider": self.runtime.providers["predictor.onnx"],
        }
        self._pub_diag.publish(
            conv.diagnostic(
                f"{self.get_name()}: forecast", level, message, values, self.get_clock().now().to_msg()
            )
        )


def main(args: list[str] | None = None) -> NoReturn:
    spin_node(PredictorNode, "predictor_node", args)


if __name__ == "__main__":
    main()
