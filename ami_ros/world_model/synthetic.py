"""Toy episodes for fast unit tests (real data comes from rosbag2 bags via `ami_ros.data`).

`toy_episodes`: numpy only, a bright square whose position follows the first two joints;
`TINY_MODEL`: a world model small enough to train on them in seconds.
"""

from __future__ import annotations

import numpy as np

from ami_ros.config import WorldModelConfig
from ami_ros.world_model.data import Episode

TINY_MODEL = WorldModelConfig(
    image_size=32,
    encoder_dim=32,
    encoder_depth=1,
    encoder_heads=2,
    latent_dim=8,
    horizon=3,
    predictor_channels=8,
    predictor_blocks=2,
    predictor_cond_dim=16,
)


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
