"""Property-based tests of the safety filter and of joint-command validation (hypothesis).

Whatever the planner proposes — NaN, inf, 1e308, the wrong number of values — the command that
leaves the filter is finite, inside the joint limits and at most one step from the current
position. Whatever a command message carries — any joint order, unknown, duplicate or missing
names, non-finite or far out-of-range values, velocities that would make a spline overshoot — a
trajectory the controller accepts never asks for a position outside the limits, starts where the
arm is, and the same command in another joint order means the same motion.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ami_ros.config import SafetyConfig  # noqa: E402
from ami_ros.core.safety import SafetyFilter  # noqa: E402
from ami_ros.core.trajectory import CommandError, JointLimits, build_trajectory  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
WILD = st.one_of(
    ANY_FLOAT,
    st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 1e-320, 0.0, -0.0]),
    st.floats(-10.0, 10.0),
)


@st.composite
def robots(draw, max_joints: int = 6):
    """(SafetyFilter, raw lower, raw upper): random limits, velocity limits and safety settings."""
    n = draw(st.integers(1, max_joints))
    lower = np.array(draw(st.lists(st.floats(-3.0, 1.0), min_size=n, max_size=n)))
    width = np.array(draw(st.lists(st.floats(0.1, 4.0), min_size=n, max_size=n)))
    upper = lower + width
    velocity = np.array(draw(st.lists(st.floats(0.01, 10.0), min_size=n, max_size=n)))
    config = SafetyConfig(
        max_step=draw(st.floats(1e-3, 1.0)),
        velocity_scale=draw(st.floats(0.01, 1.0)),
        limit_margin=draw(st.floats(0.0, 0.049)),
    )
    return SafetyFilter(lower, upper, velocity, config), lower, upper


def _inside(filt: SafetyFilter, lower: np.ndarray, upper: np.ndarray, draw) -> np.ndarray:
    """A current position anywhere within the raw limits (margin bands included)."""
    s = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=lower.size, max_size=lower.size)))
    return lower + s * (upper - lower)


def _max_step(filt: SafetyFilter, dt: float) -> np.ndarray:
    return np.minimum(filt.config.max_step, filt.velocity_limits * dt)


@SETTINGS
@given(data=st.data(), robot=robots(), dt=st.floats(1e-3, 1.0))
def test_any_proposal_gives_a_finite_command_within_limits_and_one_step_away(data, robot, dt) -> None:
    filt, lower, upper = robot
    current = _inside(filt, lower, upper, data.draw)
    n = lower.size
    target = np.array(data.draw(st.lists(WILD, min_size=n, max_size=n)), dtype=float)
    out, reasons = filt.filter(current, target, dt)
    assert out.shape == (n,) and np.all(np.isfinite(out))
    assert np.all(np.abs(out - current) <= _max_step(filt, dt) + 1e-9)
    # never further outside the margin-limits than the arm already is, never outside the raw limits
    assert np.all(out >= np.minimum(current, filt.lower) - 1e-9)
    assert np.all(out <= np.maximum(current, filt.upper) + 1e-9)
    assert np.all(out >= lower - 1e-9) and np.all(out <= upper + 1e-9)
    if not np.all(np.isfinite(target)):
        np.testing.assert_array_equal(out, current)  # a hold
        assert reasons


@SETTINGS
@given(data=st.data(), robot=robots(), dt=st.floats(1e-3, 1.0))
def test_inside_the_margin_the_command_stays_inside_the_margin(data, robot, dt) -> None:
    filt, _, _ = robot
    current = _inside(filt, filt.lower, filt.upper, data.draw)
    n = current.size
    target = np.array(data.draw(st.lists(WILD, min_size=n, max_size=n)), dtype=float)
    out, _ = filt.filter(current, target, dt)
    assert np.all(out >= filt.lower - 1e-9) and np.all(out <= filt.upper + 1e-9)


@SETTINGS
@given(data=st.data(), robot=robots(), dt=st.floats(1e-3, 1.0))
def test_a_reachable_target_is_reached_exactly_and_without_a_reason(data, robot, dt) -> None:
    filt, _, _ = robot
    current = _inside(filt, filt.lower, filt.upper, data.draw)
    step = _max_step(filt, dt)
    s = np.array(data.draw(st.lists(st.floats(-1.0, 1.0), min_size=current.size, max_size=current.size)))
    target = np.clip(current + s * step, filt.lower, filt.upper)
    out, reasons = filt.filter(current, target, dt)
    np.testing.assert_allclose(out, target, atol=1e-12)
    assert not reasons


@SETTINGS
@given(data=st.data(), robot=robots(), dt=st.floats(1e-3, 1.0))
def test_a_joint_beyond_a_limit_is_brought_back_one_step_at_a_time(data, robot, dt) -> None:
    filt, lower, upper = robot
    n = lower.size
    beyond = np.array(data.draw(st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n)))
    side = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    current = np.where(side, upper + beyond, lower - beyond)
    target = np.array(data.draw(st.lists(WILD, min_size=n, max_size=n)), dtype=float)
    out, _ = filt.filter(current, target, dt)
    assert np.all(np.isfinite(out)) and np.all(np.abs(out - current) <= _max_step(filt, dt) + 1e-9)
    distance = lambda q: np.maximum(filt.lower - q, 0) + np.maximum(q - filt.upper, 0)  # noqa: E731
    assert np.all(distance(out) <= distance(current) + 1e-9)


@SETTINGS
@given(
    data=st.data(),
    robot=robots(),
    length=st.integers(0, 9),
    dt=st.one_of(st.floats(1e-3, 1.0), st.sampled_from([0.0, -0.1, np.nan, np.inf, -np.inf])),
)
def test_wrong_length_or_a_bad_period_is_a_hold_with_a_reason(data, robot, length, dt) -> None:
    filt, lower, upper = robot
    assume(length != lower.size or not (np.isfinite(dt) and dt > 0))
    current = _inside(filt, lower, upper, data.draw)
    target = np.array(data.draw(st.lists(WILD, min_size=length, max_size=length)), dtype=float)
    out, reasons = filt.filter(current, target, dt)
    np.testing.assert_array_equal(out, current)
    assert reasons and "holding" in reasons[0]


@SETTINGS
@given(robot=robots(), data=st.data())
def test_a_bad_joint_state_is_an_error_not_a_command(robot, data) -> None:
    filt, lower, _ = robot
    n = lower.size
    current = np.array(data.draw(st.lists(WILD, min_size=n, max_size=n)), dtype=float)
    assume(not np.all(np.isfinite(current)))
    with pytest.raises(ValueError, match="not finite"):
        filt.filter(current, np.zeros(n), 0.1)


# ------------------------------------------------------------------------- trajectory validation
@st.composite
def limits(draw):
    n = draw(st.integers(1, 6))
    lower = np.array(draw(st.lists(st.floats(-3.0, 1.0), min_size=n, max_size=n)))
    upper = lower + np.array(draw(st.lists(st.floats(0.1, 4.0), min_size=n, max_size=n)))
    names = tuple(f"j{i}" for i in range(n))
    return JointLimits(names, lower, upper, tolerance=draw(st.floats(0.0, 0.05)))


def _sample_grid(traj, n: int = 41) -> np.ndarray:
    t = np.linspace(traj.times[0] - 1.0, traj.end_time + 1.0, n)
    return np.stack([traj.sample(x) for x in t])


@SETTINGS
@given(lim=limits(), data=st.data(), with_velocities=st.booleans())
def test_an_accepted_trajectory_stays_within_limits_and_starts_where_the_arm_is(
    lim, data, with_velocities
) -> None:
    n = len(lim.names)
    points = data.draw(st.integers(1, 5))
    order = data.draw(st.permutations(range(n)))
    names = [lim.names[i] for i in order]
    current = lim.lower + np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))) * (
        lim.upper - lim.lower
    )
    span = lim.upper - lim.lower
    rows = [  # within the limits + tolerance (clipped: the sum can round one ulp past the band)
        np.clip(
            lim.lower
            - lim.tolerance
            + np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
            * (span + 1.999 * lim.tolerance),
            lim.lower - lim.tolerance,
            lim.upper + lim.tolerance,
        )
        for _ in range(points)
    ]
    speed = st.one_of(st.floats(-1e6, 1e6), st.floats(-5, 5))
    vels = [
        np.array(data.draw(st.lists(speed, min_size=n, max_size=n))) if with_velocities else np.array([])
        for _ in range(points)
    ]
    times = np.cumsum(data.draw(st.lists(st.floats(1e-3, 2.0), min_size=points, max_size=points)))
    traj = build_trajectory(
        lim,
        names,
        times,
        [r[order] for r in rows],
        [v[order] if v.size else v for v in vels],
        10.0,
        10.0,
        current,
    )
    q = _sample_grid(traj)
    assert np.all(np.isfinite(q))
    assert np.all(q >= lim.lower - 1e-9) and np.all(q <= lim.upper + 1e-9)
    np.testing.assert_allclose(traj.sample(10.0), current)  # no jump at acceptance
    # the same command in model order is the same motion
    same = build_trajectory(lim, list(lim.names), times, rows, vels, 10.0, 10.0, current)
    np.testing.assert_allclose(_sample_grid(same), q, atol=1e-9)


@SETTINGS
@given(lim=limits(), data=st.data())
def test_a_command_with_any_non_finite_or_far_value_is_rejected(lim, data) -> None:
    n = len(lim.names)
    row = np.array(data.draw(st.lists(WILD, min_size=n, max_size=n)), dtype=float)
    bad = ~np.isfinite(row) | (row < lim.lower - lim.tolerance) | (row > lim.upper + lim.tolerance)
    current = (lim.lower + lim.upper) / 2
    if np.any(bad):
        with pytest.raises(CommandError):
            build_trajectory(lim, lim.names, [1.0], [row], [[]], 0.0, 0.0, current)
        with pytest.raises(CommandError):
            lim.check_positions(row)
    else:
        q = lim.check_positions(row)
        assert np.all(q >= lim.lower) and np.all(q <= lim.upper)


@SETTINGS
@given(lim=limits(), data=st.data())
def test_unknown_duplicate_or_missing_names_and_ragged_rows_are_rejected(lim, data) -> None:
    n = len(lim.names)
    pool = [*lim.names, "other", "", "j0 "]
    names = data.draw(st.lists(st.sampled_from(pool), min_size=0, max_size=n + 2))
    width = data.draw(st.integers(0, n + 2))
    valid = sorted(names) == sorted(lim.names) and width == n
    assume(not valid)
    current = (lim.lower + lim.upper) / 2
    row = np.resize(current, width)
    with pytest.raises(CommandError):
        build_trajectory(lim, names, [1.0], [row], [[]], 0.0, 0.0, current)


@SETTINGS
@given(
    lim=limits(),
    times=st.lists(
        st.one_of(st.floats(-5.0, 5.0), st.sampled_from([np.nan, np.inf, -np.inf])), min_size=1, max_size=4
    ),
)
def test_times_must_be_finite_non_negative_and_increasing(lim, times) -> None:
    t = np.array(times)
    valid = np.all(np.isfinite(t)) and np.all(t >= 0) and np.all(np.diff(t) > 0)
    current = (lim.lower + lim.upper) / 2
    rows = [current] * len(times)
    if valid:
        traj = build_trajectory(lim, lim.names, t, rows, [[]] * len(t), 0.0, 0.0, current)
        assert np.all(np.diff(traj.times) >= 0)
    else:
        with pytest.raises(CommandError):
            build_trajectory(lim, lim.names, t, rows, [[]] * len(t), 0.0, 0.0, current)
