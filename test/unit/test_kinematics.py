"""Kinematics from the robot's URDF (core.kinematics) and the controller's approach subgoals."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ami_ros.config import (
    ApproachConfig,
    ConfigError,
    ControllerConfig,
    SimConfig,
    from_params,
    load_ros_params,
)
from ami_ros.core.controller import PLANNING, Controller
from ami_ros.core.goal_memory import Goal
from ami_ros.core.kinematics import Chain, approach_waypoints
from ami_ros.core.preprocess import encode_frame
from ami_ros.runtime import default_model_dir, load_model
from ami_ros.sim import URDF_PATH, ArmSim

ROBOT = Path(__file__).resolve().parents[2] / "config" / "robots" / "tabletop_arm.yaml"
JOINTS = ["joint1", "joint2", "joint3", "joint4"]
X = np.array([1.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def sim():
    with ArmSim(SimConfig(task="push")) as s:
        yield s


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain(URDF_PATH, "end_effector", JOINTS)


def test_the_urdf_chain_puts_the_end_effector_where_mujoco_does(sim, chain):
    for q in np.random.default_rng(0).uniform(sim.lower, sim.upper, (200, 4)):
        np.testing.assert_allclose(chain.forward(q)[:3, 3], sim.forward_kinematics(q), atol=1e-9)
    relative = Chain("sim/assets/tabletop_arm.urdf", "end_effector", JOINTS)  # the robot config's form
    np.testing.assert_allclose(relative.forward(np.ones(4)), chain.forward(np.ones(4)))


def test_approach_waypoints_lie_on_the_tool_axis_behind_the_goal_farthest_first(sim, chain):
    cfg = ApproachConfig(distance=0.2, waypoints=4)
    counts = []
    for seed in range(300_000, 300_010):
        sim.reset(seed, "push")
        goal = chain.forward(sim.goal.arm_qpos)
        tip, axis = goal[:3, 3], goal[:3, :3] @ X
        ways = approach_waypoints(chain, sim.goal.arm_qpos, cfg, sim.lower, sim.upper)
        counts.append(len(ways))
        for k, q in enumerate(reversed(ways), start=1):  # nearest first here: 0.05, 0.10, ...
            t = chain.forward(q)
            np.testing.assert_allclose(t[:3, 3], tip - 0.05 * k * axis, atol=cfg.max_ik_error)
            assert np.dot(t[:3, :3] @ X, axis) > 0.999  # the tool points along the approach
            assert np.all(q >= sim.lower) and np.all(q <= sim.upper)
    # set-back poses out of reach are left out, nearest kept: some goals keep all four, some fewer
    assert max(counts) == 4 and min(counts) < 4, counts


def test_a_position_only_approach_reaches_further_along_the_axis(sim, chain):
    aligned, free = ApproachConfig(), ApproachConfig(axis_weight=0.0)
    counts = {0.1: 0, 0.0: 0}
    for seed in range(300_000, 300_010):
        sim.reset(seed, "push")
        goal = chain.forward(sim.goal.arm_qpos)
        tip, axis = goal[:3, 3], goal[:3, :3] @ X
        counts[0.1] += len(approach_waypoints(chain, sim.goal.arm_qpos, aligned, sim.lower, sim.upper))
        ways = approach_waypoints(chain, sim.goal.arm_qpos, free, sim.lower, sim.upper)
        counts[0.0] += len(ways)
        for k, q in enumerate(reversed(ways), start=1):  # the tip still on the axis, any orientation
            np.testing.assert_allclose(chain.forward(q)[:3, 3], tip - 0.05 * k * axis, atol=free.max_ik_error)
    assert counts[0.0] > counts[0.1] + 5, counts


def test_a_urdf_that_does_not_match_the_joints_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'gripper' is not a link"):
        Chain(URDF_PATH, "gripper", JOINTS)
    with pytest.raises(ConfigError, match="'joint4' moves the tip but is not in joint_names"):
        Chain(URDF_PATH, "end_effector", JOINTS[:3])
    with pytest.raises(ConfigError, match=r"joints \['wrist'\] are not between the root"):
        Chain(URDF_PATH, "end_effector", [*JOINTS, "wrist"])
    with pytest.raises(ConfigError, match=r"approach\.urdf"):
        Chain(tmp_path / "missing.urdf", "end_effector", JOINTS)
    with pytest.raises(ConfigError, match="tool_axis"):
        ApproachConfig(tool_axis=(0.0, 0.0, 0.0))


class CostSpy:
    """The shipped model, recording the goal joints each rollout cost is asked for."""

    def __init__(self, model):
        self.model, self.goal_joints = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def rollout_cost(self, history, goal_latent, goal_joints, actions, weights=None):
        self.goal_joints.append(np.array(goal_joints))
        return self.model.rollout_cost(history, goal_latent, goal_joints, actions, weights)


def test_the_controller_plans_through_the_subgoals_then_to_the_goal(sim, chain):
    config = from_params(ControllerConfig, load_ros_params(ROBOT, "planner_node"))
    approach = dataclasses.replace(config.approach, urdf="sim/assets/tabletop_arm.urdf")
    config = dataclasses.replace(config, approach=approach)  # the robot config's, turned on
    spy = CostSpy(load_model(default_model_dir(), config.joint_names, providers=("CPUExecutionProvider",)))
    sim.reset(300_001, "push")
    ctl = Controller(config, spy)
    ctl.set_goal(ctl.goal_from_image(sim.render_goal(), "push"))
    goal = ctl.goal
    expected = approach_waypoints(chain, goal.joints, config.approach, sim.lower, sim.upper)
    assert len(expected) >= 2
    latent, _ = encode_frame(spy, sim.render(), sim.state().qpos)
    targets, now = [], 0.0
    # the measured joints: the start, then each subgoal in turn, then the goal pose
    for q in [sim.state().qpos, *expected, goal.joints]:
        ctl.add_latent(now, latent)
        ctl.add_joints(now, sim.joint_names, q)
        spy.goal_joints.clear()
        d = ctl.tick(now)
        assert d.state == PLANNING and d.goal is goal  # decisions are about the goal itself
        targets.append(spy.goal_joints[-1])
        now += 0.1
    for got, want in zip(targets, [*expected, goal.joints, goal.joints], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert ctl.status()["subgoals_left"] == "0"
    ctl.set_goal(Goal("again", goal.latent, goal.joints))  # a new goal restarts the approach
    ctl.tick(now)
    assert len(ctl.subgoals) == len(expected)
