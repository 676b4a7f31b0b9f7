"""The controller after its clock jumps back (a simulator reset or restart, a bag replayed again):
inputs stamped after `now` are not current, so it holds until inputs of the new time arrive,
and never plans from the old ones."""

from pathlib import Path

import numpy as np
import pytest

from ami_ros.config import ControllerConfig, from_params, load_ros_params
from ami_ros.core.controller import PLANNING, Controller
from ami_ros.core.goal_memory import Goal
from ami_ros.runtime import default_model_dir, load_model

ROBOT = Path(__file__).resolve().parents[2] / "config" / "robots" / "tabletop_arm.yaml"
JOINTS = ["joint1", "joint2", "joint3", "joint4"]


@pytest.fixture(scope="module")
def controller() -> Controller:
    config = from_params(ControllerConfig, load_ros_params(ROBOT, "planner_node"))
    runtime = load_model(
        default_model_dir(), config.joint_names, graphs=("encoder.onnx", "rollout_cost.onnx")
    )
    return Controller(config, runtime)


def _feed(controller: Controller, t: float, q: np.ndarray) -> None:
    latent = np.zeros(controller.model.latent_shape, np.float32)
    latent[-1, :4] = q / controller.model.joint_limits
    controller.add_latent(t, latent)
    controller.add_joints(t, JOINTS, q.tolist())


def test_after_the_clock_jumps_back_the_old_inputs_are_not_planned_from(controller: Controller) -> None:
    shape = controller.model.latent_shape
    controller.set_goal(Goal("g", np.ones(shape, np.float32), np.full(4, 0.5, np.float32)))
    old = np.array([1.0, -1.0, 1.0, -1.0])
    for t in (20.0, 20.1):
        _feed(controller, t, old)
    assert controller.tick(20.15).state == PLANNING
    jumped = controller.tick(0.5)  # the clock restarted; the newest inputs are from 20 s
    assert jumped.command is None and jumped.state.startswith("latent from the future"), jumped.state
    new = np.zeros(4)
    for t in (0.5, 0.6):
        _feed(controller, t, new)  # older stamps than the stored ones: the buffers start again
    d = controller.tick(0.65)
    assert d.state == PLANNING and d.command is not None
    assert np.abs(d.command - new).max() <= controller.config.safety.max_step + 1e-9  # from the new arm
