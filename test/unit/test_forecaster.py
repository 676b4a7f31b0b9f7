"""The forecaster predictor_node and the early-warning benchmark share: a forecast is scored against
the latent of its instant; an image that stops changing while the joints move scores as still."""

from __future__ import annotations

import numpy as np
import pytest

from ami_ros.core.forecaster import Forecaster, neighbourhood_max

LIMITS = np.array([2.0, 2.0], np.float32)


class CopyImage:
    """A model that keeps the image tokens and moves the proprio token by the action."""

    history = 2
    joint_limits = LIMITS
    action_limits = np.array([0.1, 0.1], np.float32)

    def step(self, history: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nxt = history[:, -1].copy()
        nxt[:, -1, :2] += action / LIMITS
        return nxt, nxt[:, -1, :2] * LIMITS


def latent(image: float, q: np.ndarray) -> np.ndarray:
    z = np.full((5, 3), image, np.float32)
    z[-1] = 0.0
    z[-1, :2] = q / LIMITS
    return z


def test_a_forecast_is_scored_by_the_latent_of_its_instant():
    f = Forecaster(CopyImage(), period=0.1)
    q = np.zeros(2)
    assert f.observe(0.0, latent(1.0, q)) is None  # no forecast yet
    instant, _ = f.forecast(q + np.array([0.05, 0.3]))  # the action is clipped to 0.1
    assert instant == pytest.approx(0.1) and f.forecasts == 1
    assert f.observe(0.03, latent(1.0, q)) is None  # too early: not the forecast's instant
    s = f.observe(0.1, latent(3.0, np.array([0.05, 0.1])))
    assert s is not None and s.image == pytest.approx(4.0)  # the image changed by 2 everywhere
    assert s.joints == pytest.approx(0.0, abs=1e-12)  # the joints went where the command said
    assert s.stillness == pytest.approx(0.1 / 4.0)  # moved 0.1 rad, image change 4


def test_an_unchanged_image_while_the_joints_move_is_still():
    f = Forecaster(CopyImage(), period=0.1)
    q = np.zeros(2)
    f.observe(0.0, latent(1.0, q))
    still = []
    for t in range(1, 6):
        f.forecast(q + 0.1)
        q = q + 0.1
        still.append(f.observe(0.1 * t, latent(1.0, q)).stillness)  # the camera repeats its frame
    assert min(still) >= 0.1 / 1e-4 * 0.99


def test_forecasts_whose_instant_passed_are_dropped_and_bad_targets_ignored():
    f = Forecaster(CopyImage(), period=0.1)
    assert f.forecast(np.zeros(2)) is None  # no latent yet
    f.observe(0.0, latent(1.0, np.zeros(2)))
    assert f.forecast(np.array([np.nan, 0.0])) is None
    f.forecast(np.zeros(2))
    assert f.observe(0.5, latent(1.0, np.zeros(2))) is None  # the 0.1 s forecast is stale: dropped
    f.forecast(np.zeros(2))
    assert f.observe(0.6, latent(1.0, np.zeros(2))) is not None


def test_a_token_that_changes_where_the_forecast_expected_none_is_scene_surprise():
    """The arm's motion, which the forecast expects, is discounted; an unforeseen change is not."""

    class MovesFirstToken(CopyImage):
        def step(self, history: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            nxt, q = super().step(history, action)
            nxt[:, 0] += 2.0  # the model expects token 0 (the arm) to move by 2
            return nxt, q

    def observed(change: dict[int, float]) -> float:
        f = Forecaster(MovesFirstToken(), period=0.1)
        f.observe(0.0, latent(1.0, np.zeros(2)))
        f.forecast(np.zeros(2))
        z = latent(1.0, np.zeros(2))
        for token, delta in change.items():
            z[token] += delta
        return f.observe(0.1, z).scene

    as_forecast = observed({0: 2.0})
    assert as_forecast == pytest.approx(0.0, abs=1e-9)
    arm_off_by_one = observed({0: 1.0})  # the arm token missed its forecast by 1 of an expected 2
    block_moved_by_one = observed({0: 2.0, 2: 1.0})  # the arm as forecast; token 2 moved unforeseen
    # scene = the mean of the 3 largest (error / (expected change + 0.1)) of the 4 image tokens
    assert arm_off_by_one == pytest.approx(1.0 / (4.0 + 0.1) / 3)
    assert block_moved_by_one == pytest.approx(1.0 / 0.1 / 3)
    assert block_moved_by_one > 10 * arm_off_by_one


def test_a_token_that_keeps_changing_is_discounted_after_its_first_tick():
    """Where the image was already changing (the arm moving through), change is expected: the second
    tick of the same change scores as the arm does, not as a knock."""
    f = Forecaster(CopyImage(), period=0.1)
    q = np.zeros(2)
    f.observe(0.0, latent(1.0, q))
    scenes = []
    for t, value in ((1, 2.0), (2, 3.0)):  # token 2 changes by 1 on both ticks, unforeseen
        f.forecast(q)
        z = latent(1.0, q)
        z[2] = value
        scenes.append(f.observe(0.1 * t, z).scene)
    assert scenes[0] == pytest.approx(1.0 / 0.1 / 3)  # nothing changed before: a knock
    assert scenes[1] == pytest.approx(1.0 / (1.0 + 0.1) / 3)  # it changed there a tick ago


def test_neighbourhood_max_spreads_each_value_over_its_3x3_cells():
    corner = np.zeros(9)
    corner[0] = 1.0
    np.testing.assert_array_equal(neighbourhood_max(corner).reshape(3, 3), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    centre = np.zeros(9)
    centre[4] = 2.0
    np.testing.assert_array_equal(neighbourhood_max(centre), np.full(9, 2.0))
