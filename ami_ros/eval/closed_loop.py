"""Closed-loop evaluation without ROS: the embedded robot driven by planner_node's controller.

The world-model policy is `ami_ros.core.controller.Controller` — the object planner_node wraps —
with the robot config's settings (`EvalConfig.controller`, read from the planner_node section of
config/robots/tabletop_arm.yaml), fed as the node is fed: each tick, render the camera, encode it
with the measured joints (`encode_frame`, encoder_node's step), hand latent and joints to the
controller stamped with sim time, `tick_waiting(now)` (the simulation waits while the approach
subgoals are planned, as it waits for a plan), then command its target or hold where the arm is
(as joint_trajectory_controller does on an empty trajectory), and advance one control period.
`tick_ms` is encode + tick of the ticks that planned (not the render, which a robot's camera does,
nor the subgoals' planning, which the node runs beside its ticks).

Baselines run the same loop through the same safety filter: random actions, and privileged planners
told the true goal (joint integrator for reach; a copy of the simulator for push).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ami_ros.config import ControllerConfig, EvalConfig, SimConfig
from ami_ros.core.controller import Controller, Decision, WorldModel
from ami_ros.core.kinematics import ApproachPath, Chain
from ami_ros.core.planner import Planner
from ami_ros.core.preprocess import encode_frame
from ami_ros.core.safety import SafetyFilter
from ami_ros.core.subgoals import approach_subgoals
from ami_ros.sim import ArmRollouts, ArmSim


@dataclass(frozen=True)
class Step:
    """What a policy does in one tick."""

    target: np.ndarray | None
    """(J,) joint-position target, rad, through the safety filter; None: hold where the arm is."""
    ms: float
    """Decision time: encode + tick for the controller, planning for a baseline (not rendering)."""
    reached: bool | None = None
    """The controller's goal-reached flag; None for baselines, which have none."""


Policy = Callable[[ArmSim], Step]
"""One tick on the sim; per-episode state lives in the object."""
MakePolicy = Callable[[ArmSim, int], Policy]
"""(sim just reset to an episode, episode seed) -> that episode's policy."""


@dataclass(frozen=True)
class Tick:
    """One controller tick in eval: its inputs and its decision (for tests and inspection)."""

    now: float
    latent: np.ndarray  # (L, D)
    joints: np.ndarray  # (J,) rad
    decision: Decision


@dataclass
class EpisodeResult:
    seed: int
    start_distance_m: float
    final_distance_m: float
    min_distance_m: float
    success_final: bool
    success_any: bool
    tick_ms: list[float]
    """Decision time of each tick that commanded (encode + plan for the controller), ms."""
    reached: list[tuple[int, float]] = field(default_factory=list)
    """Each tick at which the controller declared the goal reached (its flag turned on), with the
    true task distance (m) at that tick; empty for baselines."""


def task_distance(sim: ArmSim) -> float:
    """What success is measured on: end effector to goal (reach), block to goal (push), metres."""
    s = sim.state()
    if s.goal.task == "reach":
        return float(np.linalg.norm(s.end_effector[:2] - s.goal.end_effector[:2]))
    return float(np.linalg.norm(s.block_pose[:2] - s.goal.block_pose[:2]))


class ControllerPolicy:
    """The Controller of one episode, fed from the sim as planner_node is fed from its topics.

    Args:
        sim: the robot, reset to the episode (its goal image becomes the goal).
        model: the world model.
        config: the controller's settings (the robot config's).
        seed: seeds the planner's generator.
        record: if given, every tick's inputs and decision are appended to it.
    """

    def __init__(
        self,
        sim: ArmSim,
        model: WorldModel,
        config: ControllerConfig,
        seed: int,
        record: list[Tick] | None = None,
    ) -> None:
        self.model, self.record = model, record
        subgoals = approach_subgoals(config, model.action_limits)
        self.controller = Controller(config, model, np.random.default_rng(seed), subgoals=subgoals)
        self.controller.set_goal(self.controller.goal_from_image(sim.render_goal(), f"seed {seed}"))

    def __call__(self, sim: ArmSim) -> Step:
        frame, s = sim.render(), sim.state()
        t0 = time.perf_counter()
        latent, _ = encode_frame(self.model, frame, s.qpos)
        self.controller.add_latent(s.time, latent)
        self.controller.add_joints(s.time, sim.joint_names, s.qpos)
        decision, waited = self.controller.tick_waiting(s.time)
        ms = 1e3 * (time.perf_counter() - t0 - waited)  # the subgoals are planned off the node's tick
        if self.record is not None:
            self.record.append(Tick(s.time, latent, s.qpos, decision))
        return Step(decision.command, ms, decision.reached)


def controller_policy(model: WorldModel, cfg: EvalConfig, record: list[Tick] | None = None) -> MakePolicy:
    """Episodes of the world-model controller with `cfg.controller`'s settings."""
    return lambda sim, seed: ControllerPolicy(sim, model, cfg.controller, seed, record)


def _filtered(cfg: EvalConfig, act: Callable[[ArmSim], np.ndarray]) -> Policy:
    """A baseline's action (J,) through the robot's safety filter, as the controller's is."""
    c = cfg.controller
    safety = SafetyFilter(
        np.array(c.joint_lower), np.array(c.joint_upper), np.array(c.velocity_limits), c.safety
    )

    def step(sim: ArmSim) -> Step:
        t0 = time.perf_counter()
        action, q = act(sim), sim.state().qpos
        target, _ = safety.filter(q, q + action, cfg.control_period)
        return Step(target, 1e3 * (time.perf_counter() - t0))

    return step


def random_policy(cfg: EvalConfig, limits: np.ndarray, seed: int) -> MakePolicy:
    rng = np.random.default_rng(seed)
    return lambda sim, episode_seed: _filtered(cfg, lambda sim: rng.uniform(-limits, limits))


def privileged_reach_policy(cfg: EvalConfig, limits: np.ndarray, seed: int) -> MakePolicy:
    """CEM on the true joint state towards the true goal configuration (joint integrator model)."""

    def make(sim: ArmSim, episode_seed: int) -> Policy:
        planner = Planner(cfg.controller.planner, limits, np.random.default_rng(seed))

        def act(sim: ArmSim) -> np.ndarray:
            q, goal_q = sim.state().qpos, sim.goal.arm_qpos

            def cost(actions: np.ndarray) -> np.ndarray:  # (N, H, J) -> (N,), a stage cost
                path = np.clip(q + np.cumsum(actions, axis=1), sim.lower, sim.upper)  # (N, H, J)
                return np.abs(path - goal_q).sum(-1).mean(-1)

            return planner.plan(cost)[0]

        return _filtered(cfg, act)

    return make


PRIVILEGED_PUSH_SEARCH = (128, 3)
"""(samples, iterations) of the privileged push planner's CEM."""


def privileged_push_policy(
    cfg: EvalConfig, limits: np.ndarray, seed: int, approach: bool = True
) -> MakePolicy:
    """CEM on the true simulator state (arm and block), with a copy of the simulator as its model.

    The cost, summed over the horizon: block-to-goal distance, plus 0.3 x the pusher's distance
    to the point 5 cm behind the block on the line to the goal (without it, a 5-step horizon that
    does not touch the block sees every plan as equal). The model (`ArmRollouts`) rolls every sample
    out at once in MuJoCo's threads, its physics at 10 ms instead of 2 ms. Its search is larger than
    the controller's (`PRIVILEGED_PUSH_SEARCH`). With `approach` (and the robot config's
    `approach.urdf`), the arm first takes the controller's approach (`ApproachPath`) to the true goal
    pose's set-back poses, each tick a straight step at the action limits towards its target, and
    the CEM takes over past the last one. Its measured success and tick time: docs/results.md.
    """
    samples, iterations = PRIVILEGED_PUSH_SEARCH
    search = dataclasses.replace(
        cfg.controller.planner, samples=samples, iterations=iterations, elites=samples // 4
    )
    c = cfg.controller
    chain = (
        Chain(c.approach.urdf, c.approach.tip_link, c.joint_names) if approach and c.approach.urdf else None
    )
    lower, upper, speed = np.array(c.joint_lower), np.array(c.joint_upper), np.asarray(limits, float)
    model = ArmRollouts(physics_dt=0.01, threads=len(os.sched_getaffinity(0)))

    def make(sim: ArmSim, episode_seed: int) -> Policy:
        planner = Planner(search, limits, np.random.default_rng(seed))
        path: ApproachPath | None = None  # planned on the first tick, from the joints then

        def act(sim: ArmSim) -> np.ndarray:
            nonlocal path
            start, goal = sim.state(), sim.goal.block_pose[:2]
            if chain is not None:
                if path is None:
                    rng = np.random.default_rng(episode_seed)
                    path = ApproachPath.plan(
                        chain, start.qpos, sim.goal.arm_qpos, c.approach, lower, upper, speed, rng
                    )
                target, _ = path.target(start.qpos)
                if target is not None:
                    return np.clip(target - start.qpos, -limits, limits)

            def cost(actions: np.ndarray) -> np.ndarray:
                blocks, tips = model.run(start.qpos, start.block_pose, actions, cfg.control_period)
                to_goal = goal - blocks[..., :2]  # (N, H, 2)
                distance = np.linalg.norm(to_goal, axis=-1)
                behind = blocks[..., :2] - 0.05 * to_goal / np.maximum(distance, 1e-6)[..., None]
                return (distance + 0.3 * np.linalg.norm(tips[..., :2] - behind, axis=-1)).sum(axis=1)

            return planner.plan(cost)[0]

        return _filtered(cfg, act)

    return make


def run_episode(sim: ArmSim, make_policy: MakePolicy, seed: int, cfg: EvalConfig) -> EpisodeResult:
    sim.reset(seed, cfg.task)
    policy = make_policy(sim, seed)
    start = distance = best = task_distance(sim)
    ever, was_reached, ticks, reached = False, False, [], []
    for i in range(cfg.max_steps):
        step = policy(sim)
        if step.reached and not was_reached:
            reached.append((i, distance))  # the distance the frame it decided on shows
        was_reached = bool(step.reached)
        if step.target is None:
            sim.hold()
        else:
            ticks.append(step.ms)  # the plan ticks' time: a hold only encodes
            sim.command(step.target)
        sim.advance(cfg.control_period)
        distance = task_distance(sim)
        best = min(best, distance)
        ever |= distance < cfg.success_m
    return EpisodeResult(seed, start, distance, best, distance < cfg.success_m, ever, ticks, reached)


def summarize(results: list[EpisodeResult], cfg: EvalConfig, declares_reached: bool) -> dict:
    """Success rates, distances, tick time; for the controller also its goal-reached declarations."""
    ticks = np.concatenate([r.tick_ms for r in results]) if any(r.tick_ms for r in results) else [np.nan]
    report = {
        "success_rate": float(np.mean([r.success_final for r in results])),
        "success_rate_any_step": float(np.mean([r.success_any for r in results])),
        "episodes": len(results),
        "success_threshold_m": cfg.success_m,
        "mean_start_distance_m": float(np.mean([r.start_distance_m for r in results])),
        "mean_final_distance_m": float(np.mean([r.final_distance_m for r in results])),
        "tick_ms_p50": float(np.percentile(ticks, 50)),
        "tick_ms_p99": float(np.percentile(ticks, 99)),
    }
    if declares_reached:
        report["declared_reached_rate"] = float(np.mean([bool(r.reached) for r in results]))
        report["false_reached_rate"] = float(
            np.mean([any(d > cfg.success_m for _, d in r.reached) for r in results])
        )
        report["per_episode"] = [
            {
                "seed": r.seed,
                "start_distance_m": round(r.start_distance_m, 4),
                "final_distance_m": round(r.final_distance_m, 4),
                "reached_at": [{"tick": t, "distance_m": round(d, 4)} for t, d in r.reached],
            }
            for r in results
        ]
    return report


def evaluate_policy(
    make_policy: MakePolicy, cfg: EvalConfig, declares_reached: bool = False, desc: str = "eval"
) -> dict:
    """Run `cfg.episodes` episodes (seeds cfg.seed, cfg.seed + 1, ...); returns the summary.

    On a terminal, a progress bar (`desc`) shows the episodes done and the running success rate.
    """
    bar = _progress(cfg.episodes, f"{desc} {cfg.task}")
    results: list[EpisodeResult] = []
    with ArmSim(SimConfig(task=cfg.task)) as sim:
        for i in range(cfg.episodes):
            results.append(run_episode(sim, make_policy, cfg.seed + i, cfg))
            if bar is not None:
                bar.set_postfix(success=f"{np.mean([r.success_final for r in results]):.0%}", refresh=False)
                bar.update(1)
    if bar is not None:
        bar.close()
    return summarize(results, cfg, declares_reached)


def _progress(total: int, desc: str) -> Any:
    """A tqdm bar on stderr when it is a terminal (None without tqdm or a terminal)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="ep", desc=desc, disable=None, leave=False)
