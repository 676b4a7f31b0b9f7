"""Fixtures shared by the controller's tests: the robot config's planner_node settings and the
shipped model (a module may define its own of either name instead)."""

from pathlib import Path

import pytest

from ami_ros.config import ControllerConfig, from_params, load_ros_params
from ami_ros.runtime import default_model_dir, load_model

ROBOT = Path(__file__).resolve().parents[2] / "config" / "robots" / "tabletop_arm.yaml"


@pytest.fixture(scope="module")
def config() -> ControllerConfig:
    return from_params(ControllerConfig, load_ros_params(ROBOT, "planner_node"))


@pytest.fixture(scope="module")
def runtime(config):
    return load_model(default_model_dir(), config.joint_names, providers=("CPUExecutionProvider",))
