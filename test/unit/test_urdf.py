"""The URDF (for gz_ros2_control and real arms) describes the same arm as the MJCF."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ami_ros.sim import URDF_PATH, ArmSim


@pytest.fixture(scope="module")
def urdf():
    return ET.parse(URDF_PATH).getroot()


@pytest.fixture(scope="module")
def sim():
    with ArmSim() as s:
        yield s


def revolute_joints(urdf):
    return [j for j in urdf.findall("joint") if j.get("type") == "revolute"]


def test_joint_names_and_limits_match_mjcf(urdf, sim):
    joints = revolute_joints(urdf)
    assert tuple(j.get("name") for j in joints) == sim.joint_names
    for i, joint in enumerate(joints):
        limit = joint.find("limit")
        assert float(limit.get("lower")) == pytest.approx(sim.lower[i])
        assert float(limit.get("upper")) == pytest.approx(sim.upper[i])
        assert float(limit.get("velocity")) == pytest.approx(sim.velocity_limits[i])
        assert float(limit.get("effort")) == pytest.approx(sim.effort_limits[i])
        assert joint.find("axis").get("xyz") == "0 0 1"


def urdf_forward_kinematics(urdf, qpos):
    """End-effector position by chaining the URDF's joint origins (all axes are z, no rpy)."""
    joints = {j.find("child").get("link"): j for j in urdf.findall("joint")}
    chain, link = [], "end_effector"
    while link in joints:
        chain.append(joints[link])
        link = joints[link].find("parent").get("link")
    pos, yaw, i = np.zeros(3), 0.0, 0
    for joint in reversed(chain):
        origin = np.array([float(v) for v in joint.find("origin").get("xyz").split()])
        rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        pos = pos + rot @ origin
        if joint.get("type") == "revolute":
            yaw += qpos[i]
            i += 1
    return pos


def test_forward_kinematics_match_mjcf(urdf, sim):
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(sim.lower, sim.upper)
        np.testing.assert_allclose(urdf_forward_kinematics(urdf, q), sim.forward_kinematics(q), atol=1e-9)


def test_ros2_control_tags_command_every_joint_by_position(urdf, sim):
    control = urdf.find("ros2_control")
    assert control.find("hardware/plugin").text == "gz_ros2_control/GazeboSimSystem"
    joints = control.findall("joint")
    assert tuple(j.get("name") for j in joints) == sim.joint_names
    for i, joint in enumerate(joints):
        command = joint.find("command_interface")
        assert command.get("name") == "position"
        bounds = {p.get("name"): float(p.text) for p in command.findall("param")}
        assert bounds == pytest.approx({"min": sim.lower[i], "max": sim.upper[i]})
        assert {s.get("name") for s in joint.findall("state_interface")} == {"position", "velocity", "effort"}
    plugin = urdf.find("gazebo/plugin")
    assert plugin.get("filename") == "gz_ros2_control-system"
