"""Any arm: a UR5e (6 joints, the UR ROS 2 driver's names) described once for the nodes
(config/robots/ur5e.yaml) and for training (config/train_ur5e_tiny.yaml), checked against a bag
recorded with those names (made here, with the topics a UR5e with a RealSense publishes), and
trained on by `ami-ros train`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_launch import check_node_section, flatten

from ami_ros.config import (
    ConfigError,
    ControllerConfig,
    DataConfig,
    EncoderNodeConfig,
    PredictorNodeConfig,
    TrainRunConfig,
    from_dict,
    from_params,
    load_ros_params,
    load_yaml,
)

ROOT = Path(__file__).resolve().parents[1]
ROBOT = ROOT / "config" / "robots" / "ur5e.yaml"
TRAIN = ROOT / "config" / "train_ur5e_tiny.yaml"
UR5E = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
        "wrist_3_joint"]  # fmt: skip


def nodes() -> dict[str, dict]:
    document = yaml.safe_load(ROBOT.read_text())
    return {key.removeprefix("/**/"): flatten(value["ros__parameters"]) for key, value in document.items()}


def planner_config() -> ControllerConfig:
    """planner_node's controller as the node builds it: the robot config with its robot file applied."""
    return from_params(ControllerConfig, load_ros_params(ROBOT, "planner_node"))


def test_robot_config_configures_every_node_with_the_ur5e_joints():
    sections = nodes()
    assert set(sections) == {"encoder_node", "predictor_node", "planner_node"}
    for node, params in sections.items():
        check_node_section(node, params)  # every key known, every value valid (raises ConfigError)
        assert params["robot"] == "ur5e.robot.yaml", node  # the arm is described once, in its robot file
    for node, cls in (("encoder_node", EncoderNodeConfig), ("predictor_node", PredictorNodeConfig)):
        assert list(from_params(cls, load_ros_params(ROBOT, node)).joint_names) == UR5E, node
    planner = planner_config()
    assert list(planner.joint_names) == UR5E
    lower, upper = np.array(planner.joint_lower), np.array(planner.joint_upper)
    assert np.all(lower < upper) and not np.allclose(lower, -upper)  # asymmetric limits are allowed


def test_training_config_reads_the_robot_the_nodes_drive():
    cfg = load_yaml(TRAIN, TrainRunConfig)
    planner = planner_config()
    assert list(cfg.data.joint_names) == list(cfg.model.joint_names) == UR5E == list(planner.joint_names)
    bound = np.maximum(np.abs(planner.joint_lower), np.abs(planner.joint_upper))
    assert np.all(np.array(cfg.model.joint_limits) >= bound - 1e-6)  # normalisation covers the limits
    model = {"joint_names": UR5E, "joint_limits": [3.0] * 6, "action_limits": [0.1] * 6}
    with pytest.raises(ConfigError, match=r"data\.joint_names .* differ from model\.joint_names"):
        from_dict(TrainRunConfig, {"data": {"joint_names": UR5E[::-1]}, "model": model})


def test_train_checks_the_training_config_against_the_nodes_robot_config(tmp_path):
    """`ami-ros train --robot-config`: what loading the model on that robot would refuse, refused
    before training."""
    from ami_ros.cli import check_training_robot

    cfg = load_yaml(TRAIN, TrainRunConfig)
    check_training_robot(ROBOT, cfg)
    with pytest.raises(ConfigError, match=r"joint names mismatch"):
        check_training_robot(ROOT / "config" / "robots" / "tabletop_arm.yaml", cfg)
    robot_file = ROOT / "config" / "robots" / "ur5e.robot.yaml"
    urdf = ROOT / "config" / "robots" / "ur5e.urdf"
    slower_robot = tmp_path / "ur5e_20hz.robot.yaml"  # the arm at 20 Hz: its robot file changes
    slower_robot.write_text(
        robot_file.read_text()
        .replace("urdf: ur5e.urdf", f"urdf: {urdf}")
        .replace("control_period: 0.1", "control_period: 0.05")
    )
    slower = tmp_path / "ur5e_20hz.yaml"
    slower.write_text(ROBOT.read_text().replace("robot: ur5e.robot.yaml", f"robot: {slower_robot}"))
    with pytest.raises(
        ConfigError, match=r"control period mismatch: the robot's is 0\.05 s, the model was trained on 0\.1 s"
    ):
        check_training_robot(slower, cfg)
    limits = list(cfg.model.joint_limits)
    limits[2] = 3.0  # a model normalising the elbow by +-3.0 rad cannot take the robot's +-pi
    narrow = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, joint_limits=tuple(limits)))
    with pytest.raises(ConfigError, match=r"joint limits of \['elbow_joint'\] reach beyond"):
        check_training_robot(ROBOT, narrow)


def record_ur5e_bag(path: Path, cfg: DataConfig, segments: int = 3, steps: int = 24) -> Path:
    """What `ros2 bag record -s mcap` writes on a UR5e: its camera, joint_states (the driver
    publishes joints in its own order) and the trajectory controller's commands, 10 Hz, with a
    pause between segments (each becomes one training episode)."""
    from ami_ros.data import messages as m
    from ami_ros.data.bag import BagWriter

    rng = np.random.default_rng(0)
    order = [3, 0, 5, 1, 4, 2]  # joint_states lists joints in another order than the model
    with BagWriter(path, compression="lz4") as bag:
        bag.add_topic(cfg.image_topic, m.IMAGE)
        bag.add_topic(cfg.joint_state_topic, m.JOINT_STATE)
        bag.add_topic(cfg.command_topic, m.JOINT_TRAJECTORY)
        t = 1_000_000_000
        for _ in range(segments):
            q = rng.uniform(-1.0, 1.0, 6) * np.array([3, 1.5, 3, 3, 3, 3])
            q[1] = -abs(q[1])  # shoulder_lift within [-pi, 0]
            for _ in range(steps):
                frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                bag.write(cfg.image_topic, t, m.image(frame, t))
                zero = np.zeros(6)
                names = [UR5E[i] for i in order]
                bag.write(cfg.joint_state_topic, t, m.joint_state(names, q[order], zero, zero, t))
                target = q + rng.uniform(-0.08, 0.08, 6)
                bag.write(cfg.command_topic, t, m.joint_trajectory(UR5E, target, cfg.control_period, t))
                q, t = target, t + round(cfg.control_period * 1e9)
            t += 2_000_000_000  # a pause: the next segment
    return path


def test_a_ur5e_bag_reads_with_its_names_and_trains(tmp_path):
    pytest.importorskip("torch")
    from ami_ros.data.dataset import read_episodes

    cfg = load_yaml(TRAIN, TrainRunConfig)
    bag = record_ur5e_bag(tmp_path / "ur5e_bag", cfg.data)
    episodes = read_episodes(bag, DataConfig(**{**cfg.data.__dict__, "image_size": cfg.model.image_size}))
    assert len(episodes) == 3
    first = episodes[0].as_dict()
    assert first["joints"].shape[1] == first["actions"].shape[1] == 6
    assert first["frames"].shape[1:] == (cfg.model.image_size, cfg.model.image_size, 3)
    with pytest.raises(Exception, match=r"(?i)topic|no .*message|found"):  # the embedded arm's topics
        read_episodes(bag, DataConfig(image_size=cfg.model.image_size))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "ami_ros.cli", "train", "--config", str(TRAIN), "--data", str(bag),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint.pt").is_file(), out.stdout

    # export, then load it as planner_node would with config/robots/ur5e.yaml: joints, period, limits
    model, checkpoint = tmp_path / "model", tmp_path / "run" / "checkpoint.pt"
    out = subprocess.run(
        [sys.executable, "-m", "ami_ros.cli", "export", "--checkpoint", str(checkpoint), "--out", str(model),
         "--data", str(bag)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    from ami_ros.runtime import load_model

    planner = planner_config()
    runtime = load_model(
        model, UR5E, expected_control_period=planner.control_period,
        expected_limits=(planner.joint_lower, planner.joint_upper),
    )  # fmt: skip
    assert runtime.joint_names == UR5E and runtime.manifest["actions"]["dim"] == 6
    assert runtime.manifest["actions"]["control_period_s"] == cfg.data.control_period
