"""`ami-ros collect`: explore the embedded robot and record rosbag2 MCAP training data.

Each control step (every `control_period` s of simulated time) records, all stamped with the same
simulated time (header stamp = bag log time):

    /camera/image_raw                  sensor_msgs/Image, rgb8, the camera before the command
    /joint_states                      sensor_msgs/JointState, joint1..4 position/velocity/effort
    /arm_controller/joint_trajectory   trajectory_msgs/JointTrajectory, one point: the absolute joint
                                       target, time_from_start = control_period
    /sim/object_pose, /sim/end_effector_pose   geometry_msgs/PoseStamped ground truth (optional;
                                       for probes and evaluation, never a model input)

**Action** = commanded target − measured joint position at command time, clipped per joint to
±(velocity_limit × control_period), so the arm can reach it within one period. The recorded
command is exactly measured position + action (then clamped to the joint limits), so a reader
recovers the action as command − joint_states at the same stamp.

Exploration is biased towards contact with the block; each episode uses one policy:

- `demo` (`demo_fraction`): goal-directed push demonstrations (`DemoPolicy`): the block pushed to
  the episode's push goal, re-planned from wherever it ends up, then held there.
- `push` (`push_fraction`): scripted pushes. Pick a point in the block's workspace, push heading
  from the block towards it; move to an IK solution behind the block with the last link along the
  heading, on straight joint-space segments checked not to touch the block (directly, or through
  one via-point), then track the push line through the block with local IK and waypoint noise;
  repeat from wherever the block ended up.
- `random` (`random_fraction`): smooth random joint motion, an Ornstein–Uhlenbeck process on the
  per-step deltas, reflected at the joint limits.
- `reach` (the rest): move to joint configurations drawn uniformly across the limits.

Episodes (`steps_per_episode` steps, seed `seed + i`) restart the simulated clock, so stamps get
an offset from the episode index: episode i starts i × (`steps_per_episode` × `control_period` +
`episode_gap`) s in, one period plus `episode_gap` after the previous one's last step, which keeps stamps
monotonic and lets the reader split episodes at the gap. `episodes_per_shard`
episodes go into each bag directory `shard_NNNN/`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ami_ros.config import CollectConfig, EvalConfig
from ami_ros.data import messages as m
from ami_ros.data.bag import BagWriter, default_qos
from ami_ros.sim import ArmSim

log = logging.getLogger(__name__)

IMAGE_TOPIC = "/camera/image_raw"
JOINT_STATE_TOPIC = "/joint_states"
COMMAND_TOPIC = "/arm_controller/joint_trajectory"
OBJECT_TOPIC = "/sim/object_pose"
END_EFFECTOR_TOPIC = "/sim/end_effector_pose"
POLICIES = ("demo", "push", "random", "probe", "reach")
MOVED_THRESHOLD = 0.002  # m of block motion in one step that counts as "the block moved"

_BLOCK_CLEARANCE = 0.025 + 0.02  # block half-size + pusher radius: pusher centre at contact
_APPROACH_OFFSET = 0.02  # extra distance behind the block where a push starts
_REPLAN_DISTANCE = 0.015  # m the block may move during an approach before the push is re-planned
_SETTLED = 0.05  # rad: a joint-space goal counts as reached within this
_MAX_APPROACH_STEPS = 25
_VIA_POINTS = 60  # random via-points tried when the direct approach would touch the block
_CLEAR = 0.012  # m an approach keeps between the arm and the block
_CHECK_STEP = 0.03  # rad between the poses an approach segment is checked at
_DEMO_DONE = 0.015  # m from its goal at which a demonstration stops pushing the block
_PROBE_DISTANCE = (0.03, 0.12)  # m from the block's centre of the point a probe drives the tip to
_PROBE_APPROACH_STEPS = (3, 26)  # control steps a probe spends driving there


def coarse_to_fine(n: int) -> list[int]:
    """0..n-1 ordered ends first, then halving strides: the same set, checked coarse to fine."""
    order, seen, stride = [0, n - 1] if n > 1 else [0], {0, n - 1}, 1 << max(0, (n - 1).bit_length() - 1)
    while stride >= 1:
        for i in range(stride, n - 1, stride):
            if i not in seen:
                seen.add(i)
                order.append(i)
        stride //= 2
    return order


def _wrap(angle: float) -> float:
    return float(np.arctan2(np.sin(angle), np.cos(angle)))


def local_ik(
    sim: ArmSim, q0: np.ndarray, xy: np.ndarray, yaw: float, iterations: int = 8
) -> tuple[np.ndarray, float]:
    """Joint positions near `q0` putting the end effector at `xy` with the last link at `yaw`.

    Damped least squares with a finite-difference Jacobian, started from `q0` so consecutive
    waypoints stay on one IK branch (and ~50x cheaper than ArmSim.inverse_kinematics, which
    restarts from random poses).

    Returns:
        The joint positions and the remaining position error (m).
    """
    q, eps = np.array(q0, dtype=float), 1e-5
    jac = np.empty((3, len(q)))
    jac[2] = 0.1  # yaw = sum of the joint angles (planar arm), weighted like ArmSim's IK
    for _ in range(iterations):
        p = sim.forward_kinematics(q)[:2]
        err = np.r_[xy - p, 0.1 * _wrap(yaw - q.sum())]
        if np.linalg.norm(err) < 5e-4:
            break
        for j in range(len(q)):
            dq = np.zeros_like(q)
            dq[j] = eps
            jac[:2, j] = (sim.forward_kinematics(q + dq)[:2] - p) / eps
        q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(3), err), sim.lower, sim.upper)
    return q, float(np.linalg.norm(xy - sim.forward_kinematics(q)[:2]))


class PushPolicy:
    """Scripted pushes: approach behind the block, then push through it along a noisy line.

    Push headings alternate between "towards a random point of the block's workspace" (keeps the
    block in reach) and uniform; a heading is kept only if the push start is reachable with the
    last link along it and the block stays within reach. While no push is reachable (the block
    was pushed out of reach), the arm moves randomly for a few steps and tries again.
    """

    def __init__(self, sim: ArmSim, config: CollectConfig, rng: np.random.Generator) -> None:
        self.sim, self.config, self.rng = sim, config, rng
        self.max_delta = sim.velocity_limits * config.control_period
        self._fallback = RandomPolicy(sim, config, rng)
        self._plan: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self._route: list[np.ndarray] = []  # approach waypoints, q_pre last
        self._block = np.zeros(2)  # block position the plan was made for
        self._phase, self._steps, self._s, self._cooldown = "approach", 0, 0.0, 0
        self._q_cmd = np.zeros(len(sim.joint_names))

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if self._plan is None:
            if self._cooldown > 0:
                self._cooldown -= 1
                return self._fallback(q)
            if not self._new_push(q):
                self._cooldown = 5
                return self._fallback(q)
        q_pre, start, direction, length = self._plan  # type: ignore[misc]
        self._steps += 1
        if self._phase == "approach":
            if len(self._route) > 1 and np.max(np.abs(q - self._route[0])) < _SETTLED:
                self._route.pop(0)  # via-point passed
            if np.max(np.abs(q - q_pre)) >= _SETTLED:
                # Re-plan after a timeout or when the approach knocked the block away.
                moved = np.linalg.norm(self.sim.state().block_pose[:2] - self._block) > _REPLAN_DISTANCE
                if self._steps > _MAX_APPROACH_STEPS or moved:
                    self._plan = None
                return straight_step(q, self._route[0], self.max_delta)
            self._phase, self._s, self._q_cmd = "push", 0.0, q_pre
        self._s += self.config.push_speed * self.config.control_period
        if self._s >= length:
            self._plan = None
        waypoint = start + min(self._s, length) * direction + self.rng.normal(0.0, self.config.push_noise, 2)
        self._q_cmd = local_ik(self.sim, self._q_cmd, waypoint, float(np.arctan2(*direction[::-1])))[0]
        return self._q_cmd

    def _new_push(self, q: np.ndarray) -> bool:
        """Plan a push of the block from its current pose; False if none is reachable."""
        lo_r, hi_r = self.sim.config.block_radius
        pose = self.sim.state().block_pose
        block = pose[:2]
        for attempt in range(12):
            if attempt % 2 == 0:
                r, a = self.rng.uniform(lo_r, hi_r), self.rng.uniform(-1.2, 1.2)
                toward = np.array([r * np.cos(a), r * np.sin(a)]) - block
            else:
                toward = self.rng.normal(size=2)
            direction = toward / max(np.linalg.norm(toward), 1e-9)
            distance = self.rng.uniform(*self.config.push_distance)
            if np.linalg.norm(block + distance * direction) > hi_r + 0.03:
                continue  # would push the block out of reach
            heading = float(np.arctan2(direction[1], direction[0]))
            if self._plan_push(q, pose, direction, heading, distance):
                return True
        return False

    def _plan_push(
        self, q: np.ndarray, pose: np.ndarray, direction: np.ndarray, heading: float, distance: float
    ) -> bool:
        """Plan the push of the block at `pose` along `direction` (`heading`, rad) for `distance` m
        beyond contact: an IK pose behind the block (from `q` or a random start) and a clear route
        to it. False when neither start gives one."""
        block = pose[:2]
        start = block - (_BLOCK_CLEARANCE + _APPROACH_OFFSET) * direction
        starts = [q, self.rng.uniform(0.8 * self.sim.lower, 0.8 * self.sim.upper)]
        solutions = [
            s for s, err in (local_ik(self.sim, q0, start, heading, 30) for q0 in starts) if err < 3e-3
        ]
        for q_pre in sorted(solutions, key=lambda s: float(np.abs(s - q).sum())):
            if (route := self._approach(q, q_pre, pose)) is not None:
                self._plan, self._route = (q_pre, start, direction, _APPROACH_OFFSET + distance), route
                self._phase, self._steps, self._block = "approach", 0, block.copy()
                return True
        return False

    def _approach(self, q: np.ndarray, q_pre: np.ndarray, block: np.ndarray) -> list[np.ndarray] | None:
        """Joint-space waypoints from `q` to `q_pre` whose straight segments keep clear of the block:
        [q_pre], or [via-point, q_pre] with a random via-point; None when neither is found."""
        if self.sim.touches_block(q_pre, block, _CLEAR / 2):
            return None
        if self._clear(q, q_pre, block):
            return [q_pre]
        for _ in range(_VIA_POINTS):
            via = self.rng.uniform(0.9 * self.sim.lower, 0.9 * self.sim.upper)
            if self._clear(q, via, block) and self._clear(via, q_pre, block):
                return [via, q_pre]
        return None

    def _clear(self, a: np.ndarray, b: np.ndarray, block: np.ndarray) -> bool:
        samples = 2 + int(np.max(np.abs(b - a)) / _CHECK_STEP)
        ts = np.linspace(0.0, 1.0, samples)[coarse_to_fine(samples)]  # a collision shows up early
        return not any(self.sim.touches_block(a + t * (b - a), block, _CLEAR) for t in ts)


class DemoPolicy(PushPolicy):
    """Goal-directed push demonstrations, standing in for a user's teleoperated ones (scripted from the
    simulator's state, which the recorded bag does not hand to any model).

    Push the block along the line from it to the episode's goal position, re-planning from wherever
    it ends up, until it lies within `_DEMO_DONE` of the goal; then hold the arm where the push ended
    (its tip is then where the goal pose has it: touching the block's trailing face). Moving on to the
    goal's exact joint positions was tried: the null-space motion of the 4-joint arm often swept the
    block off its goal.
    """

    def __init__(self, sim: ArmSim, config: CollectConfig, rng: np.random.Generator) -> None:
        super().__init__(sim, config, rng)
        self._hold: np.ndarray | None = None

    def __call__(self, q: np.ndarray) -> np.ndarray:
        block = self.sim.state().block_pose[:2]
        if self._hold is None and np.linalg.norm(block - self.sim.goal.block_pose[:2]) < _DEMO_DONE:
            self._hold = q.copy()
        return super().__call__(q) if self._hold is None else self._hold

    def _new_push(self, q: np.ndarray) -> bool:
        """Plan a push of the block towards the goal; False if none is reachable."""
        pose = self.sim.state().block_pose
        block, goal = pose[:2], self.sim.goal.block_pose[:2]
        gap = float(np.linalg.norm(goal - block))
        for attempt in range(8):
            heading = float(np.arctan2(*(goal - block)[::-1])) + (
                self.rng.normal(0.0, 0.15) if attempt else 0.0
            )
            direction = np.array([np.cos(heading), np.sin(heading)])
            if self._plan_push(q, pose, direction, heading, gap):
                return True
        return False


class RandomPolicy:
    """Smooth random joint motion: an Ornstein–Uhlenbeck process on the per-step deltas."""

    def __init__(self, sim: ArmSim, config: CollectConfig, rng: np.random.Generator) -> None:
        self.sim, self.config, self.rng = sim, config, rng
        self.max_delta = sim.velocity_limits * config.control_period
        self.delta = np.zeros(len(sim.joint_names))

    def __call__(self, q: np.ndarray) -> np.ndarray:
        c = self.config
        noise = self.rng.normal(0.0, c.ou_sigma, self.delta.shape) * self.max_delta
        self.delta = (1.0 - c.ou_theta) * self.delta + noise
        outside = (q + self.delta < self.sim.lower) | (q + self.delta > self.sim.upper)
        self.delta[outside] *= -1.0  # reflect at the limits instead of pressing against them
        return q + self.delta


class ProbePolicy:
    """A planner's kind of commands where the block is: drive the tip towards a random point near the
    block (inverse kinematics, scripted from the simulator's state), then `probe_chunks` chunks of
    `probe_chunk` equal random joint steps (normal, std `probe_std` x the largest step, clipped to
    it), the commands a chunked CEM search samples; then the next probe. A forecast trained only on
    scripted pushes and demonstrations has not seen what such commands do to the block
    (docs/history.md)."""

    def __init__(self, sim: ArmSim, config: CollectConfig, rng: np.random.Generator) -> None:
        self.sim, self.config, self.rng = sim, config, rng
        self.max_delta = sim.velocity_limits * config.control_period
        self._queue: list[tuple[str, np.ndarray]] = []  # ("to", joint target) or ("step", delta)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if not self._queue:
            self._plan()
        kind, value = self._queue.pop(0)
        return straight_step(q, value, self.max_delta) if kind == "to" else q + value

    def _plan(self) -> None:
        c, rng = self.config, self.rng
        angle = rng.uniform(0.0, 2 * np.pi)
        point = self.sim.state().block_pose[:2] + rng.uniform(*_PROBE_DISTANCE) * np.array(
            [np.cos(angle), np.sin(angle)]
        )
        target = self.sim.inverse_kinematics(point, rng=rng)
        if target is not None:
            self._queue += [("to", target)] * int(rng.integers(*_PROBE_APPROACH_STEPS))
        for _ in range(c.probe_chunks):
            step = np.clip(rng.normal(0.0, c.probe_std, self.max_delta.shape), -1.0, 1.0) * self.max_delta
            self._queue += [("step", step)] * c.probe_chunk


class ReachPolicy:
    """Move to joint configurations drawn uniformly across the limits, one after another."""

    def __init__(self, sim: ArmSim, config: CollectConfig, rng: np.random.Generator) -> None:
        self.sim, self.rng = sim, rng
        self.goal: np.ndarray | None = None
        self._steps = 0

    def __call__(self, q: np.ndarray) -> np.ndarray:
        self._steps += 1
        if self.goal is None or np.max(np.abs(q - self.goal)) < _SETTLED or self._steps > 30:
            self.goal, self._steps = self.rng.uniform(0.95 * self.sim.lower, 0.95 * self.sim.upper), 0
        return self.goal


_POLICY_CLASSES: dict[str, Callable[..., Callable[[np.ndarray], np.ndarray]]] = {
    "demo": DemoPolicy,
    "push": PushPolicy,
    "random": RandomPolicy,
    "probe": ProbePolicy,
    "reach": ReachPolicy,
}


def choose_policy(config: CollectConfig, rng: np.random.Generator) -> str:
    p = [config.demo_fraction, config.push_fraction, config.random_fraction, config.probe_fraction]
    return POLICIES[int(rng.choice(len(POLICIES), p=[*p, max(0.0, 1.0 - sum(p))]))]


def straight_step(q: np.ndarray, target: np.ndarray, max_delta: np.ndarray) -> np.ndarray:
    """One step from `q` towards `target` along the straight joint-space line: the whole delta
    scaled down to the per-joint bound (clipping joints one by one would bend the path)."""
    delta = target - q
    return q + delta * min(1.0, float(np.min(max_delta / np.maximum(np.abs(delta), 1e-9))))


def action_for(target: np.ndarray, q: np.ndarray, max_delta: np.ndarray) -> np.ndarray:
    """The action of the data set: target − q clipped per joint to ±max_delta."""
    return np.clip(target - q, -max_delta, max_delta)


def _progress(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="ep", desc="collect", leave=False, disable=None)  # None: terminals only


def collect(out_dir: str | Path, config: CollectConfig | None = None) -> dict[str, Any]:
    """Record `config.episodes` exploration episodes as rosbag2 MCAP shards under `out_dir`.

    Shards are recorded by `config.jobs` worker processes; episode i always gets seed `seed + i`,
    its policy from the same generator, and stamps from `i`, so the bags do not depend on `jobs`.

    Returns:
        A summary: episodes, transitions, block_moved_fraction (transitions where the block moved
        more than 2 mm, overall and per policy), how many demonstrations left the block at its goal,
        bytes on disk, wall time, shard paths. The same summary is written to
        `out_dir/collect_summary.json`.
    """
    config = config or CollectConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start_wall = time.monotonic()
    n_shards = -(-config.episodes // config.episodes_per_shard)
    jobs = min(config.jobs, n_shards)
    bar = _progress(config.episodes)
    shards: list[dict[str, Any]] = []
    try:
        if jobs == 1:
            results = (_record_shard(out_dir, config, i) for i in range(n_shards))
            for shard in results:
                shards.append(shard)
                if bar is not None:
                    bar.update(len(shard["episodes"]))
        else:
            ctx = multiprocessing.get_context("spawn")  # no forked MuJoCo / EGL state
            with ctx.Pool(jobs) as pool:
                tasks = [(out_dir, config, i) for i in range(n_shards)]
                for shard in pool.imap_unordered(_record_shard_args, tasks):
                    shards.append(shard)
                    if bar is not None:
                        bar.update(len(shard["episodes"]))
    finally:
        if bar is not None:
            bar.close()
    shards.sort(key=lambda sh: sh["path"])
    episodes = [ep for sh in shards for ep in sh["episodes"]]
    wall = time.monotonic() - start_wall
    moved = {p: [0, 0] for p in POLICIES}  # policy -> [moved transitions, transitions]
    for ep in episodes:
        moved[ep["policy"]][0] += ep["moved"]
        moved[ep["policy"]][1] += ep["transitions"]
    transitions = sum(n for _, n in moved.values())
    demos = [ep["block_to_goal_m"] for ep in episodes if ep["policy"] == "demo"]
    success_m = EvalConfig().success_m
    size = sum(f.stat().st_size for sh in shards for f in Path(sh["path"]).iterdir())
    summary = {
        "episodes": config.episodes,
        "steps": config.episodes * config.steps_per_episode,
        "transitions": transitions,
        "block_moved_fraction": sum(k for k, _ in moved.values()) / max(transitions, 1),
        "block_moved_fraction_by_policy": {p: k / n for p, (k, n) in moved.items() if n},
        "transitions_by_policy": {p: n for p, (_, n) in moved.items()},
        "demonstrations": {
            "episodes": len(demos),
            "block_at_goal": int(sum(d < success_m for d in demos)),
            "block_at_goal_fraction": float(np.mean([d < success_m for d in demos])) if demos else 0.0,
            "success_m": success_m,
            "final_block_to_goal_cm_median": float(100 * np.median(demos)) if demos else None,
        },
        "bytes": size,
        "bytes_per_transition": size / max(transitions, 1),
        "wall_s": round(wall, 3),
        "jobs": jobs,
        "transitions_per_s": round(transitions / max(wall, 1e-9), 1),
        "image_size": [config.sim.image_height, config.sim.image_width],
        "compression": config.compression,
        "shards": [sh["path"] for sh in shards],
    }
    (out_dir / "collect_summary.json").write_text(json.dumps(summary, indent=2))
    log.info("collected %d transitions in %.1f s into %s", transitions, wall, out_dir)
    return summary


def _record_shard_args(args: tuple[Path, CollectConfig, int]) -> dict[str, Any]:
    return _record_shard(*args)


def _record_shard(out_dir: Path, config: CollectConfig, index: int) -> dict[str, Any]:
    """Record shard `index` (its episodes, in order) into `out_dir/shard_NNNN`."""
    period_ns = round(config.control_period * 1e9)
    span_ns = config.steps_per_episode * period_ns + round(config.episode_gap * 1e9)
    first = index * config.episodes_per_shard
    episodes = range(first, min(first + config.episodes_per_shard, config.episodes))
    writer = _open_shard(out_dir / f"shard_{index:04d}", config)
    episode_log: list[dict[str, Any]] = []
    with ArmSim(config.sim) as sim:
        max_delta = sim.velocity_limits * config.control_period
        try:
            for episode in episodes:
                seed = config.seed + episode
                rng = np.random.default_rng([config.seed, episode, 1])
                policy_name = choose_policy(config, rng)
                policy = _POLICY_CLASSES[policy_name](sim, config, rng)
                sim.reset(seed)
                offset_ns = episode * span_ns
                blocks = _run_episode(sim, writer, policy, config, offset_ns, max_delta)
                steps = np.linalg.norm(np.diff(blocks, axis=0), axis=1)
                episode_log.append(
                    {
                        "seed": seed,
                        "policy": policy_name,
                        "start_ns": offset_ns,
                        "moved": int((steps > MOVED_THRESHOLD).sum()),
                        "transitions": len(steps),
                        "block_to_goal_m": float(np.linalg.norm(blocks[-1] - sim.goal.block_pose[:2])),
                    }
                )
        finally:
            _close_shard(writer, episode_log)
    return {"path": str(writer.path), "episodes": episode_log}


def _open_shard(path: Path, config: CollectConfig) -> BagWriter:
    writer = BagWriter(
        path, config.compression, {"ami_ros.collect_config": json.dumps(dataclasses.asdict(config))}
    )
    writer.add_topic(IMAGE_TOPIC, m.IMAGE, qos=[default_qos(depth=2)])
    writer.add_topic(JOINT_STATE_TOPIC, m.JOINT_STATE)
    writer.add_topic(COMMAND_TOPIC, m.JOINT_TRAJECTORY)
    if config.ground_truth:
        writer.add_topic(OBJECT_TOPIC, m.POSE_STAMPED)
        writer.add_topic(END_EFFECTOR_TOPIC, m.POSE_STAMPED)
    return writer


def _close_shard(writer: BagWriter, episode_log: list[dict[str, Any]]) -> None:
    writer.set_custom_data("ami_ros.episodes", json.dumps(episode_log))
    writer.close()


def _run_episode(
    sim: ArmSim,
    writer: BagWriter,
    policy: Callable[[np.ndarray], np.ndarray],
    config: CollectConfig,
    offset_ns: int,
    max_delta: np.ndarray,
) -> np.ndarray:
    """Run and record one episode from the current reset.

    Returns:
        (T, 2) block positions.
    """
    blocks = np.empty((config.steps_per_episode, 2))
    names = sim.joint_names
    for k in range(config.steps_per_episode):
        s = sim.state()
        stamp = offset_ns + round(s.time * 1e9)
        writer.write(IMAGE_TOPIC, stamp, m.image(sim.render(), stamp))
        writer.write(JOINT_STATE_TOPIC, stamp, m.joint_state(names, s.qpos, s.qvel, s.effort, stamp))
        if config.ground_truth:
            yaw = float(s.qpos.sum())
            ee_quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
            writer.write(OBJECT_TOPIC, stamp, m.pose_stamped(s.block_pose[:3], s.block_pose[3:], stamp))
            writer.write(END_EFFECTOR_TOPIC, stamp, m.pose_stamped(s.end_effector, ee_quat, stamp))
        command = sim.command(s.qpos + action_for(policy(s.qpos), s.qpos, max_delta))
        writer.write(COMMAND_TOPIC, stamp, m.joint_trajectory(names, command, config.control_period, stamp))
        blocks[k] = s.block_pose[:2]
        sim.advance(config.control_period)
    return blocks
