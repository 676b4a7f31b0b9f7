"""THE control tick (numpy + the world model passed in; no ROS): planner_node and `ami-ros eval`
both run this one object, so what eval measures is what the node does on a robot.

Inputs arrive whenever they come (goal, latents and joint states with their stamps, enable);
`tick(now)` turns the newest of them into one `Decision`:

1. hold, saying why, when disabled, with no goal, or when the newest latent or joint state is
   older than `max_age` (or none arrived);
2. the energy of the newest latent against the goal (`core.energy.goal_energy`): the goal counts
   as reached once it falls below `success_energy` while the scene matches the goal image too
   (the fine image-token term below `success_scene_mse`), and until either rises above twice
   its threshold (hysteresis, so noise at a threshold does not toggle it); reached -> hold;
3. otherwise `plan` (CEM / MPPI on the model's rollout cost from the latent history one control
   period apart), pass q + the first action through the safety filter, and command the result.
   With a `SubgoalProvider` (`core.subgoals`: the IK approach's set-back poses and route), the
   cost's goal joints are the provider's next subgoal until the measured joints have passed the
   last, then the goal's own. The provider plans off the tick, in the background, from the joints
   measured on the first tick after a goal change; until it is ready the arm holds ("planning
   subgoals"), and eval's simulation waits for it as it waits for a plan.

The planner's warm start is dropped on a goal change, past each subgoal where the plan turns and
when a hold begins; nothing of an old plan is ever executed on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ami_ros.config import ConfigError, ControllerConfig
from ami_ros.core.buffers import JointStateBuffer, LatentHistory
from ami_ros.core.energy import energy_terms, weighted
from ami_ros.core.goal_memory import Goal
from ami_ros.core.planner import Planner
from ami_ros.core.preprocess import FrameEncoder, encode_frame
from ami_ros.core.safety import SafetyFilter
from ami_ros.core.subgoals import SubgoalProvider

log = logging.getLogger(__name__)

PLANNING = "planning"
"""`Decision.state` of a tick that commands; every other state is the reason for a hold."""
SUBGOALS = "planning subgoals"
"""`Decision.state` while the `SubgoalProvider` plans this goal's subgoals (the arm holds)."""


class WorldModel(FrameEncoder, Protocol):
    """What the controller needs of a world model (`ami_ros.runtime.WorldModelRuntime` is one).

    J joints, K history, H horizon, latent (L, D).
    """

    joint_names: list[str]
    joint_limits: np.ndarray  # (J,) rad: the proprio token holds joints / joint_limits
    action_limits: np.ndarray  # (J,) rad per control period
    latent_shape: tuple[int, int]
    history: int
    horizon: int
    cost_weights: np.ndarray  # the manifest's default rollout-cost weights

    def rollout_cost(
        self,
        history: np.ndarray,
        goal_latent: np.ndarray,
        goal_joints: np.ndarray,
        actions: np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """history (K, L, D), goal (L, D) and (J,), actions (N, H, J) -> cost (N,)."""
        ...

    @property
    def has_policy(self) -> bool:
        """The model proposes action chunks (`propose`)."""
        ...

    def propose(
        self, latent: np.ndarray, joints: np.ndarray, goal_latent: np.ndarray, goal_joints: np.ndarray
    ) -> np.ndarray:
        """latent (L, D), joints (J,), goal (L, D) and (J,) -> actions (H, J)."""
        ...


@dataclass(frozen=True)
class Decision:
    """What one tick decided: a command, or a hold and why."""

    state: str
    """`PLANNING` when commanding, else why the arm holds ("disabled", "no goal", "latent stale
    (...)", "joint_states stale (...)", "goal reached", "planning subgoals", "plan dropped (...)")."""
    command: np.ndarray | None = None
    """(J,) safety-filtered joint-position target, rad, for one control period ahead; None: hold."""
    plan: np.ndarray | None = None
    """(H, J) the planned action sequence (joint deltas, rad), first action first."""
    energy: float = float("nan")
    """Energy of the newest latent against the goal (nan when not computed this tick)."""
    reached: bool = False
    """The goal counts as reached (with hysteresis)."""
    steps: int = 0
    """Commands sent towards the current goal."""
    started_holding: bool = False
    """This tick begins a hold: the robot must be told to stop now (later hold ticks need not)."""
    changed: bool = False
    """`state` differs from the previous tick's."""
    interventions: tuple[str, ...] = ()
    """What the safety filter changed in `command`."""
    stamp: float = float("nan")
    """Stamp of the newest latent the decision was made from (s; nan when none)."""
    goal: Goal | None = None
    """The goal the decision was made towards."""

    @property
    def holding(self) -> bool:
        return self.command is None


class Controller:
    """Goal + latents + joint states -> one command or hold per tick. Thread-safe inputs.

    Args:
        config: the tick's settings (a robot's planner_node section).
        model: encoder (goal images) and rollout cost (planning) of the world model.
        rng: the planner's generator; default: seeded with `config.planner.seed`.
        enabled: start enabled (commanding as soon as a goal is set).
        subgoals: where to steer on the way to each goal (`core.subgoals.approach_subgoals`: the
            robot config's IK approach); None: straight for the goal.
    Raises:
        ConfigError: the model's joints differ from the config's, or cost_weights has the wrong length.
    """

    def __init__(
        self,
        config: ControllerConfig,
        model: WorldModel,
        rng: np.random.Generator | None = None,
        enabled: bool = True,
        subgoals: SubgoalProvider | None = None,
    ) -> None:
        if list(model.joint_names) != list(config.joint_names):
            raise ConfigError(
                f"joint_names {list(config.joint_names)} differ from the model's {model.joint_names}"
            )
        self.config, self.model = config, model
        planner = config.planner
        if planner.horizon != model.horizon:  # the rollout-cost graph's horizon is fixed at export
            log.info("planner.horizon %d -> %d (fixed by the model)", planner.horizon, model.horizon)
            planner = dataclasses.replace(planner, horizon=model.horizon)
        self.planner = Planner(planner, model.action_limits, rng or np.random.default_rng(planner.seed))
        self.safety = SafetyFilter(
            np.array(config.joint_lower),
            np.array(config.joint_upper),
            np.array(config.velocity_limits),
            config.safety,
        )
        self.weights = np.asarray(config.cost_weights or model.cost_weights, np.float32)
        if len(self.weights) != len(model.cost_weights):
            raise ConfigError(
                f"cost_weights: the model takes {len(model.cost_weights)} weights, got {len(self.weights)}"
            )
        self.subgoals = subgoals
        self._subgoals_for: Goal | None = None  # the goal the provider was last started for
        self._lock = threading.Lock()  # guards the inputs, set from other threads in a node
        self._latents = LatentHistory()
        self._joints = JointStateBuffer(config.joint_names)
        self._goal: Goal | None = None
        self._goal_changed = False
        self._enabled = enabled
        self.state, self.energy, self.steps, self.reached = "starting", float("nan"), 0, False
        self.scene = float("nan")  # fine image-token MSE of the newest latent to the goal's
        self._holding = False
        self.interventions = 0  # ticks whose command the safety filter changed
        self.tick_ms: deque[float] = deque(maxlen=500)  # of the ticks that commanded

    # ------------------------------------------------------------------ inputs
    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def goal(self) -> Goal | None:
        return self._goal

    def set_enabled(self, enabled: bool) -> bool:
        """Enable or disable commanding; True when this call disabled it (the robot must stop now)."""
        with self._lock:
            was, self._enabled = self._enabled, enabled
        return was and not enabled

    def set_goal(self, goal: Goal | None) -> None:
        """Plan towards `goal` from the next tick (None: hold with "no goal")."""
        with self._lock:
            self._goal, self._goal_changed = goal, True

    def goal_from_image(self, rgb: np.ndarray, name: str) -> Goal:
        """A goal image ((H, W, 3) uint8 RGB, any size) as a goal: its latent, and its joints as the
        encoder's pose network reads them from the pixels (a goal image has no measured joints)."""
        latent, joints = encode_frame(self.model, rgb, np.zeros(len(self.config.joint_names), np.float32))
        return Goal(name, latent, joints)

    def add_latent(self, stamp: float, latent: np.ndarray) -> None:
        """One encoded frame: stamp (s, the camera frame's), latent (L, D)."""
        with self._lock:
            self._latents.add(stamp, latent)

    def add_joints(self, stamp: float, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """One joint state (any joint order, matched by name); returns (J,) in model order.

        Raises:
            ValueError: a joint is missing or a position is not finite (see `JointStateBuffer.add`).
        """
        with self._lock:
            return self._joints.add(stamp, names, positions)

    def latest_joints(self) -> tuple[float, np.ndarray] | None:
        """(stamp, (J,) rad) of the newest joint state, or None."""
        with self._lock:
            return self._joints.latest()

    def goal_here(self, name: str) -> Goal | None:
        """The newest latent as a goal named `name` (joints from its proprio token); None without one."""
        with self._lock:
            newest = self._latents.latest()
        if newest is None:
            return None
        latent = newest[1]
        return Goal(name, latent, latent[-1, : len(self.model.joint_limits)] * self.model.joint_limits)

    # ------------------------------------------------------------------ the tick
    def tick(self, now: float) -> Decision:
        """Decide this control period's command or hold from the newest inputs.

        Args:
            now: the current time on the clock the stamps are on (s; sim time in eval and under
                use_sim_time).
        """
        t0 = time.perf_counter()
        with self._lock:  # one consistent snapshot of the inputs
            enabled, goal, changed = self._enabled, self._goal, self._goal_changed
            self._goal_changed = False
            newest, joints = self._latents.latest(), self._joints.latest()
            history = self._latents.history(self.model.history, self.config.control_period)
        if changed:
            self.reached, self.steps, self.energy, self.scene = False, 0, float("nan"), float("nan")
            self.planner.reset()
            self._subgoals_for = None
        reason = self._hold_reason(now, enabled, goal, newest, joints)
        if reason is not None:
            return self._hold(reason, goal, newest)
        assert goal is not None and history is not None and joints is not None
        q = joints[1]
        if self.subgoals is not None:
            if self._subgoals_for is not goal:  # they start from the joints measured now
                self.subgoals.start(goal.joints, q)
                self._subgoals_for = goal
            if not self.subgoals.ready():
                return self._hold(SUBGOALS, goal, newest)
        plan = self.plan(history[1], q, self._next_subgoal(q, goal))
        target, interventions = self.safety.filter(q, q + plan[0], self.config.control_period)
        with self._lock:
            if not self._enabled or self._goal is not goal or self._goal_changed:
                why = "disabled" if not self._enabled else "goal changed"
                return self._decision(f"plan dropped ({why} while planning)", goal, newest, record=False)
        self.steps += 1
        self.interventions += bool(interventions)
        self._holding = False
        self.tick_ms.append(1e3 * (time.perf_counter() - t0))
        return self._decision(
            PLANNING, goal, newest, command=target, plan=plan, interventions=tuple(interventions)
        )

    def tick_waiting(self, now: float) -> tuple[Decision, float]:
        """`tick(now)`, but a tick that would hold for the subgoals waits for them and ticks again:
        how eval's simulation runs the controller (time stands still while it plans), whereas a
        node ticks on, holding. Returns the decision and the seconds waited."""
        decision = self.tick(now)
        if decision.state != SUBGOALS or self.subgoals is None:
            return decision, 0.0
        t0 = time.perf_counter()
        self.subgoals.wait()
        waited = time.perf_counter() - t0
        return self.tick(now), waited

    def late(self, decision: Decision, age: float) -> str:
        """Why `decision`'s command must not be sent now that its latent is `age` s old; "" if it may.

        A plan whose latent grew older than 2 x max_age while planning (an overloaded machine) is
        void, so no command leaves more than 2 x max_age after its camera frame. Eval's simulation
        waits for the plan, so only a node asks.
        """
        limit = 2 * self.config.max_age
        if decision.command is None or age <= limit:
            return ""
        return f"plan dropped: its latent was {age:.2f} s old once planned (> {limit} s)"

    def status(self) -> dict[str, str]:
        """What a progress report shows: state, goal, energy, steps, reached, subgoals left, safety
        interventions, tick time (ms)."""
        goal = self._goal
        return {
            "state": self.state,
            "enabled": str(self._enabled).lower(),
            "goal": goal.name if goal is not None else "",
            "energy": f"{self.energy:.6f}",
            "success_energy": str(self.config.success_energy),
            "scene_mse": f"{self.scene:.6f}",
            "success_scene_mse": str(self.config.success_scene_mse),
            "steps": str(self.steps),
            "reached": str(self.reached).lower(),
            "subgoals_left": str(self.subgoals.left() if self.subgoals is not None else 0),
            "safety_interventions": str(self.interventions),
            **recent("tick_ms", self.tick_ms),
        }

    def plan(self, history: np.ndarray, joints: np.ndarray, goal: Goal) -> np.ndarray:
        """The plan (H, J) from the latent history (K, L, D) and the measured joints (J,) towards
        `goal`: searched around the model's proposal when it has one, else warm-started."""
        proposal = None
        if self.model.has_policy:
            proposal = self.model.propose(history[-1], joints, goal.latent, goal.joints)
        return self.planner.plan(
            lambda actions: self.model.rollout_cost(history, goal.latent, goal.joints, actions, self.weights),
            proposal,
        )

    def _next_subgoal(self, q: np.ndarray, goal: Goal) -> Goal:
        """`goal` with the provider's next subgoal as its joints, or `goal` itself without one or
        after the last; the planner's warm start is dropped where the plan turns."""
        if self.subgoals is None:
            return goal
        target, turned = self.subgoals.target(q)
        if turned:
            self.planner.reset()
        return goal if target is None else dataclasses.replace(goal, joints=target)

    def _hold_reason(
        self,
        now: float,
        enabled: bool,
        goal: Goal | None,
        newest: tuple[float, np.ndarray] | None,
        joints: tuple[float, np.ndarray] | None,
    ) -> str | None:
        """Why the arm must hold this tick, or None to plan; updates energy and `reached`."""
        max_age = self.config.max_age
        if not enabled:
            return "disabled"
        if goal is None:
            return "no goal"
        for what, entry in (("latent", newest), ("joint_states", joints)):
            if entry is None or now - entry[0] > max_age:
                age = "none received" if entry is None else f"{now - entry[0]:.2f} s old"
                return f"{what} stale ({age}, max_age {max_age} s)"
            if entry[0] - now > max_age:  # the clock jumped back (a sim reset): nothing is current
                return f"{what} from the future ({entry[0] - now:.2f} s ahead: the clock jumped back?)"
        assert newest is not None
        terms = energy_terms(newest[1], goal.latent, goal.joints, self.model.joint_limits)
        self.energy, self.scene = weighted(terms, self.weights), terms[0]  # scene: the fine-token term
        success, scene = self.config.success_energy, self.config.success_scene_mse
        if not self.reached and self.energy < success and self.scene < scene:
            self.reached = True
        elif self.reached and (self.energy > 2 * success or self.scene > 2 * scene):
            self.reached = False
        return "goal reached" if self.reached else None

    def _hold(self, reason: str, goal: Goal | None, newest: tuple[float, np.ndarray] | None) -> Decision:
        started = not self._holding
        if started:
            self.planner.reset()
        self._holding = True
        return self._decision(reason, goal, newest, started_holding=started)

    def _decision(
        self,
        state: str,
        goal: Goal | None,
        newest: tuple[float, np.ndarray] | None,
        record: bool = True,
        **fields: object,
    ) -> Decision:
        changed = state != self.state
        if record:
            self.state = state
        stamp = newest[0] if newest is not None else float("nan")
        return Decision(
            state, energy=self.energy, reached=self.reached, steps=self.steps, changed=changed,
            stamp=stamp, goal=goal, **fields,  # type: ignore[arg-type]
        )  # fmt: skip


def recent(name: str, samples: Sequence[float]) -> dict[str, str]:
    """`name` (the newest), `name_p50` and `name_p99` of `samples`, formatted; "nan" when empty."""
    if not samples:
        return {name: "nan", f"{name}_p50": "nan", f"{name}_p99": "nan"}
    p50, p99 = np.percentile(np.asarray(samples), [50, 99])
    return {name: f"{samples[-1]:.2f}", f"{name}_p50": f"{p50:.2f}", f"{name}_p99": f"{p99:.2f}"}
