"""The robot described once (`ami_ros.robot`): every config built from a robot file + its URDF,
derived values computed, the committed configs in agreement, and the one model-fits-robot check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from ami_ros.config import (
    CollectConfig,
    ConfigError,
    ControllerConfig,
    DataConfig,
    EncoderNodeConfig,
    PredictorNodeConfig,
    TrainRunConfig,
    WorldModelConfig,
    from_params,
    load_ros_params,
    load_yaml,
)
from ami_ros.robot import RobotDescription, load_robot, model_mismatch

ROOT = Path(__file__).resolve().parents[2]
ROBOTS = sorted((ROOT / "config" / "robots").glob("*.robot.yaml"))
CONFIGS = (
    ControllerConfig,
    EncoderNodeConfig,
    PredictorNodeConfig,
    DataConfig,
    WorldModelConfig,
    CollectConfig,
)
TRAINING = {"tabletop_arm": "train.yaml", "ur5e": "train_ur5e_tiny.yaml"}
"""The training config of each robot file, checked against it."""


def test_every_shipped_robot_has_a_robot_file():
    assert {p.name.removesuffix(".robot.yaml") for p in ROBOTS} >= {"tabletop_arm", "ur5e"}


@pytest.mark.parametrize("path", ROBOTS, ids=lambda p: p.name)
def test_every_config_builds_from_the_robot_file(path):
    robot = load_robot(path)
    for cls in CONFIGS:
        config = robot.apply(cls())
        for name, value in robot.values().items():
            if hasattr(config, name):
                assert getattr(config, name) == value, (cls.__name__, name)
    run = robot.apply(TrainRunConfig(model=robot.apply(WorldModelConfig()), data=robot.apply(DataConfig())))
    assert run.model.joint_names == run.data.joint_names == robot.joint_names
    assert np.allclose(run.model.action_limits, np.array(robot.velocity_limits) * robot.control_period)


@pytest.mark.parametrize("path", ROBOTS, ids=lambda p: p.name)
def test_the_node_configs_shipped_for_the_robot_agree_with_it(path):
    robot = load_robot(path)
    params = path.with_name(f"{robot.name}.yaml")
    controller = from_params(ControllerConfig, load_ros_params(params, "planner_node"))
    assert controller.joint_names == robot.joint_names
    assert np.allclose(controller.joint_lower, robot.joint_lower, atol=1e-4)
    assert np.allclose(controller.joint_upper, robot.joint_upper, atol=1e-4)
    assert np.allclose(controller.velocity_limits, robot.velocity_limits)
    assert controller.control_period == robot.control_period
    for node, cls in (("encoder_node", EncoderNodeConfig), ("predictor_node", PredictorNodeConfig)):
        assert from_params(cls, load_ros_params(params, node)).joint_names == robot.joint_names


@pytest.mark.parametrize("path", ROBOTS, ids=lambda p: p.name)
def test_the_training_config_shipped_for_the_robot_agrees_with_it(path):
    """Its action limits are the robot's velocity x control period, its joint range covers the
    robot's limits, its data section reads the robot's topics and joints."""
    robot = load_robot(path)
    cfg = load_yaml(ROOT / "config" / TRAINING[robot.name], TrainRunConfig)
    assert cfg.model.joint_names == cfg.data.joint_names == robot.joint_names
    assert np.allclose(cfg.model.action_limits, robot.action_limits)
    assert np.allclose(cfg.model.joint_limits, robot.joint_limits, atol=1e-4)
    assert cfg.data.control_period == robot.control_period
    for key, value in robot.topics.items():
        assert getattr(cfg.data, key) == value, key


def test_the_embedded_robot_file_is_the_simulated_arm():
    from ami_ros.config import SimConfig
    from ami_ros.sim import ArmSim

    robot = load_robot(ROOT / "config" / "robots" / "tabletop_arm.robot.yaml")
    with ArmSim(SimConfig(image_width=32, image_height=32)) as sim:
        assert tuple(sim.joint_names) == robot.joint_names
        assert np.allclose(sim.lower, robot.joint_lower) and np.allclose(sim.upper, robot.joint_upper)
        assert np.allclose(sim.velocity_limits, robot.velocity_limits)


URDF = """<robot name="three">
  <link name="a"/><link name="b"/><link name="c"/><link name="tip"/>
  <joint name="j1" type="revolute"><parent link="a"/><child link="b"/><axis xyz="0 0 1"/>
    <limit lower="-2" upper="2" velocity="1.5" effort="10"/></joint>
  <joint name="j2" type="revolute"><parent link="b"/><child link="c"/><axis xyz="0 0 1"/>
    <limit lower="-1" upper="3" velocity="2" effort="10"/></joint>
  <joint name="j3" type="prismatic"><parent link="c"/><child link="tip"/><axis xyz="1 0 0"/>
    <limit lower="0" upper="0.2" velocity="0.5" effort="10"/></joint>
</robot>"""


def new_arm(tmp_path: Path, **robot) -> Path:
    (tmp_path / "three.urdf").write_text(URDF)
    body = {"urdf": "three.urdf", "joints": ["j1", "j2", "j3"], "control_period": 0.05} | robot
    path = tmp_path / "three.robot.yaml"
    path.write_text(yaml.safe_dump({"robot": body}))
    return path


def test_a_new_arm_is_one_robot_file_and_its_urdf(tmp_path):
    robot = load_robot(new_arm(tmp_path))
    assert robot.name == "three" and robot.joint_names == ("j1", "j2", "j3")
    assert robot.joint_lower == (-2.0, -1.0, 0.0) and robot.joint_upper == (2.0, 3.0, 0.2)
    assert robot.action_limits == pytest.approx((0.075, 0.1, 0.025))  # velocity x 0.05 s
    assert robot.joint_limits == (2.0, 3.0, 0.2)
    for cls in CONFIGS:
        config = robot.apply(cls())
        assert getattr(config, "joint_names", robot.joint_names) == robot.joint_names
    controller = robot.apply(ControllerConfig())
    assert controller.control_period == 0.05 and controller.velocity_limits == (1.5, 2.0, 0.5)


def test_robot_file_mistakes_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"joints \['j9'\] are not movable joints"):
        load_robot(new_arm(tmp_path, joints=["j1", "j9"]))
    with pytest.raises(ConfigError, match=r"joint_upper of \['j2'\] goes beyond the URDF's"):
        load_robot(new_arm(tmp_path, joint_upper=[2, 3.5, 0.2]))
    with pytest.raises(ConfigError, match=r"unknown keys \['joint_names'\]"):
        load_robot(new_arm(tmp_path, joint_names=["j1"]))
    with pytest.raises(ConfigError, match="velocity_limits needs 3 values"):
        load_robot(new_arm(tmp_path, velocity_limits=[1.0]))
    tighter = load_robot(new_arm(tmp_path, joint_lower=[-1, -1, 0], velocity_limits=[1, 1, 0.1]))
    assert tighter.joint_lower == (-1.0, -1.0, 0.0) and tighter.action_limits == pytest.approx(
        (0.05, 0.05, 0.005)
    )


def test_model_mismatch_names_each_way_a_model_can_miss_the_robot():
    names, limits = ("a", "b"), ((-1.0, -2.0), (1.0, 2.0))
    fits = {"model_joint_names": names, "model_control_period": 0.1, "model_joint_limits": (1.0, 2.0)}
    assert model_mismatch(names, 0.1, limits, **fits) is None
    assert model_mismatch(names, None, None, **fits) is None
    assert "joint names mismatch" in model_mismatch(("b", "a"), 0.1, limits, **fits)
    assert "control period mismatch" in model_mismatch(names, 0.05, limits, **fits)
    assert "joint limits of ['b'] reach beyond" in model_mismatch(names, 0.1, ((-1, -2.5), (1, 2)), **fits)
    assert "2 joint limits expected" in model_mismatch(names, 0.1, ((-1,), (1,)), **fits)


def test_robot_description_refuses_inconsistent_values():
    base = {"name": "x", "urdf": Path("x.urdf"), "joint_names": ("a",), "control_period": 0.1}
    with pytest.raises(ConfigError, match="below its upper"):
        RobotDescription(joint_lower=(1.0,), joint_upper=(0.0,), velocity_limits=(1.0,), **base)
    with pytest.raises(ConfigError, match="must be > 0"):
        RobotDescription(joint_lower=(0.0,), joint_upper=(1.0,), velocity_limits=(0.0,), **base)
    ok = RobotDescription(joint_lower=(-1.0,), joint_upper=(1.0,), velocity_limits=(2.0,), **base)
    assert dataclasses.replace(ok, control_period=0.2).action_limits == (0.4,)


def test_the_configs_defaults_are_the_embedded_robot_file():
    """The dataclass defaults (one set of constants in config.py) are what the embedded arm's robot
    file gives: a config without a robot file is the embedded arm's."""
    robot = load_robot(ROOT / "config" / "robots" / "tabletop_arm.robot.yaml")
    for cls in CONFIGS:
        assert robot.apply(cls()) == cls(), cls.__name__
