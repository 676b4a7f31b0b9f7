"""The scene slot: its centroid (core.scene_slot), the held paths, and an arm layer that learns what
the joints explain so that the slot finds an object it was never told about."""

import dataclasses

import numpy as np
import pytest
import torch

from ami_ros.config import ConfigError, SlotTrainConfig
from ami_ros.core.kinematics import Chain
from ami_ros.core.scene_slot import held_path, peak_centroid, wrist_tip_path
from ami_ros.world_model.scene_slot import apply_homography, episode_slots, homography, train_arm_layer

LIMITS = np.array([1.9, 2.4, 2.4, 2.0], np.float32)
JOINTS = ["joint1", "joint2", "joint3", "joint4"]


def blob(size: int, x: float, y: float, sigma: float = 0.8, floor: float = 0.01) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return floor + np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


def test_peak_centroid_places_a_blob_to_a_tenth_of_a_pixel_also_at_the_edge():
    maps = np.stack([blob(32, 10.3, 20.6), blob(32, 25.5, 4.25), blob(32, 0.3, 31.0)])
    maps[0] += 0.2 * blob(32, 3.0, 3.0, sigma=0.5)  # a weaker second peak elsewhere
    got = peak_centroid(maps, window=2)
    assert got.shape == (3, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got[:2], [[10.3, 20.6], [25.5, 4.25]], atol=0.1)
    assert np.all(np.abs(got[2] - [0.3, 31.0]) < 0.6)  # the window is cut at the image's edge
    flat = peak_centroid(np.zeros((1, 8, 8)), window=2)  # nothing there: still a point in the image
    assert np.all((flat >= 0) & (flat <= 7))


def test_held_path_is_the_path_of_the_first_k_commands():
    chain = Chain("sim/assets/tabletop_arm.urdf", "end_effector", JOINTS)
    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, (6, 4)).astype(np.float32) * LIMITS
    acts = rng.uniform(-0.3, 0.3, (6, 8, 4)).astype(np.float32)
    full = wrist_tip_path(chain, q, acts, 8, LIMITS)
    assert full.shape == (6, 9, 2, 3)
    np.testing.assert_allclose(full[:, 0, 1], chain.skeleton(q)[:, -1], atol=1e-6)  # starts at the tip
    ks = np.array([0, 1, 3, 5, 8, 8])
    cut = held_path(full, ks)
    for i, k in enumerate(ks):
        np.testing.assert_allclose(cut[i], wrist_tip_path(chain, q[i], acts[i], k, LIMITS), atol=1e-6)


def arm_and_block_episodes(n: int, steps: int, size: int, seed: int) -> list[dict]:
    """A square 'arm' whose position follows joints 1-2 and a square 'block' that stays put."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n):
        bx, by = rng.integers(4, size - 8, 2)
        q = rng.uniform(-0.8, 0.8, (steps, 4)).astype(np.float32) * LIMITS
        frames = np.full((steps, size, size, 3), 40, np.uint8)
        for t in range(steps):
            frames[t, by : by + 4, bx : bx + 4] = (220, 60, 40)
            ax, ay = ((q[t, :2] / LIMITS[:2] + 1) / 2 * (size - 8)).astype(int)
            frames[t, ay : ay + 6, ax : ax + 6] = (60, 200, 240)
        arm_px = ((q[:, :2] / LIMITS[:2] + 1) / 2 * (size - 8)).astype(int) + 2.5
        episodes.append(
            {"frames": frames, "joints": q, "block_px": np.array([bx + 1.5, by + 1.5]), "arm_px": arm_px}
        )
    return episodes


def test_the_arm_layer_explains_the_arm_so_the_slot_finds_the_block():
    torch.manual_seed(0)
    cfg = SlotTrainConfig(image_size=32, renderer_steps=400, renderer_batch=32, lr=0.005)
    arm = train_arm_layer(arm_and_block_episodes(24, 12, 32, seed=0), cfg, np.random.default_rng(0))
    errors = []
    for ep in arm_and_block_episodes(6, 12, 32, seed=1):  # blocks where none was in training
        got = episode_slots(arm, ep, cfg.window)
        apart = np.any(np.abs(ep["arm_px"] - ep["block_px"]) > 6, 1)  # the arm does not touch the block
        errors.append(np.linalg.norm(got - ep["block_px"], axis=1)[apart])
    err = np.concatenate(errors)
    assert len(err) > 40 and np.median(err) < 0.5, np.median(err)


def test_homography_recovers_a_perspective_map():
    h = np.array([[0.01, 0.002, -0.3], [0.001, -0.012, 0.4], [0.0005, 0.001, 1.0]])
    src = np.random.default_rng(0).uniform(0, 64, (50, 2))
    fitted = homography(src, apply_homography(h, src))
    np.testing.assert_allclose(apply_homography(fitted, src), apply_homography(h, src), atol=1e-9)


def test_slot_config_refuses_what_cannot_train():
    for bad in ({"image_size": 30}, {"horizon": 0}, {"val_fraction": 1.0}, {"lr": 0.0}):
        with pytest.raises(ConfigError):
            dataclasses.replace(SlotTrainConfig(), **bad)
