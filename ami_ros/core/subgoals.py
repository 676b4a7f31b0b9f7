"""Subgoals the controller steers for on its way to a goal, planned off the control tick (numpy; no ROS).

A `SubgoalProvider` is handed to the `Controller`. On the first tick towards a goal the controller
calls `start(goal_joints, q)` and holds ("planning subgoals") until `ready()`; it then asks
`target(q)` every tick. planner_node keeps ticking meanwhile (the arm holds; a route search takes
100-200 ms on a laptop CPU), and eval's simulation waits for it (`wait`), as it waits for a plan.

`ApproachSubgoals` is the one provider shipped: the IK set-back poses on the goal pose's tool axis
and an RRT route to the first of them (`core.kinematics.ApproachPath`), built from the robot
config's `approach` section; `approach_subgoals` returns None with `approach.urdf: ""`.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import numpy as np

from ami_ros.config import ControllerConfig
from ami_ros.core.kinematics import ApproachPath, Chain

log = logging.getLogger(__name__)


class SubgoalProvider(Protocol):
    """Plans subgoals towards one goal at a time, in the background."""

    def start(self, goal_joints: np.ndarray, q: np.ndarray) -> None:
        """Begin planning towards `goal_joints` (J,) from the measured joints `q` (J,); drops the
        previous goal's subgoals (and its planning, if still running)."""
        ...

    def ready(self) -> bool:
        """The subgoals of the latest `start` are planned."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `ready()` (or `timeout` s); returns `ready()`."""
        ...

    def target(self, q: np.ndarray) -> tuple[np.ndarray | None, bool]:
        """(the joints to steer for from the measured joints `q`, None once past the last subgoal:
        the goal itself; whether `q` has just passed a subgoal where a plan turns). Only when ready."""
        ...

    def left(self) -> int:
        """Subgoals still ahead (0 before planning finished)."""
        ...


class ApproachSubgoals:
    """The IK approach (`ApproachPath.plan`) of each goal, planned on a background thread.

    Args:
        config: the controller's settings (its `approach` section, joint limits and names).
        speed: (J,) rad per control period the route is spaced for (the model's action limits).
        seed: seed of the route search (the planner's).
    """

    def __init__(self, config: ControllerConfig, speed: np.ndarray, seed: int) -> None:
        a = config.approach
        self.config = a
        self.chain = Chain(a.urdf, a.tip_link, config.joint_names)
        self.lower, self.upper = np.array(config.joint_lower), np.array(config.joint_upper)
        self.speed = np.asarray(speed, float)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()  # guards _generation and _path
        self._search = threading.Lock()  # one route search at a time (the generator is not thread-safe)
        self._done = threading.Condition(self._lock)
        self._generation = 0
        self._path: ApproachPath | None = None

    def start(self, goal_joints: np.ndarray, q: np.ndarray) -> None:
        with self._lock:
            self._generation += 1
            self._path = None
            generation = self._generation
        args = (generation, np.array(goal_joints, float), np.array(q, float))
        threading.Thread(target=self._plan, args=args, name="approach_subgoals", daemon=True).start()

    def _plan(self, generation: int, goal_joints: np.ndarray, q: np.ndarray) -> None:
        with self._search:
            with self._lock:
                if generation != self._generation:
                    return  # a newer goal came before this one's search began
            try:
                path = ApproachPath.plan(
                    self.chain, q, goal_joints, self.config, self.lower, self.upper, self.speed, self._rng
                )
            except Exception as err:  # a failed search must not leave the controller holding forever
                log.error("approach subgoals failed (%r); steering straight for the goal", err)
                path = ApproachPath(self.config, [], [])
        with self._done:
            if generation == self._generation:
                self._path = path
                self._done.notify_all()

    def ready(self) -> bool:
        with self._lock:
            return self._path is not None

    def wait(self, timeout: float | None = None) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self._path is not None, timeout)

    def target(self, q: np.ndarray) -> tuple[np.ndarray | None, bool]:
        with self._lock:
            path = self._path
        if path is None:
            raise RuntimeError("target() before the subgoals are ready()")
        return path.target(q)

    def left(self) -> int:
        with self._lock:
            return len(self._path.subgoals) if self._path is not None else 0

    @property
    def path(self) -> ApproachPath | None:
        """The latest goal's approach (its subgoals still ahead); None while it is planned."""
        with self._lock:
            return self._path


def approach_subgoals(config: ControllerConfig, speed: np.ndarray) -> ApproachSubgoals | None:
    """The robot config's approach subgoals, None with `approach.urdf: ""` (straight to each goal)."""
    return ApproachSubgoals(config, speed, config.planner.seed) if config.approach.urdf else None
