"""Sampling-based model-predictive control in latent space: CEM and MPPI (numpy only).

The planner knows nothing of the world model: it takes a cost function over action sequences,
so the same code plans with the ONNX rollout-cost graph in a node and with torch in evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ami_ros.config import PlannerConfig

CostFn = Callable[[np.ndarray], np.ndarray]
"""actions (N, horizon, action_dim) -> cost (N,), lower is better."""


class Planner:
    """CEM or MPPI over action sequences within per-dimension bounds, warm-started between ticks.

    Args:
        config: sampling settings.
        action_limit: (action_dim,) symmetric bound of each action dimension.
        rng: the generator every sample comes from (explicit, for reproducible plans).
    """

    def __init__(self, config: PlannerConfig, action_limit: np.ndarray, rng: np.random.Generator) -> None:
        self.config = config
        self.limit = np.asarray(action_limit, dtype=np.float32)
        self.rng = rng
        self._mean = np.zeros((config.horizon, len(self.limit)), np.float32)  # (H, A)
        self.last_costs: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the warm start (new goal, or the robot was moved by someone else)."""
        self._mean[:] = 0.0

    def plan(self, cost_fn: CostFn, proposal: np.ndarray | None = None) -> np.ndarray:
        """Search action sequences; returns the plan (horizon, action_dim), first action first.

        Args:
            cost_fn: the cost of action sequences (see `CostFn`).
            proposal: (horizon, action_dim) a learned guess to search around: the search starts
                from it rather than from the shifted last plan (which still competes), and each
                sample pays `prior_weight` x its mean squared distance to it in action bounds.
        """
        c = self.config
        shifted = np.concatenate([self._mean[1:], np.zeros_like(self._mean[:1])])  # the last plan, shifted
        if proposal is not None:
            proposal = np.clip(np.asarray(proposal, np.float32), -self.limit, self.limit)
        mean = shifted if proposal is None else proposal
        std = np.broadcast_to(c.init_std * self.limit, mean.shape).copy()
        for _ in range(c.iterations):
            noise = self.rng.standard_normal((c.samples, *mean.shape), dtype=np.float32)
            samples = np.clip(mean + std * noise, -self.limit, self.limit)  # (N, H, A)
            samples[0] = mean  # the incumbent always competes
            samples[1] = 0.0  # so does standing still
            if proposal is not None and c.samples > 2:
                samples[2] = shifted  # and the last plan
            costs = np.asarray(cost_fn(samples), dtype=np.float64)
            if costs.shape != (c.samples,) or not np.all(np.isfinite(costs)):
                raise ValueError(f"cost function returned {costs.shape} with non-finite values or wrong size")
            if proposal is not None:
                prior = np.mean(((samples - proposal) / self.limit) ** 2, axis=(1, 2))  # (N,)
                costs = costs + c.prior_weight * prior
            if c.method == "cem":
                elites = samples[np.argsort(costs)[: c.elites]]  # (K, H, A)
                new_mean, new_std = elites.mean(0), elites.std(0)
            else:  # mppi: exponentially weighted average by cost
                w = np.exp(-(costs - costs.min()) / c.temperature)
                w /= w.sum()
                new_mean = np.tensordot(w, samples, axes=1)
                new_std = np.sqrt(np.tensordot(w, (samples - new_mean) ** 2, axes=1))
            mean = c.momentum * mean + (1 - c.momentum) * new_mean
            std = np.maximum(new_std, c.min_std * self.limit)
        self._mean = mean.astype(np.float32)
        self.last_costs = costs
        return self._mean.copy()
