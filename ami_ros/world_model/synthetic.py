"""Small episode generators for tests and quick experiments (real data comes from rosbag2 bags).

`toy_episodes`: numpy only, a bright square whose position follows the first two joints (fast).
`sim_episodes`: frames rendered by the embedded MuJoCo robot under a smooth random policy that is
biased towards the episode's goal pose (so some episodes touch the block).
"""

from __future__ import annotations

import numpy as np

from ami_ros.config import SimConfig, WorldModelConfig
from ami_ros.world_model.data import Episode


def _smooth_actions(rng: np.random.Generator, steps: int, limits: np.ndarray) -> np.ndarray:
    a = np.zeros((steps, len(limits)))
    for t in range(1, steps):  # Ornstein-Uhlenbeck: smooth random motion
        a[t] = 0.8 * a[t - 1] + 0.45 * limits * rng.standard_normal(len(limits))
    return np.clip(a, -limits, limits)


def toy_episodes(n: int, steps: int, cfg: WorldModelConfig, seed: int = 0) -> list[Episode]:
    """`n` episodes of `steps` frames: a 6-px square at a position given by joints 1-2."""
    rng = np.random.default_rng(seed)
    lim, alim, s = np.array(cfg.joint_limits), np.array(cfg.action_limits), cfg.image_size
    episodes = []
    for _ in range(n):
        q = rng.uniform(-0.7, 0.7, len(lim)) * lim
        acts = _smooth_actions(rng, steps, alim)
        frames = np.zeros((steps, s, s, 3), np.uint8)
        joints = np.zeros((steps, len(lim)), np.float32)
        for t in range(steps):
            joints[t] = q
            x, y = ((q[:2] / lim[:2] + 1) / 2 * (s - 8)).astype(int)
            frames[t, y : y + 6, x : x + 6] = (255, 200, 50)
            q = np.clip(q + acts[t], -lim, lim)
        episodes.append(
            {
                "frames": frames,
                "joints": joints,
                "actions": acts.astype(np.float32),
                "block_xy": np.tile(rng.uniform(-0.2, 0.2, 2), (steps, 1)).astype(np.float32),
            }
        )
    return episodes


def sim_episodes(
    n: int, steps: int, cfg: WorldModelConfig, seed: int = 0, sim_config: SimConfig | None = None
) -> list[Episode]:
    """`n` episodes rendered by `ArmSim` at the model's image size, 10 Hz control."""
    from ami_ros.sim import ArmSim

    sim_config = sim_config or SimConfig(image_width=cfg.image_size, image_height=cfg.image_size)
    rng = np.random.default_rng(seed)
    alim = np.array(cfg.action_limits)
    episodes = []
    with ArmSim(sim_config) as sim:
        for i in range(n):
            sim.reset(seed + i, "push" if i % 2 else "reach")
            noise = _smooth_actions(rng, steps, alim)
            towards_goal = rng.random() < 0.6
            frames, joints, acts, block = [], [], [], []
            for t in range(steps):
                st = sim.state()
                q = st.qpos.astype(np.float32)
                a = noise[t] + (0.5 * (sim.goal.arm_qpos - q) if towards_goal else 0.0)
                a = np.clip(a, -alim, alim).astype(np.float32)
                frames.append(sim.render())
                joints.append(q)
                acts.append(a)
                block.append(st.block_pose[:2].astype(np.float32))
                sim.command(q + a)
                sim.advance(0.1)
            episodes.append(
                {
                    "frames": np.stack(frames),
                    "joints": np.stack(joints),
                    "actions": np.stack(acts),
                    "block_xy": np.stack(block),
                }
            )
    return episodes
