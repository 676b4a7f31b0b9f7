"""Closed-loop evaluation without ROS: the embedded robot, a model directory, the planner.

Each control tick: render the camera, resize to the model's input, encode with the measured
joint positions, plan with the fused rollout-cost graph against the goal image's latent and its
joint estimate, pass the first action through the safety filter, command, advance one control
period. The same loop runs two baselines: random actions, and a privileged planner that is told
the goal joint configuration and plans on the true joint state (an upper bound for reaching).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ami_ros.config import EvalConfig, SafetyConfig, SimConfig
from ami_ros.core.planner import Planner
from ami_ros.core.preprocess import resize_frame
from ami_ros.core.safety import SafetyFilter
from ami_ros.runtime import WorldModelRuntime
from ami_ros.sim import ArmSim

Policy = Callable[[ArmSim, np.ndarray], np.ndarray]
"""(sim, goal image) -> first action (J,) of this tick; state kept by the closure."""


@dataclass
class EpisodeResult:
    seed: int
    start_distance_m: float
    final_distance_m: float
    min_distance_m: float
    success_final: bool
    success_any: bool
    tick_ms: list[float]


def task_distance(sim: ArmSim) -> float:
    """What success is measured on: end effector to goal (reach), block to goal (push), metres."""
    s = sim.state()
    if s.goal.task == "reach":
        return float(np.linalg.norm(s.end_effector[:2] - s.goal.end_effector[:2]))
    return float(np.linalg.norm(s.block_pose[:2] - s.goal.block_pose[:2]))


def world_model_policy(runtime: WorldModelRuntime, cfg: EvalConfig, seed: int) -> Callable[[], Policy]:
    """A factory of fresh per-episode planners on `runtime` (warm start and history reset)."""

    def make() -> Policy:
        planner = Planner(cfg.planner, runtime.action_limits, np.random.default_rng(seed))
        history: list[np.ndarray] = []
        goal: dict[str, np.ndarray] = {}
        size = runtime.image_size

        def act(sim: ArmSim, goal_image: np.ndarray) -> np.ndarray:
            q = sim.state().qpos.astype(np.float32)
            if not goal:
                goal["latent"], goal["joints"] = runtime.encode(
                    resize_frame(goal_image, size), np.zeros_like(q)
                )
            latent, _ = runtime.encode(resize_frame(sim.render(), size), q)
            history.append(latent)
            del history[: -runtime.history]
            hist = np.stack([history[0]] * (runtime.history - len(history)) + history)
            plan = planner.plan(
                lambda a: runtime.rollout_cost(hist, goal["latent"], goal["joints"], a, cfg.cost_weights)
            )
            return plan[0]

        return act

    return make


def random_policy(limits: np.ndarray, seed: int) -> Callable[[], Policy]:
    rng = np.random.default_rng(seed)
    return lambda: lambda sim, goal_image: rng.uniform(-limits, limits)


def privileged_reach_policy(cfg: EvalConfig, limits: np.ndarray, seed: int) -> Callable[[], Policy]:
    """CEM on the true joint state towards the true goal configuration (joint integrator model)."""

    def make() -> Policy:
        planner = Planner(cfg.planner, limits, np.random.default_rng(seed))

        def act(sim: ArmSim, goal_image: np.ndarray) -> np.ndarray:
            q, goal_q = sim.state().qpos, sim.goal.arm_qpos

            def cost(actions: np.ndarray) -> np.ndarray:  # (N, H, J) -> (N,), a stage cost
                path = np.clip(q + np.cumsum(actions, axis=1), sim.lower, sim.upper)  # (N, H, J)
                return np.abs(path - goal_q).sum(-1).mean(-1)

            return planner.plan(cost)[0]

        return act

    return make


def privileged_push_policy(cfg: EvalConfig, limits: np.ndarray, seed: int) -> Callable[[], Policy]:
    """CEM on the true simulator state (arm and block), with a copy of the simulator as its model.

    The cost, summed over the horizon: block-to-goal distance, plus 0.3 x the pusher's distance
    to the point 5 cm behind the block on the line to the goal (without it, a 5-step horizon that
    does not touch the block sees every plan as equal). The model copy steps its physics at 10 ms
    instead of 2 ms, so that 64 x 2 x 5 simulated actions fit in a tick.
    """

    def make() -> Policy:
        planner = Planner(cfg.planner, limits, np.random.default_rng(seed))
        model = ArmSim(SimConfig(task="push"))
        model.model.opt.timestep = model.physics_dt = 0.01

        def act(sim: ArmSim, goal_image: np.ndarray) -> np.ndarray:
            start, goal = sim.state(), sim.goal.block_pose[:2]

            def cost(actions: np.ndarray) -> np.ndarray:
                costs = np.zeros(len(actions))
                for i, sequence in enumerate(actions):
                    model.set_state(start.qpos, start.block_pose)
                    for a in sequence:
                        model.command(model.state().qpos + a)
                        model.advance(cfg.control_period)
                        s = model.state()
                        block = s.block_pose[:2]
                        to_goal = goal - block
                        behind = block - 0.05 * to_goal / max(float(np.linalg.norm(to_goal)), 1e-6)
                        costs[i] += np.linalg.norm(to_goal) + 0.3 * np.linalg.norm(
                            s.end_effector[:2] - behind
                        )
                return costs

            return planner.plan(cost)[0]

        return act

    return make


def run_episode(
    sim: ArmSim, policy: Policy, seed: int, cfg: EvalConfig, safety: SafetyFilter
) -> EpisodeResult:
    sim.reset(seed, cfg.task)
    goal_image = sim.render_goal()
    start = distance = best = task_distance(sim)
    reached, ticks = False, []
    for _ in range(cfg.max_steps):
        t0 = time.perf_counter()
        action = policy(sim, goal_image)
        q = sim.state().qpos
        target, _ = safety.filter(q, q + action, cfg.control_period)
        ticks.append(1e3 * (time.perf_counter() - t0))
        sim.command(target)
        sim.advance(cfg.control_period)
        distance = task_distance(sim)
        best = min(best, distance)
        reached |= distance < cfg.success_m
    return EpisodeResult(seed, start, distance, best, distance < cfg.success_m, reached, ticks)


def evaluate_policy(make_policy: Callable[[], Policy], cfg: EvalConfig) -> dict:
    """Run `cfg.episodes` episodes (seeds cfg.seed, cfg.seed + 1, ...); returns the summary."""
    results = []
    with ArmSim(SimConfig(task=cfg.task)) as sim:
        safety = SafetyFilter(sim.lower, sim.upper, sim.velocity_limits, SafetyConfig())
        for i in range(cfg.episodes):
            results.append(run_episode(sim, make_policy(), cfg.seed + i, cfg, safety))
    ticks = np.concatenate([r.tick_ms for r in results])
    return {
        "success_rate": float(np.mean([r.success_final for r in results])),
        "success_rate_any_step": float(np.mean([r.success_any for r in results])),
        "episodes": len(results),
        "success_threshold_m": cfg.success_m,
        "mean_start_distance_m": float(np.mean([r.start_distance_m for r in results])),
        "mean_final_distance_m": float(np.mean([r.final_distance_m for r in results])),
        "tick_ms_p50": float(np.percentile(ticks, 50)),
        "tick_ms_p99": float(np.percentile(ticks, 99)),
    }
