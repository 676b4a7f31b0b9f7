"""The scene slot: where a camera frame differs most from what the joint states explain.

An exported model's `arm_layer.onnx` renders, from the joint states, what the camera shows of the
robot over a learned background, and returns the squared residual of a frame against it outside
the arm (`ami_ros.world_model.scene_slot`). The slot is that residual's peak, refined to the
centroid of the residual above its floor in a small window: on the embedded robot, the block's
position in the image to about 2 mm, though nothing is told what the block looks like.

`slot_forecast.onnx` forecasts the slot k frames ahead from the slot, its last step and the path
of the wrist and the tip along the commanded joints (`wrist_tip_path`). Numpy only.
"""

from __future__ import annotations

import numpy as np

from ami_ros.core.kinematics import Chain


def peak_centroid(residual: np.ndarray, window: int) -> np.ndarray:
    """(T, 2) pixel (x, y) of the residual maps (T, S, S): the peak of each 3 x 3 mean, refined to
    the centroid of the residual above the floor of the (2 window + 1)^2 window around it (cut at
    the image's edges)."""
    e = np.asarray(residual, np.float64)
    t_, s = e.shape[0], e.shape[1]
    pad = np.pad(e, ((0, 0), (1, 1), (1, 1)))
    smooth = np.zeros_like(e)
    for i in range(3):
        for j in range(3):
            smooth += pad[:, i : i + s, j : j + s]
    r, c = np.divmod(smooth.reshape(t_, -1).argmax(1), s)
    off = np.arange(-window, window + 1)
    rows, cols = r[:, None] + off, c[:, None] + off  # (T, W)
    inside = ((rows >= 0) & (rows < s))[:, :, None] & ((cols >= 0) & (cols < s))[:, None, :]
    win = e[
        np.arange(t_)[:, None, None], np.clip(rows, 0, s - 1)[:, :, None], np.clip(cols, 0, s - 1)[:, None, :]
    ]
    floor = np.where(inside, win, np.inf).min((1, 2), keepdims=True)
    w = np.where(inside, np.maximum(win - floor, 0.0) + 1e-12, 0.0)
    total = w.sum((1, 2))
    x = (w * cols[:, None, :]).sum((1, 2)) / total
    y = (w * rows[:, :, None]).sum((1, 2)) / total
    return np.stack([x, y], 1).astype(np.float32)


def wrist_tip_path(
    chain: Chain, q: np.ndarray, actions: np.ndarray, k: int, limits: np.ndarray
) -> np.ndarray:
    """(..., H+1, 2, 3) the wrist's and the tip's positions (m, the chain's root frame) along the
    first k of the commands (..., H, J) from the joints q (..., J), clipped to the joint limits;
    the arm holds after the k-th."""
    a = np.array(actions, np.float32)
    a[..., k:, :] = 0.0
    steps = np.concatenate([np.zeros_like(a[..., :1, :]), np.cumsum(a, -2)], -2)
    path = np.clip(np.asarray(q, np.float32)[..., None, :] + steps, -limits, limits)
    pts = chain.skeleton(path.reshape(-1, path.shape[-1]))[:, -2:]
    return pts.reshape(*path.shape[:-1], 2, 3).astype(np.float32)


def held_path(path: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """Paths (N, H+1, 2, 3) of H commands cut to their first k (scalar or (N,)): the points after
    the k-th repeat it, as if the arm held there."""
    n, h1 = path.shape[:2]
    idx = np.minimum(np.arange(h1)[None, :], np.broadcast_to(np.asarray(k), (n,))[:, None])
    return path[np.arange(n)[:, None], idx]
