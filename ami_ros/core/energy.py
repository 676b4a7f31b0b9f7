"""The planner's energy of one latent against a goal (numpy only).

The same formula as the model's fused rollout-cost graph (manifest `rollout_cost.formula`), applied
to the latent the robot is in now rather than to a predicted one: it is what the planner reports
as progress and compares with its success threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def energy_terms(
    latent: np.ndarray, goal_latent: np.ndarray, goal_joints: np.ndarray, joint_limits: np.ndarray
) -> tuple[float, float, float]:
    """The energy's three terms: fine token MSE, 2x2-pooled token MSE, normalised joint MSE.

    Args:
        latent, goal_latent: (G*G + 1, D), image tokens row-major over a G x G grid, then the
            proprio token whose first J entries are joints / joint_limits.
        goal_joints: (J,) rad.
        joint_limits: (J,) rad.
    """
    n, d = latent.shape[0] - 1, latent.shape[1]
    g = round(float(np.sqrt(n)))
    diff = (latent[:-1] - goal_latent[:-1]).astype(np.float64)  # (N, D)
    fine = float(np.mean(diff**2))
    pooled = diff.reshape(2, g // 2, 2, g // 2, d).mean(axis=(1, 3))  # (2, 2, D)
    coarse = float(np.mean(pooled**2))
    limits = np.asarray(joint_limits, np.float64)
    q = latent[-1, : len(limits)] * limits
    joints = float(np.mean(((q - np.asarray(goal_joints, np.float64)) / limits) ** 2))
    return fine, coarse, joints


def weighted(terms: Sequence[float], weights: Sequence[float] | np.ndarray) -> float:
    """w0 * fine + w1 * coarse + w2 * joints."""
    return sum(float(w) * t for w, t in zip(weights, terms, strict=True))


def goal_energy(
    latent: np.ndarray,
    goal_latent: np.ndarray,
    goal_joints: np.ndarray,
    joint_limits: np.ndarray,
    weights: Sequence[float],
) -> float:
    """w0 * fine token MSE + w1 * 2x2-pooled token MSE + w2 * normalised joint MSE (`energy_terms`)."""
    return weighted(energy_terms(latent, goal_latent, goal_joints, joint_limits), weights)
