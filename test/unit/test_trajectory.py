"""Joint command validation and interpolation, with joint_trajectory_controller semantics."""

from __future__ import annotations

import numpy as np
import pytest

from ami_ros.core.trajectory import CommandError, JointLimits, build_trajectory

NAMES = ("joint1", "joint2", "joint3")
LIMITS = JointLimits(NAMES, np.array([-1.0, -2.0, -1.0]), np.array([1.0, 2.0, 1.0]), tolerance=0.02)
CURRENT = np.array([0.1, 0.2, 0.3])


def build(names=NAMES, times=(1.0, 2.0), positions=None, velocities=None, start=10.0, now=10.0, **kw):
    positions = positions if positions is not None else [[0.5, 0.5, 0.5], [0.0, 1.0, -0.5]]
    velocities = velocities if velocities is not None else [[] for _ in positions]
    return build_trajectory(LIMITS, names, times, positions, velocities, start, now, CURRENT, **kw)


def test_linear_interpolation_from_the_current_state_then_hold() -> None:
    traj = build()
    np.testing.assert_allclose(traj.sample(10.0), CURRENT)
    np.testing.assert_allclose(traj.sample(10.5), (CURRENT + 0.5) / 2)
    np.testing.assert_allclose(traj.sample(11.0), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(traj.sample(11.5), [0.25, 0.75, 0.0])
    np.testing.assert_allclose(traj.sample(50.0), [0.0, 1.0, -0.5])
    np.testing.assert_allclose(traj.sample(0.0), CURRENT)
    assert traj.end_time == 12.0


def test_joint_names_in_any_order_are_matched_by_name() -> None:
    traj = build(names=("joint3", "joint1", "joint2"), positions=[[0.3, 0.1, 0.2], [0.6, 0.4, 0.5]])
    np.testing.assert_allclose(traj.sample(12.0), [0.4, 0.5, 0.6])


def test_cubic_hermite_when_velocities_are_given() -> None:
    traj = build(velocities=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert traj.velocities is not None
    np.testing.assert_allclose(traj.sample(11.0), [0.5, 0.5, 0.5])
    # Zero end velocities: smoothstep, so the midpoint is halfway and the quarter point is 5/32.
    np.testing.assert_allclose(traj.sample(11.5), [0.25, 0.75, 0.0])
    np.testing.assert_allclose(traj.sample(11.25), 0.5 + (np.array([0.0, 1.0, -0.5]) - 0.5) * 5 / 32)
    # With a velocity at the knots the curve passes the knots with that slope.
    traj = build(times=(1.0,), positions=[[0.1, 0.2, 0.3]], velocities=[[1.0, 0.0, 0.0]])
    eps = 1e-4
    slope = (traj.sample(11.0) - traj.sample(11.0 - eps)) / eps
    np.testing.assert_allclose(slope, [1.0, 0.0, 0.0], atol=1e-3)


def test_future_start_stamp_interpolates_from_acceptance() -> None:
    traj = build(start=12.0, now=10.0, times=(1.0,), positions=[[0.4, 0.5, 0.6]])
    np.testing.assert_allclose(traj.sample(10.0), CURRENT)
    np.testing.assert_allclose(traj.sample(13.0), [0.4, 0.5, 0.6])
    np.testing.assert_allclose(traj.sample(11.5), (CURRENT + np.array([0.4, 0.5, 0.6])) / 2)


def test_points_in_the_past_are_dropped() -> None:
    traj = build(start=8.5, now=10.0)  # first point at 9.5 (past), second at 10.5
    np.testing.assert_allclose(traj.times, [10.0, 10.5])
    np.testing.assert_allclose(traj.sample(10.25), (CURRENT + np.array([0.0, 1.0, -0.5])) / 2)


def test_point_at_time_zero_jumps_without_dividing_by_zero() -> None:
    traj = build(times=(0.0,), positions=[[0.4, 0.5, 0.6]])
    np.testing.assert_allclose(traj.sample(10.0 + 1e-9), [0.4, 0.5, 0.6])


def test_positions_within_tolerance_are_clamped() -> None:
    traj = build(times=(1.0,), positions=[[1.01, 0.0, -1.015]])
    np.testing.assert_allclose(traj.positions[-1], [1.0, 0.0, -1.0])


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"names": ("joint1", "joint2", "elbow")}, "unknown joint"),
        ({"names": ("joint1", "joint2"), "positions": [[0, 0], [0, 0]]}, "partial joint set"),
        ({"names": ("joint1", "joint1", "joint2")}, "duplicate joint"),
        ({"positions": [[0.0, 0.0], [0.0, 0.0, 0.0]]}, "positions has 2 values"),
        ({"velocities": [[0.0, 0.0, 0.0], [0.0]]}, "velocities has 1 values"),
        ({"velocities": [[0.0, 0.0, 0.0], []]}, "every point or for none"),
        ({"velocities": [[0.0, np.inf, 0.0], [0.0, 0.0, 0.0]]}, "non-finite"),
        ({"positions": [[0.0, np.nan, 0.0], [0.0, 0.0, 0.0]]}, "non-finite"),
        ({"times": (1.0, 1.0)}, "strictly increasing"),
        ({"times": (2.0, 1.0)}, "strictly increasing"),
        ({"times": (-1.0, 1.0)}, "non-negative"),
        ({"times": (np.nan, 1.0)}, "finite"),
        ({"times": (1.0,)}, "one time"),
        ({"positions": [[0.0, 0.0, 1.05], [0.0, 0.0, 0.0]]}, "joint3 = 1.0500 is outside"),
        ({"start": 1.0, "now": 10.0}, "ends in the past"),
    ],
)
def test_invalid_trajectories_are_rejected(kwargs: dict, reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        build(**kwargs)


def test_forward_command_validation() -> None:
    np.testing.assert_allclose(LIMITS.check_positions([0.1, -2.01, 0.0]), [0.1, -2.0, 0.0])
    for bad, reason in [
        ([0.0, 0.0], "expected 3"),
        ([0.0, np.nan, 0.0], "non-finite"),
        ([0, 0, 2], "outside"),
    ]:
        with pytest.raises(CommandError, match=reason):
            LIMITS.check_positions(bad)
