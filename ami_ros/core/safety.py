"""The safety filter between planner and robot (numpy only).

Every command the stack publishes passes through `SafetyFilter.filter`: finite, inside the joint
limits (with a margin), no joint moving more than `max_step` per tick nor faster than its
velocity limit. Reasons are returned so a node can log and report them.
"""

from __future__ import annotations

import numpy as np

from ami_ros.config import SafetyConfig


class SafetyFilter:
    """Clamp joint-position targets to what the robot may safely do within one control tick."""

    def __init__(
        self, lower: np.ndarray, upper: np.ndarray, velocity_limits: np.ndarray, config: SafetyConfig
    ) -> None:
        self.lower = np.asarray(lower, float) + config.limit_margin
        self.upper = np.asarray(upper, float) - config.limit_margin
        if np.any(self.lower >= self.upper):
            raise ValueError("limit_margin leaves no room between the joint limits")
        self.velocity_limits = np.asarray(velocity_limits, float) * config.velocity_scale
        self.config = config

    def filter(self, current: np.ndarray, target: np.ndarray, dt: float) -> tuple[np.ndarray, list[str]]:
        """Return a safe target (rad) for `dt` seconds from `current`, and what was changed.

        The result lies between `current` and the clamped target, so it never jumps: a joint that
        is already beyond a limit is brought back no faster than the step limit. A target that is
        not finite or has the wrong length, or a period that is not a positive number, yields a
        hold at the current position: whatever a planner proposes, the command is safe.

        Raises:
            ValueError: `current` (the measured state) has the wrong length or is not finite.
        """
        current = np.asarray(current, float)
        target = np.asarray(target, float)
        if current.shape != self.lower.shape:
            raise ValueError(f"expected {self.lower.shape[0]} joints, got positions of shape {current.shape}")
        if not np.all(np.isfinite(current)):
            raise ValueError(f"joint state is not finite: {current.tolist()}")
        reasons: list[str] = []
        if target.shape != self.lower.shape:
            return current.copy(), [
                f"target of shape {target.shape} for {self.lower.size} joints: holding position"
            ]
        if not np.all(np.isfinite(target)):
            return current.copy(), ["non-finite target: holding position"]
        if not (np.isfinite(dt) and dt > 0):
            return current.copy(), [f"control period {dt} is not a positive number: holding position"]
        clamped = np.clip(target, self.lower, self.upper)
        if np.any(clamped != target):
            reasons.append("target clamped to the joint limits")
        step = np.minimum(self.config.max_step, self.velocity_limits * dt)
        delta = np.clip(clamped - current, -step, step)
        if np.any(np.abs(clamped - current) > step + 1e-12):
            reasons.append("step limited by max_step / velocity")
        return current + delta, reasons
