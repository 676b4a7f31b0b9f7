"""Subgoals planned off the control tick (core.subgoals): the controller holds while they are planned
and never waits for them; the approach provider keeps only the latest goal's and survives a failed
search."""

import dataclasses
import threading

import numpy as np
import pytest

from ami_ros.config import SimConfig
from ami_ros.core import subgoals as sg
from ami_ros.core.controller import PLANNING, SUBGOALS, Controller
from ami_ros.core.goal_memory import Goal
from ami_ros.core.kinematics import ApproachPath
from ami_ros.core.preprocess import encode_frame
from ami_ros.sim import ArmSim


class GatedSubgoals:
    """A provider whose planning finishes only when the test says so; one subgoal, then the goal."""

    def __init__(self, subgoal: np.ndarray) -> None:
        self.subgoal, self.started, self.planned = subgoal, [], threading.Event()

    def start(self, goal_joints, q):
        self.started.append(np.array(goal_joints))
        self.planned.clear()

    def ready(self):
        return self.planned.is_set()

    def wait(self, timeout=None):
        return self.planned.wait(timeout)

    def target(self, q):
        assert self.ready(), "target() before ready()"
        return self.subgoal, False

    def left(self):
        return 1 if self.ready() else 0


def test_the_tick_holds_while_the_subgoals_are_planned_and_then_steers_for_them(config, runtime):
    with ArmSim(SimConfig(task="push")) as sim:
        sim.reset(100_002, "push")
        frame, q, goal_image, names = sim.render(), sim.state().qpos, sim.render_goal(), sim.joint_names
    subgoal = np.array([0.3, -0.2, 0.4, 0.1], np.float32)
    provider = GatedSubgoals(subgoal)
    ctl = Controller(config, runtime, subgoals=provider)
    goal = ctl.goal_from_image(goal_image, "push")
    ctl.set_goal(goal)
    latent, _ = encode_frame(runtime, frame, q)
    now = 0.0
    for _ in range(3):  # a tick never blocks on the planning: it holds, and says why
        ctl.add_latent(now, latent)
        ctl.add_joints(now, names, q)
        d = ctl.tick(now)
        assert (d.state, d.command) == (SUBGOALS, None)
        now += 0.1
    assert len(provider.started) == 1  # started once, from the joints of the first tick
    np.testing.assert_array_equal(provider.started[0], goal.joints)
    assert ctl.status()["subgoals_left"] == "0"

    provider.planned.set()
    ctl.add_latent(now, latent)
    ctl.add_joints(now, names, q)
    d = ctl.tick(now)
    assert d.state == PLANNING and d.command is not None and d.goal is goal
    assert ctl.status()["subgoals_left"] == "1"
    # the cost's goal joints are the subgoal's: the same plan as towards a goal at the subgoal
    reference = Controller(config, runtime)
    reference.set_goal(Goal("at the subgoal", goal.latent, subgoal))
    reference.add_latent(now, latent)
    reference.add_joints(now, names, q)
    np.testing.assert_array_equal(reference.tick(now).command, d.command)

    ctl.set_goal(Goal("next", goal.latent, goal.joints + 0.1))  # a new goal: planned anew, held meanwhile
    assert ctl.tick(now).state == SUBGOALS and len(provider.started) == 2
    np.testing.assert_allclose(provider.started[1], goal.joints + 0.1)
    provider.planned.set()
    assert ctl.tick_waiting(now)[0].state == PLANNING


def test_the_approach_provider_keeps_only_the_latest_goals_subgoals(config, monkeypatch):
    release = threading.Event()
    searches = []
    plan = ApproachPath.plan

    def slow_plan(chain, start, goal_joints, *args):
        searches.append(np.array(goal_joints))
        release.wait(5.0)  # the first search is still running when the second goal comes
        return ApproachPath(config.approach, [], [np.array(goal_joints, np.float32)])

    monkeypatch.setattr(ApproachPath, "plan", staticmethod(slow_plan))
    provider = sg.approach_subgoals(config, np.array([0.15, 0.2, 0.25, 0.3]))
    assert isinstance(provider, sg.ApproachSubgoals)
    q = np.zeros(4)
    provider.start(np.full(4, 0.1), q)
    provider.start(np.full(4, 0.2), q)
    assert not provider.ready() and not provider.wait(0.05)
    release.set()
    assert provider.wait(5.0)
    np.testing.assert_allclose(provider.target(q)[0], np.full(4, 0.2))  # the latest goal's
    assert provider.left() == 1
    assert len(searches) <= 2  # the first goal's search, if it began, is dropped
    monkeypatch.setattr(ApproachPath, "plan", plan)


def test_a_failed_search_steers_straight_for_the_goal_and_says_why(config, monkeypatch, caplog):
    def broken(*args):
        raise ValueError("no IK solution")

    monkeypatch.setattr(ApproachPath, "plan", staticmethod(broken))
    provider = sg.approach_subgoals(config, np.array([0.15, 0.2, 0.25, 0.3]))
    provider.start(np.full(4, 0.1), np.zeros(4))
    assert provider.wait(5.0)
    assert provider.target(np.zeros(4)) == (None, False) and provider.left() == 0
    assert "approach subgoals failed" in caplog.text and "no IK solution" in caplog.text


def test_no_urdf_means_no_provider(config):
    off = dataclasses.replace(config, approach=dataclasses.replace(config.approach, urdf=""))
    assert sg.approach_subgoals(off, np.ones(4)) is None
    with pytest.raises(RuntimeError, match="before the subgoals are ready"):
        sg.ApproachSubgoals(config, np.ones(4), 0).target(np.zeros(4))
