"""CEM / MPPI on cost functions with known minima, and the safety filter's guarantees."""

import numpy as np
import pytest

from ami_ros.config import PlannerConfig, SafetyConfig
from ami_ros.core.planner import Planner
from ami_ros.core.safety import SafetyFilter

LIMIT = np.array([0.15, 0.2, 0.25, 0.3], np.float32)


def reach_cost(start: np.ndarray, goal: np.ndarray):
    """Integrator dynamics q_{t+1} = q_t + a_t; cost = distance to the goal summed over the path
    (a stage cost, as the shipped model's joint term)."""

    def cost(actions: np.ndarray) -> np.ndarray:
        return np.linalg.norm(start + np.cumsum(actions, axis=1) - goal, axis=-1).sum(-1)

    return cost


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_planner_finds_the_action_sequence_to_a_reachable_goal(method):
    cfg = PlannerConfig(method=method, samples=256, iterations=4)
    planner = Planner(cfg, LIMIT, np.random.default_rng(0))
    goal = np.array([0.4, -0.5, 0.6, 0.2])  # reachable in 5 steps within LIMIT
    plan = planner.plan(reach_cost(np.zeros(4), goal))
    assert plan.shape == (cfg.horizon, 4)
    assert np.all(np.abs(plan) <= LIMIT + 1e-6)
    random_actions = np.random.default_rng(1).uniform(-LIMIT, LIMIT, (256, 5, 4))
    random_error = np.median(np.linalg.norm(random_actions.sum(1) - goal, axis=-1))
    assert np.linalg.norm(plan.sum(0) - goal) < 0.25 * random_error


def test_receding_horizon_converges_and_warm_start_shifts_the_plan():
    planner = Planner(PlannerConfig(), LIMIT, np.random.default_rng(0))
    q, goal = np.zeros(4), np.array([1.0, -1.2, 1.5, -0.8])  # needs more than one horizon
    for _ in range(15):
        plan = planner.plan(reach_cost(q, goal))
        q = q + plan[0]  # execute the first action, replan
    assert np.linalg.norm(q - goal) < 0.1


def test_the_default_search_moves_at_the_action_limit_towards_a_far_goal():
    """The elite mean of a clipped search sits inside the bounds: refitted to half the samples it
    moved the arm at about 0.7 of its limit, so a detour took half as long again."""
    speeds = []
    for seed in range(5):
        planner = Planner(PlannerConfig(), LIMIT, np.random.default_rng(seed))
        q, goal = np.zeros(4), np.array([3.0, -1.0, 1.0, 0.5])  # 20 steps away on the first joint
        for _ in range(10):
            action = planner.plan(reach_cost(q, goal))[0]
            speeds.append(action[0] / LIMIT[0])
            q = q + action
    assert np.mean(speeds) > 0.9, np.mean(speeds)


def test_bad_cost_function_output_raises():
    planner = Planner(PlannerConfig(), LIMIT, np.random.default_rng(0))
    with pytest.raises(ValueError, match="cost function"):
        planner.plan(lambda a: np.full(len(a), np.nan))
    with pytest.raises(ValueError, match="cost function"):
        planner.plan(lambda a: np.zeros(3))


def test_same_seed_same_plan():
    goal = np.array([0.3, 0.3, -0.3, 0.3])
    plans = [
        Planner(PlannerConfig(), LIMIT, np.random.default_rng(5)).plan(reach_cost(np.zeros(4), goal))
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*plans)


@pytest.fixture
def safety():
    lower, upper = np.array([-1.9, -2.4, -2.4, -2.0]), np.array([1.9, 2.4, 2.4, 2.0])
    return SafetyFilter(lower, upper, np.array([1.5, 2.0, 2.5, 3.0]), SafetyConfig(max_step=0.2))


def test_safety_limits_step_velocity_and_position(safety):
    rng = np.random.default_rng(0)
    dt = 0.1
    for _ in range(200):
        current = rng.uniform(safety.lower, safety.upper)
        target = rng.uniform(-5, 5, 4)
        out, _ = safety.filter(current, target, dt)
        step = np.abs(out - current)
        assert np.all(step <= np.minimum(0.2, safety.velocity_limits * dt) + 1e-9)
        assert np.all(out >= safety.lower - 1e-9) and np.all(out <= safety.upper + 1e-9)


def test_safety_holds_on_non_finite_target_and_rejects_bad_state(safety):
    current = np.array([0.1, 0.2, 0.3, 0.4])
    out, reasons = safety.filter(current, np.array([0.0, np.nan, 0.0, 0.0]), 0.1)
    np.testing.assert_array_equal(out, current)
    assert "non-finite" in reasons[0]
    with pytest.raises(ValueError, match="not finite"):
        safety.filter(np.array([np.inf, 0, 0, 0]), current, 0.1)
    with pytest.raises(ValueError, match="expected 4 joints"):
        safety.filter(current[:3], current, 0.1)


def test_safety_never_jumps_a_joint_that_is_beyond_its_limit(safety):
    current = np.array([1.95, 0.0, 0.0, 0.0])  # beyond the margined limit
    out, reasons = safety.filter(current, current, 0.1)
    assert 0.0 < current[0] - out[0] <= 0.15 + 1e-9 and reasons


def test_a_proposal_seeds_the_search_and_the_prior_keeps_a_flat_cost_near_it():
    """With a flat cost the plan is the proposal (the prior decides); with a cost that has a clear
    minimum elsewhere and prior_weight 0 the search still finds it from the proposal's start."""
    proposal = np.tile(np.array([0.1, -0.1, 0.2, -0.2], np.float32), (5, 1))
    planner = Planner(PlannerConfig(samples=128, iterations=3), LIMIT, np.random.default_rng(0))
    plan = planner.plan(lambda a: np.zeros(len(a)), proposal)
    assert np.abs(plan - proposal).max() < 0.35 * LIMIT.max()
    far = np.tile(-proposal[:1], (5, 1))  # the opposite direction
    cfg = PlannerConfig(samples=256, iterations=6, prior_weight=0.0)
    planner = Planner(cfg, LIMIT, np.random.default_rng(0))
    plan = planner.plan(lambda a: np.abs(a - far).sum((1, 2)), proposal)
    assert np.abs(plan - far).mean() < np.abs(proposal - far).mean() / 2
