"""THE control tick (core.controller) with the shipped model: hold reasons, goal-reached hysteresis,
resets, and eval running the very controller planner_node runs, with the robot config's settings."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ami_ros.config import ConfigError, ControllerConfig, EvalConfig, SimConfig, from_params, load_ros_params
from ami_ros.core.controller import PLANNING, Controller
from ami_ros.core.goal_memory import Goal
from ami_ros.core.preprocess import encode_frame, resize_frame
from ami_ros.core.subgoals import approach_subgoals
from ami_ros.eval.closed_loop import EpisodeResult, Step, controller_policy, run_episode, summarize
from ami_ros.robot import load_robot, robot_file
from ami_ros.sim import ArmSim

ROBOT = Path(__file__).resolve().parents[2] / "config" / "robots" / "tabletop_arm.yaml"
SEED = 100_001


@pytest.fixture(scope="module")
def scene() -> dict:
    """A camera frame, its joints and the goal image of one held-out push episode."""
    with ArmSim(SimConfig(task="push")) as sim:
        sim.reset(SEED, "push")
        return {
            "frame": sim.render(),
            "q": sim.state().qpos,
            "goal_image": sim.render_goal(),
            "names": list(sim.joint_names),
        }


def test_the_robot_config_sets_the_controller(config):
    params = load_ros_params(ROBOT, "planner_node")
    assert config.planner.samples == params["planner"]["samples"]
    assert config.planner.iterations == params["planner"]["iterations"]
    assert config.safety.max_step == params["safety"]["max_step"]
    assert (config.max_age, config.success_energy) == (params["max_age"], params["success_energy"])
    robot = load_robot(robot_file(params["robot"]))  # the arm itself: its robot file
    assert config.joint_lower == robot.joint_lower and config.joint_names == robot.joint_names
    with pytest.raises(ConfigError, match="no parameters for node 'nowhere_node'"):
        load_ros_params(ROBOT, "nowhere_node")
    with pytest.raises(ConfigError, match=r"planner\.samples"):
        from_params(ControllerConfig, {**params, "planner": {"samples": "many"}})


def test_encode_frame_is_the_resize_and_encode_of_the_encoder(runtime, scene):
    latent, joints = encode_frame(runtime, scene["frame"], scene["q"])
    expected, _ = runtime.encode(
        resize_frame(scene["frame"], runtime.image_size), scene["q"].astype(np.float32)
    )
    assert latent.shape == runtime.latent_shape and joints.shape == (4,)
    np.testing.assert_array_equal(latent, expected)


def test_every_hold_reason_and_then_a_safe_command(config, runtime, scene):
    ctl = Controller(config, runtime, enabled=False)
    d = ctl.tick(1.0)
    assert (d.state, d.holding, d.started_holding) == ("disabled", True, True)
    assert ctl.set_enabled(True) is False and ctl.set_enabled(True) is False  # enabling stops nothing
    d = ctl.tick(1.0)
    assert (d.state, d.started_holding, d.changed) == ("no goal", False, True)
    ctl.set_goal(ctl.goal_from_image(scene["goal_image"], "push"))
    assert ctl.tick(1.0).state == "latent stale (none received, max_age 0.3 s)"
    latent, _ = encode_frame(runtime, scene["frame"], scene["q"])
    ctl.add_latent(1.0, latent)
    assert ctl.tick(1.0).state == "joint_states stale (none received, max_age 0.3 s)"
    ctl.add_joints(1.0, scene["names"][::-1], scene["q"][::-1])  # matched by name, any order
    d = ctl.tick(1.05)
    assert d.state == PLANNING and d.started_holding is False and d.steps == 1 and np.isfinite(d.energy)
    assert d.plan.shape == (runtime.horizon, 4) and d.stamp == 1.0
    expected, _ = ctl.safety.filter(scene["q"], scene["q"] + d.plan[0], config.control_period)
    np.testing.assert_array_equal(d.command, expected)
    assert np.all(np.abs(d.command - scene["q"]) <= config.safety.max_step + 1e-12)
    assert ctl.tick(1.31).state == "latent stale (0.31 s old, max_age 0.3 s)"
    assert not ctl.planner._mean.any(), "a hold must drop the warm start"
    ctl.add_latent(1.4, latent)
    assert ctl.tick(1.4).state == "joint_states stale (0.40 s old, max_age 0.3 s)"
    assert ctl.set_enabled(False) is True
    d = ctl.tick(1.4)
    assert d.state == "disabled" and d.holding and not d.started_holding  # already holding


def goal_and_latents(runtime, scene) -> tuple[Goal, dict[float, np.ndarray]]:
    """A goal and latents at fractions a of the way from the goal to the scene's frame; every
    term of the energy is a squared difference, so the energy grows with a."""
    goal_latent, _ = encode_frame(runtime, scene["goal_image"], np.zeros(4))
    here, _ = encode_frame(runtime, scene["frame"], scene["q"])
    goal = Goal("g", goal_latent, goal_latent[-1, :4] * runtime.joint_limits)
    return goal, {a: goal_latent + a * (here - goal_latent) for a in (0.4, 0.6, 0.8, 1.0)}


def test_goal_reached_has_hysteresis_and_a_new_goal_clears_it(config, runtime, scene):
    goal, latents = goal_and_latents(runtime, scene)
    probe = Controller(config, runtime)
    probe.set_goal(goal)
    probe.add_latent(0.0, latents[1.0])
    probe.add_joints(0.0, scene["names"], scene["q"])
    far = probe.tick(0.0).energy
    energy_only = {**config.__dict__, "success_energy": 0.25 * far, "success_scene_mse": 1e9}
    ctl = Controller(ControllerConfig(**energy_only), runtime)
    ctl.set_goal(goal)
    states, energies = [], []
    for i, a in enumerate((1.0, 0.4, 0.6, 0.8, 0.4)):
        ctl.add_latent(0.1 * i, latents[a])
        ctl.add_joints(0.1 * i, scene["names"], scene["q"])
        d = ctl.tick(0.1 * i)
        states.append((d.state, d.reached, d.started_holding))
        energies.append(d.energy)
    s = 0.25 * far
    assert energies[1] < s < energies[2] < 2 * s < energies[3], "the latents must straddle the thresholds"
    assert states == [
        (PLANNING, False, False),
        ("goal reached", True, True),  # below success_energy
        ("goal reached", True, False),  # above it, not above twice it: still reached
        (PLANNING, False, False),  # above twice it: planning again
        ("goal reached", True, True),
    ]
    far_goal = Goal("other", latents[1.0], latents[1.0][-1, :4] * runtime.joint_limits)
    ctl.set_goal(far_goal)  # the newest latent is 0.6 of the way to it: between s and 2 s
    d = ctl.tick(0.4)
    assert (d.state, d.reached, d.steps) == (PLANNING, False, 1)  # not kept "reached" from the old goal


def test_the_arm_at_the_goal_pose_with_the_scene_elsewhere_is_not_the_goal(config, runtime, scene):
    """The joints match the goal's exactly (energy 0 with the joint-only cost), the image tokens
    are those of the episode's start: not reached. The goal's own latent is."""
    goal, latents = goal_and_latents(runtime, scene)
    scene_elsewhere = latents[1.0].copy()
    scene_elsewhere[-1] = goal.latent[-1]  # the proprio token: the arm at the goal pose
    for latent, reached in ((scene_elsewhere, False), (goal.latent, True)):
        ctl = Controller(dataclasses.replace(config, cost_weights=(0.0, 0.0, 1.0)), runtime)
        ctl.set_goal(goal)
        ctl.add_latent(0.0, latent)
        ctl.add_joints(0.0, scene["names"], scene["q"])
        d = ctl.tick(0.0)
        assert d.energy < config.success_energy
        assert (d.reached, d.state == "goal reached") == (reached, reached)
        assert (ctl.scene > config.success_scene_mse) != reached


class DisablesWhilePlanning:
    """The shipped runtime, with an e-stop arriving during the rollout cost."""

    def __init__(self, runtime) -> None:
        self.runtime, self.controller = runtime, None

    def __getattr__(self, name: str):
        return getattr(self.runtime, name)

    def rollout_cost(self, *args, **kwargs):
        self.controller.set_enabled(False)
        return self.runtime.rollout_cost(*args, **kwargs)


def test_a_stop_during_planning_voids_the_plan(config, runtime, scene):
    model = DisablesWhilePlanning(runtime)
    ctl = model.controller = Controller(config, model)
    ctl.set_goal(ctl.goal_from_image(scene["goal_image"], "push"))
    latent, _ = encode_frame(runtime, scene["frame"], scene["q"])
    ctl.add_latent(0.0, latent)
    ctl.add_joints(0.0, scene["names"], scene["q"])
    d = ctl.tick(0.0)
    assert d.command is None and d.state == "plan dropped (disabled while planning)" and d.steps == 0
    d = ctl.tick(0.0)
    assert d.state == "disabled" and d.started_holding


def test_a_plan_older_than_twice_max_age_once_planned_is_void(config, runtime, scene):
    ctl = Controller(config, runtime)
    ctl.set_goal(ctl.goal_from_image(scene["goal_image"], "push"))
    latent, _ = encode_frame(runtime, scene["frame"], scene["q"])
    ctl.add_latent(0.0, latent)
    ctl.add_joints(0.0, scene["names"], scene["q"])
    d = ctl.tick(0.0)
    limit = 2 * config.max_age
    assert d.command is not None and ctl.late(d, limit) == ""
    assert ctl.late(d, limit + 0.01).startswith("plan dropped: its latent was")
    assert ctl.late(dataclasses.replace(d, command=None), 10 * limit) == ""  # a hold is never late


def test_the_controller_rejects_a_model_of_other_joints_or_weights(config, runtime):
    with pytest.raises(ConfigError, match="differ from the model's"):
        Controller(ControllerConfig(**{**config.__dict__, "joint_names": ("a", "b", "c", "d")}), runtime)
    with pytest.raises(ConfigError, match="cost_weights: the model takes"):
        Controller(ControllerConfig(**{**config.__dict__, "cost_weights": (1.0,)}), runtime)


def test_eval_decides_exactly_as_a_controller_fed_the_same_inputs(config, runtime):
    """Eval is the node's controller: replaying eval's inputs (latents, joints, stamps, goal image)
    into a fresh Controller with the robot config gives the same decision and command every tick."""
    cfg = EvalConfig(task="reach", episodes=1, max_steps=8, controller=config)
    ticks = []
    with ArmSim(SimConfig(task="reach")) as sim:
        run_episode(sim, controller_policy(runtime, cfg, ticks), SEED, cfg)
        sim.reset(SEED, "reach")
        goal_image = sim.render_goal()
    subgoals = approach_subgoals(config, runtime.action_limits)
    reference = Controller(config, runtime, np.random.default_rng(SEED), subgoals=subgoals)
    reference.set_goal(reference.goal_from_image(goal_image, "replay"))
    assert len(ticks) == 8 and sum(t.decision.command is not None for t in ticks) >= 4
    for t in ticks:
        reference.add_latent(t.now, t.latent)
        reference.add_joints(t.now, ["joint1", "joint2", "joint3", "joint4"], t.joints)
        d, _ = reference.tick_waiting(t.now)  # as eval's simulation runs it
        assert (d.state, d.reached, d.steps) == (t.decision.state, t.decision.reached, t.decision.steps)
        assert d.energy == t.decision.energy
        if d.command is None:
            assert t.decision.command is None
        else:
            np.testing.assert_array_equal(d.command, t.decision.command)


def test_eval_records_when_the_controller_declares_the_goal_reached():
    cfg = EvalConfig(task="reach", episodes=1, max_steps=6)
    calls = []

    def policy(sim):
        calls.append(len(calls))
        return Step(None, 1.0, reached=calls[-1] in (2, 3, 5))  # on at 2, off at 4, on again at 5

    with ArmSim(SimConfig(task="reach")) as sim:
        result = run_episode(sim, lambda sim, seed: policy, SEED, cfg)
    assert [tick for tick, _ in result.reached] == [2, 5]
    assert all(d == pytest.approx(result.start_distance_m, abs=0.01) for _, d in result.reached)  # held

    def episode(seed, final, reached):
        return EpisodeResult(seed, 0.3, final, final, final < 0.03, final < 0.03, [1.0, 3.0], reached)

    results = [episode(1, 0.01, [(5, 0.02)]), episode(2, 0.2, [(3, 0.15)]), episode(3, 0.2, [])]
    report = summarize(results, cfg, declares_reached=True)
    assert report["false_reached_rate"] == pytest.approx(1 / 3)
    assert report["declared_reached_rate"] == pytest.approx(2 / 3)
    assert report["mean_start_distance_m"] == pytest.approx(0.3)
    assert report["mean_final_distance_m"] == pytest.approx(0.41 / 3)
    assert report["per_episode"][1]["reached_at"] == [{"tick": 3, "distance_m": 0.15}]
    assert "false_reached_rate" not in summarize(results, cfg, declares_reached=False)


def test_the_status_counts_the_ticks_the_safety_filter_changed(config, runtime, scene):
    tight = dataclasses.replace(config, safety=dataclasses.replace(config.safety, max_step=1e-3))
    for cfg, changed in ((tight, True), (config, None)):
        ctl = Controller(cfg, runtime)
        ctl.set_goal(ctl.goal_from_image(scene["goal_image"], "push"))
        latent, _ = encode_frame(runtime, scene["frame"], scene["q"])
        counts = []
        for now in (1.0, 1.1):
            ctl.add_latent(now, latent)
            ctl.add_joints(now, scene["names"], scene["q"])
            d = ctl.tick(now)
            counts.append((bool(d.interventions), ctl.status()["safety_interventions"]))
        if changed:  # every step the plan asks for is more than 1 mrad
            assert counts == [(True, "1"), (True, "2")]
        else:
            assert ctl.status()["safety_interventions"] == str(sum(c for c, _ in counts))
