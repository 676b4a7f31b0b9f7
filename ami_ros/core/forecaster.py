"""Forecasts of the commands actually sent, and surprise when they miss (numpy only).

One object serves predictor_node and the early-warning benchmark (`ami_ros.eval.early_warning`), as
the controller serves planner_node and eval. For every command it forecasts the latent one control
period after the newest latent, from the model's history and the action the command implies
(commanded target minus the joint positions in that latent). When the latent for that instant
arrives (the first within half a period of it), `observe` scores the forecast against it.

Three scores come of it (`Surprise`): the forecast's error (image and joints), stillness (an image
that stops changing while the joints move: a frozen camera), and scene surprise (the tokens that
changed where the forecast expected them to stay: a block knocked by something the model did not
see).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Protocol

import numpy as np

from ami_ros.core.buffers import LatentHistory


class StepModel(Protocol):
    """The predictor as the forecaster needs it (`ami_ros.runtime.WorldModelRuntime` is one)."""

    history: int
    joint_limits: np.ndarray
    action_limits: np.ndarray

    def step(self, history: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """history (B, K, N+1, D), action (B, J) -> next latent (B, N+1, D), joints (B, J)."""
        ...


@dataclasses.dataclass(frozen=True)
class Surprise:
    """How one arriving latent compares with the forecast made for its instant, and with the latent
    before it."""

    stamp: float
    tokens: np.ndarray
    """(N,) mean squared error of each image token of the forecast."""
    joints: float
    """Mean squared error of the forecast proprio token: the joints the model expected the command
    to reach, against the measured ones (an arm that does not execute its commands)."""
    stillness: float
    """How far the joints moved since the previous latent (rad, largest joint) per unit of image-token
    change: a camera whose image stops changing while the arm moves scores high (a frozen camera)."""
    scene: float
    """Change where the model expected none: each image token's forecast error over the change
    expected there (plus `SCENE_FLOOR`), the mean of the `SCENE_TOKENS` largest. The change expected
    is the larger of what the forecast itself changed in that token and what changed in its 3x3
    neighbourhood between the two latents before (where the arm was already moving). The arm's
    tokens are discounted by their motion; a token that should have stayed and did not (a block
    moved by an unseen force) counts in full."""

    @property
    def image(self) -> float:
        """Mean squared error of the forecast image tokens: what ami/surprise publishes."""
        return float(self.tokens.mean())


STILLNESS_FLOOR = 1e-4
"""Image-token change (mean squared) below which an image counts as unchanged in `stillness`."""
SCENE_FLOOR = 0.1
"""Added to each token's expected change (mean squared) in `Surprise.scene`, so that a token the
forecast leaves alone is scored by its error in the latent's own units."""
SCENE_TOKENS = 3
"""Tokens averaged in `Surprise.scene`: an object of a few pixels covers one to four tokens."""


def neighbourhood_max(values: np.ndarray) -> np.ndarray:
    """(N,) per-token values on the square token grid -> each token's largest over its 3x3
    neighbourhood."""
    g = math.isqrt(len(values))
    grid = np.pad(values.reshape(g, g), 1)
    return np.max([grid[a : a + g, b : b + g] for a in range(3) for b in range(3)], axis=0).ravel()


class Forecaster:
    """Forecasts from the commands sent, scores the latents that arrive.

    Args:
        model: the predictor (history length, joint and action limits, one step).
        period: control period, s (latents one period apart form the model's history).
        pending: forecasts kept waiting for their latent.
    """

    def __init__(self, model: StepModel, period: float, pending: int = 16) -> None:
        self.model, self.period = model, period
        self.latents = LatentHistory()
        # (instant, forecast latent, the latent it was forecast from), oldest first
        self._pending: deque[tuple[float, np.ndarray, np.ndarray]] = deque(maxlen=pending)
        self._last_change: np.ndarray | None = None  # (N,) per-token change between the last two latents
        self.forecasts = 0

    def observe(self, stamp: float, latent: np.ndarray) -> Surprise | None:
        """Add a latent (N+1, D); its surprise when a forecast was made for its instant, else None."""
        previous = self.latents.latest()
        self.latents.add(stamp, latent)
        moving_before, stillness = self._last_change, 0.0
        if previous is not None:
            change = np.mean((latent[:-1] - previous[1][:-1]) ** 2, axis=1)  # (N,)
            self._last_change = change
            nj = len(self.model.joint_limits)
            moved = np.max(np.abs(latent[-1, :nj] - previous[1][-1, :nj]) * self.model.joint_limits)
            stillness = float(moved / max(float(change.mean()), STILLNESS_FLOOR))
        tolerance = self.period / 2
        while self._pending and self._pending[0][0] < stamp - tolerance:
            self._pending.popleft()  # its instant passed without a latent close enough
        if not self._pending or abs(self._pending[0][0] - stamp) > tolerance:
            return None
        _, forecast, source = self._pending.popleft()
        errors = np.mean((forecast[:-1] - latent[:-1]) ** 2, axis=1)
        expected = np.mean((forecast[:-1] - source[:-1]) ** 2, axis=1)
        if moving_before is not None:
            expected = np.maximum(expected, neighbourhood_max(moving_before))
        scene = float(np.sort(errors / (expected + SCENE_FLOOR))[-SCENE_TOKENS:].mean())
        return Surprise(
            stamp=stamp,
            tokens=errors,
            joints=float(np.mean((forecast[-1] - latent[-1]) ** 2)),
            stillness=stillness,
            scene=scene,
        )

    def forecast(self, target: np.ndarray) -> tuple[float, np.ndarray] | None:
        """Forecast for a commanded joint target (J,) rad: (instant, latent (N+1, D)), or None
        before the first latent or for a non-finite target."""
        found = self.latents.history(self.model.history, self.period)
        if found is None or not np.all(np.isfinite(target)):
            return None
        stamp, history = found
        limits, bound = self.model.joint_limits, self.model.action_limits
        action = np.clip(target - history[-1, -1, : len(limits)] * limits, -bound, bound)
        latent, _ = self.model.step(history[None], action[None].astype(np.float32))
        self._pending.append((stamp + self.period, latent[0], history[-1]))
        self.forecasts += 1
        return stamp + self.period, latent[0]
