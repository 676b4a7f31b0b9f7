"""launch/gazebo.launch.py cannot run here (no Gazebo); these cross-checks keep its pieces in step
with the nodes: the bridge's ROS types and topics against what the nodes subscribe to, the bridge's
gz topics against the world's camera sensor, the spawned controllers against the planner's command
topic and config/ros2_controllers.yaml, and the URDF's joints against the robot config.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ami_ros.config import ControllerConfig, from_params, load_ros_params

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "gazebo.launch.py"
BRIDGE = yaml.safe_load((ROOT / "config" / "gz_bridge.yaml").read_text())
WORLD = ET.parse(ROOT / "config" / "gazebo" / "tabletop.sdf").getroot()
CONTROLLERS = yaml.safe_load((ROOT / "config" / "ros2_controllers.yaml").read_text())
ROBOT_CONFIG = ROOT / "config" / "robots" / "tabletop_arm.yaml"
PLANNER = from_params(ControllerConfig, load_ros_params(ROBOT_CONFIG, "planner_node"))
"""planner_node's robot config, with its robot file applied (joints, limits, velocities)."""
URDF = ET.parse(ROOT / "ami_ros" / "sim" / "assets" / "tabletop_arm.urdf").getroot()
GZ_TYPES = {  # ros_gz_bridge's pairs for these messages
    "sensor_msgs/msg/Image": "gz.msgs.Image",
    "sensor_msgs/msg/CameraInfo": "gz.msgs.CameraInfo",
    "rosgraph_msgs/msg/Clock": "gz.msgs.Clock",
}


def node_subscriptions() -> dict[str, str]:
    """{topic: "pkg/msg/Type"} of every create_subscription(Type, "topic", ...) in ami_ros/ros/*_node.py."""
    found = {}
    for path in sorted((ROOT / "ami_ros" / "ros").glob("*_node.py")):
        tree = ast.parse(path.read_text())
        packages = {
            alias.asname or alias.name: node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith(".msg")
            for alias in node.names
        }
        for call in ast.walk(tree):
            if (
                isinstance(call, ast.Call)
                and getattr(call.func, "attr", "") == "create_subscription"
                and isinstance(call.args[0], ast.Name)
                and isinstance(call.args[1], ast.Constant)
                and call.args[0].id in packages
            ):
                found[call.args[1].value] = f"{packages[call.args[0].id]}/msg/{call.args[0].id}"
    return found


def bridged(ros_topic: str) -> dict:
    entries = [e for e in BRIDGE if e["ros_topic_name"] == ros_topic]
    assert len(entries) == 1, f"{ros_topic} bridged {len(entries)} times"
    return entries[0]


def test_the_bridge_feeds_the_encoder_and_the_clock_with_the_types_they_take():
    subscriptions = node_subscriptions()
    assert subscriptions["camera/image_raw"] == "sensor_msgs/msg/Image"  # encoder_node
    for entry in BRIDGE:
        assert entry["direction"] == "GZ_TO_ROS"
        assert GZ_TYPES[entry["ros_type_name"]] == entry["gz_type_name"], entry
        if entry["ros_topic_name"] in subscriptions:
            assert subscriptions[entry["ros_topic_name"]] == entry["ros_type_name"], entry
    assert bridged("camera/image_raw")["ros_type_name"] == "sensor_msgs/msg/Image"
    assert bridged("camera/camera_info")["ros_type_name"] == "sensor_msgs/msg/CameraInfo"
    assert bridged("/clock")["gz_topic_name"] == "/clock"  # the nodes run on sim time (use_sim_time)


def test_the_bridged_gz_topics_are_the_world_camera_sensor():
    (sensor,) = [s for s in WORLD.iter("sensor") if s.get("type") == "camera"]
    assert bridged("camera/image_raw")["gz_topic_name"] == sensor.findtext("topic")
    assert bridged("camera/camera_info")["gz_topic_name"] == sensor.findtext("camera/camera_info_topic")
    sim = yaml.safe_load((ROOT / "config" / "sim_node.yaml").read_text())["/**"]["ros__parameters"]["sim"]
    image = sensor.find("camera/image")
    assert (int(image.findtext("width")), int(image.findtext("height"))) == (
        sim["image_width"],
        sim["image_height"],
    )  # the camera the shipped model was trained on
    assert image.findtext("format") == "R8G8B8"  # rgb8, which the encoder takes
    plugins = {p.get("name") for p in WORLD.iter("plugin")}
    assert "gz::sim::systems::Sensors" in plugins  # without it the camera never renders


def test_spawned_controllers_take_the_planner_commands():
    tree = ast.parse(LAUNCH.read_text())
    (spawned,) = [
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "CONTROLLERS"
    ]
    manager = CONTROLLERS["controller_manager"]["ros__parameters"]
    for name in spawned:
        assert name in manager, f"{name} is spawned but not in config/ros2_controllers.yaml"
    assert manager["arm_controller"]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    # planner_node's command topics (ArmCommand) are those of the controllers spawned / configured
    planner_source = (ROOT / "ami_ros" / "ros" / "arm_command.py").read_text()
    assert '"arm_controller/joint_trajectory"' in planner_source and "arm_controller" in spawned
    assert (
        "forward_position_controller/commands" in planner_source and "forward_position_controller" in manager
    )
    names = list(PLANNER.joint_names)
    assert CONTROLLERS["arm_controller"]["ros__parameters"]["joints"] == names
    assert CONTROLLERS["forward_position_controller"]["ros__parameters"]["joints"] == names


def test_urdf_joints_and_limits_are_the_robot_config():
    joints = [j for j in URDF.findall("joint") if j.get("type") == "revolute"]
    assert [j.get("name") for j in joints] == list(PLANNER.joint_names)
    for i, joint in enumerate(joints):
        limit = joint.find("limit")
        assert float(limit.get("lower")) == pytest.approx(PLANNER.joint_lower[i])
        assert float(limit.get("upper")) == pytest.approx(PLANNER.joint_upper[i])
        assert float(limit.get("velocity")) == pytest.approx(PLANNER.velocity_limits[i])
    controlled = URDF.find("ros2_control").findall("joint")
    assert [j.get("name") for j in controlled] == list(PLANNER.joint_names)
    for joint in controlled:
        assert [c.get("name") for c in joint.findall("command_interface")] == ["position"]
    (plugin,) = URDF.find("gazebo").findall("plugin")
    assert plugin.findtext("parameters").endswith("/config/ros2_controllers.yaml")
