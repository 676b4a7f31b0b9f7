"""The model shipped in models/tabletop_arm: loads as the robot loads it and does what its manifest says."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from ami_ros.config import SimConfig
from ami_ros.core.preprocess import resize_frame
from ami_ros.runtime import load_model
from ami_ros.sim import ArmSim

MODEL = Path(__file__).resolve().parents[2] / "models" / "tabletop_arm"


@pytest.fixture(scope="module")
def runtime():
    with ArmSim() as sim:
        names = list(sim.joint_names)
    return load_model(MODEL, expected_joint_names=names, providers=("CPUExecutionProvider",))


def test_manifest_reports_training_and_metrics():
    m = yaml.safe_load((MODEL / "manifest.yaml").read_text())
    assert m["training"]["command"].startswith("ami-ros train")
    assert "ami-ros train-pose" in m["training"]["command"]
    assert m["model_config"]["pose_channels"] and m["rollout_cost"]["default_weights"] == [0.0, 0.0, 1.0]
    assert m["training"]["data"]["episodes"] >= 100
    assert len(m["metrics"]["kstep_ratio"]) == m["horizon"]
    assert max(m["parity_max_abs"].values()) <= 1e-4
    assert m["parameters"]["total"] > 0 and m["latency_ms_cpu"]["encoder_ms_per_frame"] > 0


def test_encoder_reads_the_arm_configuration_from_an_image(runtime):
    """The pose network (goal images have no joint state) reads the goal configuration closely
    enough to put the end effector within reach tolerance.

    Measured: 0.033 rad mean joint error (guessing the zero pose: 0.84 rad), end effector of the
    estimated configuration 0.45 cm from the goal's (at most 0.9 cm); the bounds leave room.
    """
    errors, ee_errors = [], []
    with ArmSim(SimConfig(task="reach")) as sim:
        for seed in range(200_000, 200_010):
            sim.reset(seed)
            image = resize_frame(sim.render_goal(), runtime.image_size)
            _, q_est = runtime.encode(image, np.zeros(4, np.float32))
            errors.append(np.abs(q_est - sim.goal.arm_qpos).mean())
            ee = sim.forward_kinematics(q_est.astype(float))[:2]
            ee_errors.append(np.linalg.norm(ee - sim.goal.end_effector[:2]))
    assert np.mean(errors) < 0.1, np.mean(errors)
    assert np.mean(ee_errors) < 0.02, np.mean(ee_errors)


def test_predicted_joints_follow_the_simulated_arm(runtime):
    """Joints predicted 5 ticks ahead match what the simulated arm does with the same actions,
    better than integrating the commands (which ignores how the arm lags its targets)."""
    rng = np.random.default_rng(0)
    model_err, integrator_err = [], []
    with ArmSim() as sim:
        for seed in range(200_100, 200_110):
            sim.reset(seed)
            q = sim.state().qpos.astype(np.float32)
            latent, _ = runtime.encode(resize_frame(sim.render(), runtime.image_size), q)
            actions = rng.uniform(-runtime.action_limits, runtime.action_limits, (runtime.horizon, 4))
            actual = []
            for a in actions:  # as `ami-ros collect` commands: target = measured position + action
                sim.command(sim.state().qpos + a)
                sim.advance(0.1)
                actual.append(sim.state().qpos)
            _, predicted = runtime.predict(np.stack([latent] * runtime.history), actions.astype(np.float32))
            integrated = np.clip(q + np.cumsum(actions, 0), sim.lower, sim.upper)
            model_err.append(np.abs(predicted - actual).mean())
            integrator_err.append(np.abs(integrated - actual).mean())
    assert np.mean(model_err) < 0.05, np.mean(model_err)
    assert np.mean(model_err) < np.mean(integrator_err), (np.mean(model_err), np.mean(integrator_err))


def test_the_cost_graph_is_the_energy_formula_on_predicted_latents(runtime):
    """One cost: rollout_cost.onnx equals `core.energy.goal_energy` applied to the predictor's
    rollout (token terms on the last predicted latent, the joint term averaged over every step)."""
    from ami_ros.core.energy import goal_energy

    with ArmSim(SimConfig(task="push")) as sim:
        sim.reset(7)
        q = sim.state().qpos.astype(np.float32)
        z, _ = runtime.encode(resize_frame(sim.render(), runtime.image_size), q)
        goal, goal_q = runtime.encode(
            resize_frame(sim.render_goal(), runtime.image_size), np.zeros(4, np.float32)
        )
    history = np.stack([z, z])
    rng = np.random.default_rng(0)
    actions = rng.uniform(-runtime.action_limits, runtime.action_limits, (6, runtime.horizon, 4)).astype(
        np.float32
    )
    lim = runtime.joint_limits
    for w in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, 0.2, 1.0)):
        graph = runtime.rollout_cost(history, goal, goal_q, actions, w)
        latents, _ = runtime.predict(history, actions)  # (N, H, L, D)
        numpy = [
            goal_energy(seq[-1], goal, goal_q, lim, (w[0], w[1], 0.0))
            + w[2] * np.mean([goal_energy(step, goal, goal_q, lim, (0.0, 0.0, 1.0)) for step in seq])
            for seq in latents
        ]
        np.testing.assert_allclose(graph, numpy, rtol=2e-4, atol=1e-6)
