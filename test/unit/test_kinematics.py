"""Kinematics from the robot's URDF (core.kinematics) and the controller's approach subgoals."""

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from ami_ros.config import (
    ApproachConfig,
    ConfigError,
    ControllerConfig,
    EvalConfig,
    SimConfig,
    from_params,
    load_ros_params,
)
from ami_ros.core.controller import PLANNING, Controller
from ami_ros.core.goal_memory import Goal
from ami_ros.core.kinematics import (
    ApproachPath,
    Chain,
    _segment_distance,
    approach_route,
    approach_waypoints,
    clearance,
    route,
)
from ami_ros.core.preprocess import encode_frame
from ami_ros.core.subgoals import approach_subgoals
from ami_ros.eval.closed_loop import privileged_push_policy
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


def dense(path, n):
    """`n` points on each segment of `path`."""
    return np.concatenate([a + np.linspace(0, 1, n)[:, None] * (b - a) for a, b in itertools.pairwise(path)])


def test_the_skeleton_joins_the_joint_origins_and_the_tip(sim, chain):
    qs = np.random.default_rng(1).uniform(sim.lower, sim.upper, (50, 4))
    points = chain.skeleton(qs)  # world, base_link, link1 ... link4, end_effector
    assert points.shape == (50, 7, 3)
    for k in range(1, 5):  # link k's origin is joint k's, at the end of link k - 1
        upto = Chain(URDF_PATH, f"link{k}", JOINTS[:k])
        np.testing.assert_allclose(points[:, k + 1], [upto.forward(q[:k])[:3, 3] for q in qs], atol=1e-12)
    np.testing.assert_allclose(points[:, -1], [sim.forward_kinematics(q) for q in qs], atol=1e-9)


def test_segment_distance_is_the_closest_approach_of_two_segments():
    rng = np.random.default_rng(2)
    p0, p1, q0, q1 = rng.uniform(-1, 1, (4, 200, 3))
    p1[:20] = p0[:20]  # some segments are points
    got = _segment_distance(p0, p1, q0, q1)
    s = np.linspace(0, 1, 401)
    a = p0[:, None, :] + s[None, :, None] * (p1 - p0)[:, None, :]  # (200, 401, 3)
    b = q0[:, None, :] + s[None, :, None] * (q1 - q0)[:, None, :]
    brute = np.linalg.norm(a[:, :, None] - b[:, None, :], axis=-1).min(axis=(1, 2))
    assert np.all(got <= brute + 1e-12) and np.all(brute - got < 5e-3)


def test_route_goes_round_an_obstacle_and_keeps_clear_all_the_way():
    def free(q):  # a wall at x = 0 with a gap above y = 0.6
        return (np.abs(q[:, 0]) > 0.1) | (q[:, 1] > 0.6)

    start, end = np.array([-0.8, -0.8]), np.array([0.8, -0.8])
    box = -np.ones(2), np.ones(2)
    path = route(free, start, end, *box, np.random.default_rng(0), step=0.3, resolution=0.02)
    assert path is not None
    np.testing.assert_array_equal(path[0], start)
    np.testing.assert_array_equal(path[-1], end)
    points = dense(path, 200)
    assert free(points).all() and points[:, 1].max() > 0.6
    wall = route(lambda q: np.abs(q[:, 0]) > 0.1, start, end, *box, np.random.default_rng(0), resolution=0.02)
    assert wall is None  # no gap: no route


def test_the_approach_route_keeps_the_arm_off_the_line_where_the_block_started(sim, chain):
    """On push seeds whose straight way to the first approach pose sweeps through the block (sim
    ground truth, to judge the route only), the route keeps every link as clear of the approach
    line as its two ends allow, and where those allow the full clearance it does not touch the
    block."""
    cfg = ApproachConfig(axis_weight=0.0, clearance=0.06)
    speed = np.array([0.15, 0.2, 0.25, 0.3])
    routed, clear_of_block = 0, 0
    for seed in range(300_000, 300_012):
        sim.reset(seed, "push")
        start, block, goal = sim.state().qpos, sim.state().block_pose, sim.goal.arm_qpos
        poses = approach_waypoints(chain, goal, cfg, sim.lower, sim.upper)
        straight = start + np.linspace(0, 1, 50)[:, None] * (poses[0] - start)
        if len(poses) < 4 or not any(sim.touches_block(q, block, margin=0.0) for q in straight):
            continue
        rng = np.random.default_rng(0)
        way = approach_route(chain, start, poses, goal, cfg, sim.lower, sim.upper, speed, rng)
        assert way, seed
        path = np.array([start, *way, poses[0]])
        assert np.all(np.abs(np.diff(path, axis=0)) <= speed * cfg.route_spacing + 1e-6)
        points = dense(path, 10)
        tip, first = chain.forward(goal)[:3, 3], chain.forward(poses[0])[:3, 3]
        line = (tip, tip + (first - tip) * (1 - 1.25 * cfg.clearance / np.linalg.norm(first - tip)))
        ends = clearance(chain, path[[0, -1]], line).min()
        assert clearance(chain, points, line).min() >= min(cfg.clearance, 0.9 * ends) - 0.01, seed
        routed += 1
        if ends >= cfg.clearance:
            assert not any(sim.touches_block(q, block, margin=0.0) for q in points), seed
            clear_of_block += 1
    assert routed >= 3 and clear_of_block >= 2, (routed, clear_of_block)


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
    with pytest.raises(ConfigError, match="clearance must be >= 0"):
        ApproachConfig(clearance=-0.01)
    with pytest.raises(ConfigError, match="lookahead >= 0"):
        ApproachConfig(lookahead=-1)


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
    approach = dataclasses.replace(config.approach, clearance=0.0)  # the robot config's, no route
    config = dataclasses.replace(config, approach=approach)
    spy = CostSpy(load_model(default_model_dir(), config.joint_names, providers=("CPUExecutionProvider",)))
    sim.reset(300_001, "push")
    ctl = Controller(config, spy, subgoals=approach_subgoals(config, spy.action_limits))
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
        d, _ = ctl.tick_waiting(now)
        assert d.state == PLANNING and d.goal is goal  # decisions are about the goal itself
        targets.append(spy.goal_joints[-1])
        now += 0.1
    for got, want in zip(targets, [*expected, goal.joints, goal.joints], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert ctl.status()["subgoals_left"] == "0"
    ctl.set_goal(Goal("again", goal.latent, goal.joints))  # a new goal restarts the approach
    assert ctl.tick_waiting(now)[0].state == PLANNING
    assert ctl.subgoals.left() == len(expected)


def test_the_controller_steers_ahead_along_the_route_then_takes_each_approach_pose_in_turn(sim):
    config = from_params(ControllerConfig, load_ros_params(ROBOT, "planner_node"))
    approach = dataclasses.replace(
        config.approach, urdf="sim/assets/tabletop_arm.urdf", axis_weight=0.0, clearance=0.06, lookahead=2
    )
    config = dataclasses.replace(config, approach=approach)
    spy = CostSpy(load_model(default_model_dir(), config.joint_names, providers=("CPUExecutionProvider",)))
    sim.reset(300_000, "push")
    ctl = Controller(config, spy, subgoals=approach_subgoals(config, spy.action_limits))
    ctl.set_goal(ctl.goal_from_image(sim.render_goal(), "push"))
    latent, _ = encode_frame(spy, sim.render(), sim.state().qpos)
    now = 0.0

    def tick(q):
        nonlocal now
        ctl.add_latent(now, latent)
        ctl.add_joints(now, sim.joint_names, q)
        spy.goal_joints.clear()
        assert ctl.tick_waiting(now)[0].state == PLANNING
        now += 0.1
        return spy.goal_joints[-1]

    target = tick(sim.state().qpos)
    path = ctl.subgoals.path
    route, poses = path.subgoals[: path.route_left], path.subgoals[path.route_left :]
    assert len(route) > 3 and len(poses) == 4
    np.testing.assert_allclose(target, route[2])  # two ahead of the next
    for i in range(len(route)):  # the joints on each route point in turn
        want = route[i + 3] if i + 3 < len(route) else poses[0]  # never past the first approach pose
        np.testing.assert_allclose(tick(route[i]), want)
    for i in range(4):  # then each approach pose in turn, the goal last
        np.testing.assert_allclose(tick(poses[i]), poses[i + 1] if i < 3 else ctl.goal.joints)
    assert ctl.status()["subgoals_left"] == "0"


def test_a_route_longer_than_max_route_is_no_approach_at_all(sim, chain):
    """Past `max_route` control periods the detour is not taken: no route and no approach poses,
    the controller steers straight for the goal."""
    cfg = ApproachConfig(axis_weight=0.0, clearance=0.06)
    speed = np.array([0.15, 0.2, 0.25, 0.3])
    sim.reset(300_000, "push")
    start, goal = sim.state().qpos, sim.goal.arm_qpos
    poses = approach_waypoints(chain, goal, cfg, sim.lower, sim.upper)

    def way(max_route: float) -> list[np.ndarray] | None:
        config, rng = dataclasses.replace(cfg, max_route=max_route), np.random.default_rng(0)
        return approach_route(chain, start, poses, goal, config, sim.lower, sim.upper, speed, rng)

    unlimited = way(0.0)
    assert unlimited is not None and len(unlimited) > 3
    # one period apart, so the route is longer than its point count and at most one period more
    kept = way(len(unlimited) + 1.0)
    assert kept is not None and np.array_equal(np.array(kept), np.array(unlimited))
    assert way(float(len(unlimited))) is None

    config = from_params(ControllerConfig, load_ros_params(ROBOT, "planner_node"))
    approach = dataclasses.replace(
        config.approach, urdf="sim/assets/tabletop_arm.urdf", axis_weight=0.0, clearance=0.06, max_route=1.0
    )
    spy = CostSpy(load_model(default_model_dir(), config.joint_names, providers=("CPUExecutionProvider",)))
    config = dataclasses.replace(config, approach=approach)
    ctl = Controller(config, spy, subgoals=approach_subgoals(config, spy.action_limits))
    ctl.set_goal(ctl.goal_from_image(sim.render_goal(), "push"))
    latent, _ = encode_frame(spy, sim.render(), start)
    ctl.add_latent(0.0, latent)
    ctl.add_joints(0.0, sim.joint_names, start)
    assert ctl.tick_waiting(0.0)[0].state == PLANNING
    assert ctl.subgoals.path.subgoals == [] and ctl.status()["subgoals_left"] == "0"
    np.testing.assert_allclose(spy.goal_joints[-1], ctl.goal.joints)


def test_eval_privileged_push_takes_the_controllers_approach_to_the_true_goal_pose_first(sim, chain):
    """The privileged push planner steps straight (at the action limits) along the same
    `ApproachPath` the controller would take to the true goal pose, and searches on its simulator
    copy only past the last set-back pose."""
    config = from_params(ControllerConfig, load_ros_params(ROBOT, "planner_node"))
    cfg = EvalConfig(task="push", episodes=1, seed=300_000, controller=config)
    limits = np.array([0.15, 0.2, 0.25, 0.3])
    sim.reset(300_000, "push")
    q = sim.state().qpos
    lower, upper = np.array(config.joint_lower), np.array(config.joint_upper)
    path = ApproachPath.plan(
        chain, q, sim.goal.arm_qpos, config.approach, lower, upper, limits, np.random.default_rng(300_000)
    )
    target, _ = path.target(q)
    assert target is not None and len(path.subgoals) > config.approach.waypoints  # a route, then the poses
    step = privileged_push_policy(cfg, limits, 0)(sim, 300_000)(sim)
    np.testing.assert_allclose(step.target, q + np.clip(target - q, -limits, limits), atol=1e-6)
    # without the approach: the search on the simulator copy from the first tick, a different first step
    plain = privileged_push_policy(cfg, limits, 0, approach=False)(sim, 300_000)(sim)
    assert not np.allclose(plain.target, step.target, atol=1e-3)
