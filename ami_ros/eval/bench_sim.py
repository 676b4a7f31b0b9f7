"""Speed of the embedded robot without ROS: physics, rendering and the real-time factor it allows."""

from __future__ import annotations

import time

import numpy as np

from ami_ros.config import SimConfig
from ami_ros.sim import ArmSim


def _render_ms(size: int, shadows: bool, frames: int = 60) -> float:
    with ArmSim(SimConfig(image_width=size, image_height=size, shadows=shadows)) as sim:
        sim.render()  # context creation
        t0 = time.perf_counter()
        for _ in range(frames):
            sim.render()
        return 1e3 * (time.perf_counter() - t0) / frames


def bench_sim(seconds: float = 10.0, camera_rate: float = 30.0, control_rate: float = 100.0) -> dict:
    """Measure physics rate, render times and the real-time factor of a camera-rate loop.

    The loop is what sim_node does each control period (command, physics, and a camera frame at
    `camera_rate`), minus ROS message passing.
    """
    report: dict = {}
    with ArmSim() as sim:
        sim.reset(0, "push")
        t0 = time.perf_counter()
        sim.step(20000)
        report["physics_steps_per_s"] = round(20000 / (time.perf_counter() - t0))
    for size in (64, 128, 224):
        report[f"render_{size}px_ms"] = round(_render_ms(size, shadows=False), 2)
    report["render_128px_shadows_ms"] = round(_render_ms(128, shadows=True, frames=20), 2)

    with ArmSim() as sim:
        sim.reset(1, "reach")
        rng = np.random.default_rng(0)
        steps_per_tick = round(1.0 / control_rate / sim.physics_dt)
        frame_period, next_frame, frames = 1.0 / camera_rate, 0.0, 0
        t0 = time.perf_counter()
        while sim.data.time < seconds:
            if rng.random() < 0.02:
                sim.command(rng.uniform(sim.lower, sim.upper))
            sim.step(steps_per_tick)
            if sim.data.time >= next_frame:
                sim.render()
                frames += 1
                next_frame += frame_period
        wall = time.perf_counter() - t0
    report["loop_camera_hz"] = camera_rate
    report["loop_camera_frames"] = frames
    report["loop_real_time_factor_max"] = round(seconds / wall, 1)
    return report
