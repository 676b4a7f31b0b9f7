"""encoder_node, predictor_node and planner_node as managed (lifecycle) nodes, driven through
their lifecycle services as `ros2 lifecycle set` drives them: what exists in each state, and
transitions that fail with the reason when the model is missing, corrupt or made for another robot.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image
from trajectory_msgs.msg import JointTrajectory

from ami_ros.runtime import default_model_dir

pytestmark = pytest.mark.ros

MANUAL = {"autostart": False}


@pytest.fixture(scope="module")
def sim_node_params():
    return {"publish_clock": False}  # wall-time stamps, as the nodes here run without use_sim_time


class Lifecycle:
    """The lifecycle services of one node, as `ros2 lifecycle get/set` calls them."""

    def __init__(self, ros, node: str) -> None:
        self.ros = ros
        self.get_client = ros.node.create_client(GetState, f"{node}/get_state")
        self.set_client = ros.node.create_client(ChangeState, f"{node}/change_state")

    def get(self) -> str:
        return self.ros.call(self.get_client, GetState.Request(), timeout=30.0).current_state.label

    def set(self, label: str) -> bool:
        request = ChangeState.Request(transition=Transition(label=label))
        return self.ros.call(self.set_client, request, timeout=60.0).success


def test_encoder_node_loads_on_configure_and_takes_input_only_while_active(ros, sim_node, start_node):
    encoder = start_node("ami_ros.ros.encoder_node", MANUAL, "encoder_manual")
    ros.watched = encoder
    node = Lifecycle(ros, "encoder_node")
    assert node.get() == "unconfigured"
    count_subs = ros.node.count_subscribers
    assert ros.node.count_publishers("ami/latent") == 0 and count_subs("camera/image_raw") == 0
    assert "loaded" not in encoder.log()  # nothing loaded before configure

    assert node.set("configure") and node.get() == "inactive"
    assert "(encoder.onnx) loaded and warmed up" in encoder.log()  # the encoder graph only
    ros.spin_until(lambda: ros.node.count_publishers("ami/latent") == 1, 10.0, "the latent publisher")
    latents = ros.subscribe(Image, "ami/latent", keep=5)
    ros.spin_for(1.0)
    assert count_subs("camera/image_raw") == 0 and not latents  # inactive: no input, no output

    assert node.set("activate") and node.get() == "active"
    ros.spin_until(lambda: len(latents) >= 3, 30.0, "latents from the active encoder")

    assert node.set("deactivate") and node.get() == "inactive"
    ros.spin_until(lambda: count_subs("camera/image_raw") == 0, 10.0, "the camera subscription to go")
    ros.spin_for(0.5)
    latents.clear()
    ros.spin_for(1.5)
    assert not latents

    assert node.set("cleanup") and node.get() == "unconfigured"
    ros.spin_until(lambda: ros.node.count_publishers("ami/latent") == 0, 10.0, "the publisher to go")
    assert node.set("configure") and node.set("activate")  # and again, after a cleanup
    latents.clear()
    ros.spin_until(lambda: len(latents) >= 3, 30.0, "latents after a second configure")
    assert node.set("shutdown") and node.get() == "finalized"
    ros.watched = None


def test_planner_node_plans_only_while_active_and_holds_the_arm_as_it_deactivates(ros, start_node, tmp_path):
    params = {**MANUAL, "goal_memory_dir": str(tmp_path), "diagnostics_period": 0.2}
    planner = start_node("ami_ros.ros.planner_node", params, "planner_manual", ("-r", "__ns:=/lc"))
    ros.watched = planner
    node = Lifecycle(ros, "/lc/planner_node")
    commands = ros.subscribe(JointTrajectory, "/lc/arm_controller/joint_trajectory", keep=50)
    progress = ros.subscribe(DiagnosticStatus, "/lc/ami/progress", keep=50)
    assert node.set("configure") and node.get() == "inactive"
    (loaded,) = [line for line in planner.log().splitlines() if "loaded and warmed up" in line]
    assert "encoder.onnx" in loaded and "rollout_cost.onnx" in loaded
    assert "predictor.onnx" not in loaded  # the planner never steps the predictor graph
    ros.spin_for(1.0)
    assert ros.node.count_subscribers("/lc/ami/latent") == 0 and not progress  # inactive: no ticks

    assert node.set("activate") and node.get() == "active"
    ros.spin_until(lambda: len(progress) >= 3, 20.0, "ticks (holding: no goal) while active")
    assert ros.node.count_subscribers("/lc/ami/latent") == 1
    commands.clear()
    assert node.set("deactivate") and node.get() == "inactive"
    ros.spin_until(lambda: commands, 10.0, "a hold as the planner deactivates")
    assert all(not c.points for c in commands)  # an empty trajectory: hold where the arm is
    ros.spin_for(0.5)
    progress.clear()
    ros.spin_for(1.0)
    assert not progress
    assert node.set("shutdown") and node.get() == "finalized"
    ros.watched = None


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory) -> dict[str, Path]:
    """Copies of the shipped model: one with a corrupt predictor graph, one with another robot's joints."""
    source = default_model_dir()
    root = tmp_path_factory.mktemp("models")
    corrupt, other = root / "corrupt", root / "other_robot"
    shutil.copytree(source, corrupt)
    shutil.copytree(source, other)
    (corrupt / "predictor.onnx").write_bytes(b"\0" * 64)
    manifest = other / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("joint4", "wrist"))
    return {"missing": root / "nowhere", "corrupt": corrupt, "other_robot": other}


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("missing", "missing file: .*nowhere/manifest.yaml"),
        ("corrupt", "sha256 mismatch for .*predictor.onnx"),
        ("other_robot", "joint names mismatch"),
    ],
)
def test_configure_fails_with_the_reason_and_leaves_the_node_unconfigured(
    ros, start_node, broken_models, model, reason
):
    params = {**MANUAL, "runtime.model_dir": str(broken_models[model])}
    proc = start_node("ami_ros.ros.predictor_node", params, f"predictor_{model}", ("-r", f"__ns:=/{model}"))
    ros.watched = proc
    node = Lifecycle(ros, f"/{model}/predictor_node")
    assert not node.set("configure")
    assert node.get() == "unconfigured"
    ros.spin_until(lambda: "configure failed" in proc.log(), 5.0, "the failure in the log")
    assert re.search(f"configure failed: runtime.model_dir: {reason}", proc.log()), proc.log()
    assert "Traceback" not in proc.log()
    ros.watched = None


def test_autostart_with_a_broken_model_exits_with_the_reason(start_node, broken_models):
    params = {"runtime.model_dir": str(broken_models["corrupt"])}
    proc = start_node("ami_ros.ros.predictor_node", params, "predictor_autostart")
    assert proc.wait(60) == 1
    assert "invalid configuration: runtime.model_dir: sha256 mismatch" in proc.log()
    assert "Traceback" not in proc.log()


def test_planner_refuses_a_model_trained_at_another_control_period(start_node, tmp_path):
    params = {"goal_memory_dir": str(tmp_path), "control_period": 0.05}
    proc = start_node("ami_ros.ros.planner_node", params, "planner_period", ("-r", "__ns:=/period"))
    assert proc.wait(60) == 1
    reason = "control period mismatch: the robot's is 0.05 s, the model was trained on 0.1 s"
    assert f"invalid configuration: runtime.model_dir: {reason}" in proc.log()
