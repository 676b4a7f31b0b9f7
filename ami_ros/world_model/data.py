"""Training windows over in-memory episodes (the rosbag2 reader in `ami_ros.data` produces them).

An episode is a dict of synchronised arrays at the control period:
    frames  (T, H, W, 3) uint8 RGB, already resized to the model's image size
    joints  (T, J) float32 measured joint positions, rad
    actions (T, J) float32; actions[t] = command sent after frame t (target - measured), leading to t + 1
    block_xy (T, 2) float32, optional ground truth (simulator bags), used by probes only
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

Episode = dict[str, np.ndarray]


def check_episode(ep: Episode, image_size: int, n_joints: int) -> None:
    """Raise ValueError naming the problem if `ep` does not match the model."""
    t = len(ep["frames"])
    if ep["frames"].shape[1:] != (image_size, image_size, 3) or ep["frames"].dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 (T, {image_size}, {image_size}, 3), got "
            f"{ep['frames'].dtype} {ep['frames'].shape}"
        )
    for key in ("joints", "actions"):
        if ep[key].shape != (t, n_joints):
            raise ValueError(f"{key} must be ({t}, {n_joints}), got {ep[key].shape}")


def split_episodes(
    episodes: Sequence[Episode], val_fraction: float, seed: int
) -> tuple[list[Episode], list[Episode]]:
    """Split by episode (never inside one), at least one episode on each side."""
    if len(episodes) < 2:
        raise ValueError(f"need at least 2 episodes to hold some out, got {len(episodes)}")
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_val = min(max(1, round(val_fraction * len(episodes))), len(episodes) - 1)
    return [episodes[i] for i in order[n_val:]], [episodes[i] for i in order[:n_val]]


class WindowDataset(Dataset):
    """Every window of `history + horizon` consecutive steps of every episode.

    Item: frames (T, H, W, 3) uint8 — or, given the episodes' cached `latents` (frozen-encoder
    training), latents (T, N+1, D) float32 instead — joints (T, J), actions (T - 1, J), with
    T = history + horizon.
    """

    def __init__(
        self,
        episodes: Sequence[Episode],
        history: int,
        horizon: int,
        latents: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.episodes = list(episodes)
        self.latents = list(latents) if latents is not None else None
        self.length = history + horizon
        self.index = [
            (e, s) for e, ep in enumerate(self.episodes) for s in range(len(ep["frames"]) - self.length + 1)
        ]
        if not self.index:
            raise ValueError(f"no episode has {self.length} frames (history + horizon)")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, s = self.index[i]
        ep, t = self.episodes[e], self.length
        seen = (
            {"frames": torch.from_numpy(np.ascontiguousarray(ep["frames"][s : s + t]))}
            if self.latents is None
            else {"latents": torch.from_numpy(self.latents[e][s : s + t])}
        )
        return seen | {
            "joints": torch.from_numpy(ep["joints"][s : s + t].astype(np.float32)),
            "actions": torch.from_numpy(ep["actions"][s : s + t - 1].astype(np.float32)),
        }


def summarize(episodes: Sequence[Episode]) -> dict[str, object]:
    """Training data summary for the manifest."""
    steps = [len(ep["frames"]) for ep in episodes]
    return {
        "episodes": len(episodes),
        "transitions": int(sum(s - 1 for s in steps)),
        "image_shape": list(episodes[0]["frames"].shape[1:]) if episodes else [],
        "has_block_xy": bool(episodes) and all("block_xy" in ep for ep in episodes),
    }
