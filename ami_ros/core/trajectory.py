"""Joint-command validation and trajectory interpolation, as ros2_controllers do them (numpy only).

The semantics follow joint_trajectory_controller (JTC) and forward_command_controller, so a planner
that drives the embedded sim drives a real ros2_control arm unchanged:

- joint names may come in any order and are matched by name; unknown, missing (partial goals)
  and duplicate names are rejected;
- each point's `time_from_start` is relative to the trajectory start; times must be non-negative
  and strictly increasing;
- the segment before the first point runs from the state at the moment the trajectory is
  accepted; points already in the past at that moment are dropped;
- linear interpolation when only positions are given, cubic Hermite when every point also has
  velocities (accelerations are ignored); after the last point the last point is held;
- a spline that would overshoot a joint limit between its points (large velocities) is clamped
  to the limits, or to the start position where the arm was already beyond one.

Nothing here knows about ROS messages: `ami_ros.ros.conversions` turns a JointTrajectory into the
arrays these functions take, so the rules are unit-tested without ROS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


class CommandError(ValueError):
    """A joint command is invalid; the message says why (it is logged and shown in diagnostics)."""


@dataclasses.dataclass(frozen=True)
class JointLimits:
    """The joints a controller commands, in its own order, and their position limits."""

    names: tuple[str, ...]
    lower: np.ndarray  # (J,) rad
    upper: np.ndarray  # (J,) rad
    tolerance: float = 0.0
    """Positions up to this far (rad) outside the limits are accepted and clamped."""

    def check_positions(self, positions: Sequence[float] | np.ndarray, what: str = "positions") -> np.ndarray:
        """Validate (J,) positions in `names` order; returns them clamped to the limits.

        Raises:
            CommandError: wrong length, a non-finite value, or a value beyond a limit + tolerance.
        """
        q = np.asarray(positions, dtype=float)
        if q.shape != (len(self.names),):
            raise CommandError(f"{what}: expected {len(self.names)} values, got {q.size}")
        if not np.all(np.isfinite(q)):
            raise CommandError(f"{what}: non-finite value in {q.tolist()}")
        outside = (q < self.lower - self.tolerance) | (q > self.upper + self.tolerance)
        if np.any(outside):
            j = int(np.argmax(outside))
            raise CommandError(
                f"{what}: {self.names[j]} = {q[j]:.4f} is outside its limits "
                f"[{self.lower[j]:.4f}, {self.upper[j]:.4f}] (tolerance {self.tolerance})"
            )
        return np.clip(q, self.lower, self.upper)

    def column_order(self, names: Sequence[str]) -> np.ndarray:
        """Index array `idx` such that `values[idx]` reorders per-name values into `self.names` order.

        Raises:
            CommandError: unknown, duplicate or missing joint names.
        """
        names = list(names)
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise CommandError(f"unknown joint name(s) {unknown}; expected {list(self.names)}")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise CommandError(f"duplicate joint name(s) {duplicates}")
        missing = [n for n in self.names if n not in names]
        if missing:
            raise CommandError(f"partial joint set: missing {missing} (all joints must be commanded)")
        return np.array([names.index(n) for n in self.names], dtype=int)


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """A validated trajectory on absolute (simulated) times, starting with the state at acceptance."""

    times: np.ndarray  # (K,) absolute seconds, non-decreasing; times[0] = acceptance time
    positions: np.ndarray  # (K, J) rad
    velocities: np.ndarray | None  # (K, J) rad/s, or None for linear interpolation
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # (J,) lower, upper: samples are clamped

    @property
    def end_time(self) -> float:
        return float(self.times[-1])

    def sample(self, t: float) -> np.ndarray:
        """Positions (J,) at absolute time `t`; held at the ends, clamped to `bounds`."""
        q = self._interpolate(t)
        return q if self.bounds is None else np.clip(q, *self.bounds)

    def _interpolate(self, t: float) -> np.ndarray:
        times, q = self.times, self.positions
        if t <= times[0]:
            return q[0].copy()
        if t >= times[-1]:
            return q[-1].copy()
        i = int(np.searchsorted(times, t, side="right")) - 1  # times[i] <= t < times[i + 1]
        h = times[i + 1] - times[i]
        s = (t - times[i]) / h
        if self.velocities is None:
            return (1.0 - s) * q[i] + s * q[i + 1]
        v = self.velocities
        h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
        h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
        return h00 * q[i] + h10 * h * v[i] + h01 * q[i + 1] + h11 * h * v[i + 1]


def build_trajectory(
    limits: JointLimits,
    names: Sequence[str],
    times_from_start: Sequence[float] | np.ndarray,
    positions: Sequence[Sequence[float]],
    velocities: Sequence[Sequence[float]],
    start_time: float,
    now: float,
    current: np.ndarray,
    current_velocity: np.ndarray | None = None,
) -> Trajectory:
    """Validate a joint trajectory and anchor it at the current state.

    Args:
        limits: the controller's joints (their order is the output order) and position limits.
        names: (J,) joint names of the message, any order.
        times_from_start: (N,) seconds of each point after `start_time`; N >= 1.
        positions: N sequences of J positions (rad), in `names` order.
        velocities: N sequences, each empty (none given) or of J velocities (rad/s).
        start_time: absolute start time (the header stamp, or `now` when the stamp is zero).
        now: absolute time at acceptance; the first segment starts here from `current`.
        current: (J,) positions at acceptance, in `limits.names` order.
        current_velocity: (J,) velocities at acceptance (cubic interpolation only); zero if None.

    Raises:
        CommandError: why the trajectory is rejected (see the module docstring).
    """
    order = limits.column_order(names)
    n = len(positions)
    if n == 0 or len(times_from_start) != n or len(velocities) != n:
        raise CommandError(f"expected one time, position set and velocity set per point, got {n} points")
    t = np.asarray(times_from_start, dtype=float)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise CommandError(f"time_from_start must be finite and non-negative, got {t.tolist()}")
    if np.any(np.diff(t) <= 0):
        raise CommandError(f"time_from_start must be strictly increasing, got {t.tolist()}")
    width = len(order)
    q = np.stack(
        [
            limits.check_positions(_row(p, width, i, "positions")[order], f"point {i}")
            for i, p in enumerate(positions)
        ]
    )
    have_v = [len(v) > 0 for v in velocities]
    if any(have_v) and not all(have_v):
        raise CommandError("velocities must be given for every point or for none")
    v = None
    if all(have_v):
        v = np.stack([_row(vel, width, i, "velocities")[order] for i, vel in enumerate(velocities)])
        if not np.all(np.isfinite(v)):
            raise CommandError("velocities: non-finite value")
    t = start_time + t
    future = t >= now
    if not np.any(future):
        raise CommandError(f"trajectory ends in the past ({t[-1]:.3f} s < now {now:.3f} s)")
    q0 = np.asarray(current, dtype=float)[None]
    times = np.concatenate([[now], t[future]])
    positions_out = np.concatenate([q0, q[future]])
    if v is not None:
        v0 = (
            np.zeros_like(q0) if current_velocity is None else np.asarray(current_velocity, dtype=float)[None]
        )
        v = np.concatenate([v0, v[future]])
    # a cubic segment may overshoot its points: clamp to the limits, widened to where the arm is
    bounds = (np.minimum(limits.lower, q0[0]), np.maximum(limits.upper, q0[0]))
    return Trajectory(times, positions_out, v, bounds)


def _row(values: Sequence[float], width: int, i: int, what: str) -> np.ndarray:
    row = np.asarray(values, dtype=float)
    if row.shape != (width,):
        raise CommandError(f"point {i}: {what} has {row.size} values for {width} joint names")
    return row
