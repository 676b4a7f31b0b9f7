"""The embedded robot: determinism, limits, contact physics, goals and rendering."""

import numpy as np
import pytest

from ami_ros.config import SimConfig
from ami_ros.sim import ArmRollouts, ArmSim


@pytest.fixture(scope="module")
def sim():
    with ArmSim(SimConfig(image_width=64, image_height=48)) as s:
        yield s


def rollout(sim: ArmSim, seed: int, task: str = "push") -> np.ndarray:
    sim.reset(seed, task)
    rng = np.random.default_rng(seed)
    trace = []
    for _ in range(20):
        sim.command(rng.uniform(sim.lower, sim.upper))
        sim.advance(0.1)
        s = sim.state()
        trace.append(np.r_[s.qpos, s.qvel, s.block_pose])
    return np.array(trace)


def test_same_seed_same_episode(sim):
    a, b = rollout(sim, 7), rollout(sim, 7)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(rollout(sim, 8)[0], a[0])


def test_reset_draws_start_and_goal_from_seed(sim):
    s1, g1 = sim.reset(3, "reach"), sim.goal
    s2, g2 = sim.reset(3, "reach"), sim.goal
    np.testing.assert_array_equal(s1.qpos, s2.qpos)
    np.testing.assert_array_equal(g1.arm_qpos, g2.arm_qpos)
    assert np.all(g1.arm_qpos >= sim.lower) and np.all(g1.arm_qpos <= sim.upper)


@pytest.mark.parametrize("seed", range(10))
def test_push_goal_moves_block_within_configured_distance(sim, seed):
    start = sim.reset(seed, "push")
    moved = np.linalg.norm(sim.goal.block_pose[:2] - start.block_pose[:2])
    lo, hi = sim.config.push_distance
    assert lo - 1e-9 <= moved <= hi + 1e-9
    # The goal arm pose puts the pusher behind the block's goal, 5 cm from its centre.
    assert np.linalg.norm(sim.goal.end_effector[:2] - sim.goal.block_pose[:2]) == pytest.approx(
        0.05, abs=0.005
    )


def test_commands_are_clamped_to_joint_limits_and_velocity_limits(sim):
    sim.reset(1, "reach")
    sim.set_state(block_pose=np.array([0.6, 0.6, 0.025, 1, 0, 0, 0]))  # out of the arm's way
    target = sim.command(sim.upper + 1.0)
    np.testing.assert_array_equal(target, sim.upper)
    peak = np.zeros(4)
    for _ in range(150):
        sim.step(10)
        s = sim.state()
        peak = np.maximum(peak, np.abs(s.qvel))
        assert np.all(s.qpos <= sim.upper + 0.02) and np.all(s.qpos >= sim.lower - 0.02)
    assert np.all(peak <= sim.velocity_limits * 1.1), (peak, sim.velocity_limits)
    np.testing.assert_allclose(sim.state().qpos, sim.upper, atol=0.03)


@pytest.mark.parametrize("bad", [[0.0, 0.0, 0.0], [0.0, np.nan, 0.0, 0.0], [0.0, 0.0, np.inf, 0.0]])
def test_bad_commands_raise_and_keep_previous_target(sim, bad):
    sim.reset(2)
    before = sim.target
    with pytest.raises(ValueError):
        sim.command(bad)
    np.testing.assert_array_equal(sim.target, before)


def test_block_moves_when_pushed(sim):
    sim.reset(4, "push")
    block = sim.state().block_pose[:2].copy()
    direction = block / np.linalg.norm(block)  # push radially outwards
    heading = float(np.arctan2(direction[1], direction[0]))
    rng = np.random.default_rng(0)
    behind = sim.inverse_kinematics(block - 0.12 * direction, yaw=heading, rng=rng)
    through = sim.inverse_kinematics(block + 0.05 * direction, yaw=heading, rng=rng)
    assert behind is not None and through is not None
    sim.set_state(qpos=behind)  # behind the block, without sweeping through it on the way
    sim.advance(0.5)
    assert np.linalg.norm(sim.state().block_pose[:2] - block) < 0.01
    sim.command(through)
    sim.advance(2.0)
    moved = sim.state().block_pose[:2] - block
    assert np.linalg.norm(moved) > 0.03
    assert moved @ direction > 0.03  # it moved the way it was pushed


def test_batched_rollouts_match_the_sim_stepped_one_sequence_at_a_time():
    """ArmRollouts (the privileged planner's model) is ArmSim's physics and controller, batched: the
    same block and end effector after every period, a push that moves the block included."""
    with ArmSim(SimConfig(task="push")) as sim:
        sim.reset(100_003, "push")  # a start whose random commands sweep the block now and then
        start = sim.state()
        actions = np.random.default_rng(0).uniform(-0.15, 0.15, (32, 5, 4))
        model = ArmSim(SimConfig(task="push"))
        model.model.opt.timestep = model.physics_dt = 0.01
        blocks, tips = [], []
        for sequence in actions:
            model.set_state(start.qpos, start.block_pose)
            for a in sequence:
                model.command(model.state().qpos + a)
                model.advance(0.1)
                blocks.append(model.state().block_pose)
                tips.append(model.state().end_effector)
        rollouts = ArmRollouts(physics_dt=0.01, threads=2)
        batched_blocks, batched_tips = rollouts.run(start.qpos, start.block_pose, actions, 0.1)
        rollouts.close()
        model.close()
    np.testing.assert_allclose(batched_blocks.reshape(-1, 7), blocks, atol=1e-5)
    np.testing.assert_allclose(batched_tips.reshape(-1, 3), tips, atol=1e-5)
    moved = np.linalg.norm(batched_blocks[:, -1, :2] - start.block_pose[:2], axis=1)
    assert moved.max() > 0.01  # some sequences pushed the block: contact is part of what matched


def test_render_shapes_and_goal_markers(sim):
    sim.reset(5, "push")
    obs = sim.render()
    assert obs.shape == (48, 64, 3) and obs.dtype == np.uint8
    assert obs.std() > 5  # not a blank frame
    assert np.any(sim.render(show_goal=True) != obs)  # markers only when asked for
    goal = sim.render_goal()
    assert goal.shape == obs.shape and np.any(goal != obs)
    np.testing.assert_array_equal(sim.render(), obs)  # rendering the goal left the state alone


def test_inverse_kinematics_reaches_reachable_points(sim):
    rng = np.random.default_rng(1)
    for _ in range(5):
        q_true = rng.uniform(0.7 * sim.lower, 0.7 * sim.upper)
        xy = sim.forward_kinematics(q_true)[:2]
        q = sim.inverse_kinematics(xy, rng=rng)
        assert q is not None
        assert np.linalg.norm(sim.forward_kinematics(q)[:2] - xy) < 3e-3
    assert sim.inverse_kinematics(np.array([2.0, 0.0]), rng=rng, attempts=2) is None


def test_camera_intrinsics_match_image_size():
    with ArmSim(SimConfig(image_width=96, image_height=80)) as s:
        fx, fy, cx, cy = s.camera_intrinsics()
        assert (cx, cy) == (47.5, 39.5) and fx == fy > 0
