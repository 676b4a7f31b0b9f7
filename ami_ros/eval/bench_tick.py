"""The plan tick's cost (encode + `Controller.tick`, no render): as configured, without the model's
proposal and without the approach subgoals, interleaved on the same frames in one run so that the
ratios hold on a loaded machine."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ami_ros.config import ControllerConfig, SimConfig
from ami_ros.core.controller import Controller
from ami_ros.core.preprocess import encode_frame
from ami_ros.core.subgoals import approach_subgoals
from ami_ros.runtime import load_model
from ami_ros.runtime.world_model import GRAPHS
from ami_ros.sim import ArmSim


def bench_tick(
    model_dir: str | Path, config: ControllerConfig, ticks: int = 60, seed: int = 100_000, threads: int = 2
) -> dict[str, float]:
    """p50 / p99 tick time (ms) of the controller on a push episode's frames: `with_proposal` (as
    configured), `without_proposal` (the same model opened without policy.onnx) and
    `without_approach` (as configured, with `approach.urdf` empty)."""
    shipped = load_model(model_dir, config.joint_names, intra_op_threads=threads)
    plain = load_model(model_dir, config.joint_names, intra_op_threads=threads, graphs=GRAPHS)
    no_approach = dataclasses.replace(config, approach=dataclasses.replace(config.approach, urdf=""))
    variants = {  # name: (config, model)
        "with_proposal": (config, shipped),
        "without_proposal": (config, plain),
        "without_approach": (no_approach, shipped),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with ArmSim(SimConfig(task="push")) as sim:
        sim.reset(seed, "push")
        goal_image = sim.render_goal()
        controllers = {
            name: Controller(cfg, rt, subgoals=approach_subgoals(cfg, rt.action_limits))
            for name, (cfg, rt) in variants.items()
        }
        for ctl in controllers.values():
            ctl.set_goal(ctl.goal_from_image(goal_image, "bench"))
        for i in range(ticks):
            now, frame, q = 0.1 * i, sim.render(), sim.state().qpos
            commands = []
            for name, ctl in controllers.items():  # interleaved: all see the same load
                t0 = time.perf_counter()
                latent, _ = encode_frame(variants[name][1], frame, q)
                ctl.add_latent(now, latent)
                ctl.add_joints(now, sim.joint_names, q)
                decision, waited = ctl.tick_waiting(now)
                times[name].append(1e3 * (time.perf_counter() - t0 - waited))
                commands.append(decision.command)
            if commands[0] is not None:
                sim.command(commands[0])  # the episode follows the configured variant
            sim.advance(config.control_period)
    out: dict[str, float] = {"has_proposal": float(shipped.has_policy)}
    for name, ms in times.items():
        out[f"{name}_tick_ms_p50"], out[f"{name}_tick_ms_p99"] = np.percentile(ms, [50, 99]).tolist()
    out["ratio_p50"] = out["with_proposal_tick_ms_p50"] / out["without_proposal_tick_ms_p50"]
    out["approach_ratio_p50"] = out["with_proposal_tick_ms_p50"] / out["without_approach_tick_ms_p50"]
    return out
