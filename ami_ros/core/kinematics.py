"""Kinematics of a serial chain read from the robot's URDF (numpy and the standard library's XML
parser; no ROS), and the approach subgoals the controller plans through (`approach_waypoints`).

A goal image fixes the arm's final pose, and for a push that pose is the pusher at the block's
trailing face, pointing along the push: the block started behind it, on the tool axis. So, as a
grasp is approached from a pre-grasp pose, the controller first steers the joints to poses set
back from the goal pose along the tool axis (farthest first) and then in along that axis to the
goal pose itself. The same subgoals serve every goal image; for a reach they are a short detour.

On the way to the first set-back pose the arm may sweep through the block it is to push, which lies
on that axis somewhere between the goal's tip and the first pose. `approach_route` plans that way
round it: a path through joint space (`route`, RRT-connect) on which every link of the chain
(`Chain.skeleton`) keeps a clearance off that stretch of the axis. `ApproachPath` holds one
goal's route and set-back poses and says, from the measured joints, which one to steer for.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ami_ros.config import ApproachConfig, ConfigError

_PACKAGE = Path(__file__).resolve().parents[1]  # relative URDF paths are under the ami_ros package


def _skew(axis: np.ndarray) -> np.ndarray:
    """(3, 3) matrix of the cross product with `axis`."""
    x, y, z = axis
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` about the unit `axis` (Rodrigues)."""
    k = _skew(axis)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k


def _origin(element: ET.Element | None) -> np.ndarray:
    """(4, 4) transform of a URDF <origin xyz rpy> (identity when absent)."""
    t = np.eye(4)
    if element is None:
        return t
    roll, pitch, yaw = (float(v) for v in element.get("rpy", "0 0 0").split())
    t[:3, :3] = (
        _rotation(np.array([0.0, 0.0, 1.0]), yaw)
        @ _rotation(np.array([0.0, 1.0, 0.0]), pitch)
        @ _rotation(np.array([1.0, 0.0, 0.0]), roll)
    )
    t[:3, 3] = [float(v) for v in element.get("xyz", "0 0 0").split()]
    return t


@dataclass(frozen=True)
class _Joint:
    origin: np.ndarray  # (4, 4) parent link -> joint frame
    axis: np.ndarray  # (3,) unit axis in the joint frame
    kind: str  # revolute, continuous, prismatic or fixed
    index: int  # position in the chain's joint_names; -1 for a fixed joint


class Chain:
    """The joints from a URDF's root link to `tip_link`, moved by `joint_names` in that order.

    Raises:
        ConfigError: the file is not a URDF, the tip link is unknown, a named joint is not on the
            chain (or a movable joint of the chain is not named), or a joint type is unsupported.
    """

    def __init__(self, urdf: str | Path, tip_link: str, joint_names: Sequence[str]) -> None:
        path = Path(urdf).expanduser()
        path = path if path.is_absolute() else _PACKAGE / path
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as err:
            raise ConfigError(f"approach.urdf {path}: {err}") from None
        joints = root.iter("joint")
        by_child = {child.get("link"): j for j in joints if (child := j.find("child")) is not None}
        names, steps, link = list(joint_names), [], tip_link
        if link not in {lk.get("name") for lk in root.iter("link")}:
            raise ConfigError(f"approach.tip_link {tip_link!r} is not a link of {path}")
        while link in by_child:
            j = by_child[link]
            kind, name = j.get("type", ""), j.get("name", "")
            if kind not in ("revolute", "continuous", "prismatic", "fixed"):
                raise ConfigError(f"{path}: joint {name!r} of type {kind!r} is not supported")
            if kind != "fixed" and name not in names:
                raise ConfigError(f"{path}: joint {name!r} moves the tip but is not in joint_names {names}")
            axis_element = j.find("axis")
            xyz = axis_element.get("xyz", "1 0 0") if axis_element is not None else "1 0 0"  # URDF default
            axis = np.array([float(v) for v in xyz.split()])
            index = names.index(name) if kind != "fixed" else -1
            steps.append(_Joint(_origin(j.find("origin")), axis / np.linalg.norm(axis), kind, index))
            parent = j.find("parent")
            link = parent.get("link", "") if parent is not None else ""  # no parent: the chain ends
        missing = [names[i] for i in sorted(set(range(len(names))) - {s.index for s in steps})]
        if missing:
            raise ConfigError(f"{path}: joints {missing} are not between the root and {tip_link!r}")
        self.joints: tuple[_Joint, ...] = tuple(reversed(steps))

    def forward(self, q: np.ndarray) -> np.ndarray:
        """(4, 4) pose of the tip link in the root link's frame at joint positions `q` (J,)."""
        _, rot, pos = self._walk(np.asarray(q, dtype=float)[None])
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = rot[0], pos[0]
        return t

    def skeleton(self, q: np.ndarray) -> np.ndarray:
        """(N, K, 3): the root, then the origin of each joint's child link, the last one the tip's,
        at each of the joint positions `q` (N, J); consecutive points are the links as segments."""
        return np.stack(self._walk(np.atleast_2d(np.asarray(q, dtype=float)))[0], 1)

    def _walk(self, q: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Down the chain at joint positions `q` (N, J): every link origin passed ((N, 3) each, the
        root first), and the tip's rotation (N, 3, 3) and position (N, 3)."""
        rot, pos = np.broadcast_to(np.eye(3), (len(q), 3, 3)), np.zeros((len(q), 3))
        points = [pos]
        for j in self.joints:
            pos, rot = pos + rot @ j.origin[:3, 3], rot @ j.origin[:3, :3]
            if j.kind in ("revolute", "continuous"):
                k, a = _skew(j.axis), q[:, j.index, None, None]
                rot = rot + np.sin(a) * (rot @ k) + (1.0 - np.cos(a)) * (rot @ (k @ k))
            elif j.kind == "prismatic":
                pos = pos + (rot @ j.axis) * q[:, j.index, None]
            points.append(pos)
        return points, rot, pos

    def solve(
        self,
        q0: np.ndarray,
        position: np.ndarray,
        direction: np.ndarray,
        tool_axis: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        axis_weight: float,
        iterations: int = 30,
    ) -> tuple[np.ndarray, float]:
        """Joints near `q0` that put the tip at `position` with its `tool_axis` along `direction`
        (damped least squares, finite-difference Jacobian, within [lower, upper]); `axis_weight`:
        metres of position error that one radian of misalignment weighs (0: position only).

        Returns:
            The joint positions and the remaining position error (m).
        """
        q, eps = np.array(q0, dtype=float), 1e-6
        steps = eps * np.eye(len(q))  # one finite-difference step per joint

        def errors(qs: np.ndarray) -> np.ndarray:  # (N, J) -> (N, 6), one walk down the chain
            _, rot, pos = self._walk(qs)
            return np.hstack([position - pos, axis_weight * np.cross(rot @ tool_axis, direction)])

        for _ in range(iterations):
            e, *moved = errors(np.vstack([q, q + steps]))  # here, and one step along each joint
            if np.linalg.norm(e) < 5e-4:
                break
            jac = ((e - np.array(moved)) / eps).T
            q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), e), lower, upper)
        return q, float(np.linalg.norm(position - self.forward(q)[:3, 3]))


def approach_waypoints(
    chain: Chain, goal_joints: np.ndarray, config: ApproachConfig, lower: np.ndarray, upper: np.ndarray
) -> list[np.ndarray]:
    """Joint positions set back from the goal pose along the tool axis, farthest first: `waypoints`
    poses evenly spaced up to `distance` m behind the goal's tip. Where the set-back line leaves
    the arm's reach (IK error over `max_ik_error`) the approach starts from the last reachable pose."""
    axis = np.asarray(config.tool_axis, float) / np.linalg.norm(config.tool_axis)
    goal = chain.forward(goal_joints)
    tip, direction = goal[:3, 3], goal[:3, :3] @ axis
    out, q = [], np.asarray(goal_joints, float)
    for setback in np.linspace(0.0, config.distance, config.waypoints + 1)[1:]:
        q, err = chain.solve(q, tip - setback * direction, direction, axis, lower, upper, config.axis_weight)
        if err > config.max_ik_error:
            break
        out.append(q.astype(np.float32))
    return out[::-1]


def _segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Shortest distance between segments p0-p1 and q0-q1 ((..., 3) each, broadcast; q0 != q1)."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e = (d1 * d1).sum(-1), (d2 * d2).sum(-1)
    b, c, f = (d1 * d2).sum(-1), (d1 * r).sum(-1), (d2 * r).sum(-1)
    denom = a * e - b * b
    s = np.where(denom > 1e-12, np.clip((b * f - c * e) / np.maximum(denom, 1e-12), 0.0, 1.0), 0.0)
    t = (b * s + f) / e
    a = np.maximum(a, 1e-12)  # a zero-length p segment: any s is its one point
    s = np.where(t < 0, np.clip(-c / a, 0.0, 1.0), np.where(t > 1, np.clip((b - c) / a, 0.0, 1.0), s))
    t = np.clip(t, 0.0, 1.0)
    return np.linalg.norm(p0 + d1 * s[..., None] - q0 - d2 * t[..., None], axis=-1)


def clearance(chain: Chain, q: np.ndarray, line: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(N,): how far the arm's links at joint positions `q` (N, J) keep from the segment `line`."""
    points = chain.skeleton(q)
    return _segment_distance(points[:, :-1], points[:, 1:], line[0], line[1]).min(axis=1)


def route(
    free: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    end: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    rng: np.random.Generator,
    step: float = 4.0,
    resolution: float = 0.3,
    iterations: int = 400,
    shortcuts: int = 60,
) -> list[np.ndarray] | None:
    """A path from `start` to `end` on which `free` ((N, J) -> (N,) bool) holds, checked every
    `resolution` on each coordinate (RRT-connect with steps of `step`, then `shortcuts` random
    shortcuts); None when none was found within `iterations`."""

    def clear(a: np.ndarray, b: np.ndarray) -> bool:
        n = max(int(np.ceil(np.max(np.abs(b - a)) / resolution)), 1)
        return bool(free(a + np.linspace(0.0, 1.0, n + 1)[1:, None] * (b - a)).all())

    def toward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        gap = np.linalg.norm(b - a)
        return b if gap <= step else a + (b - a) * step / gap

    trees = [([start], [-1]), ([end], [-1])]
    path = None
    for i in range(iterations):
        grow, other = trees[i % 2], trees[1 - i % 2]
        sample = rng.uniform(lower, upper)
        near = int(np.argmin(np.linalg.norm(np.array(grow[0]) - sample, axis=1)))
        new = toward(grow[0][near], sample)
        if not clear(grow[0][near], new):
            continue
        grow[0].append(new)
        grow[1].append(near)
        k = int(np.argmin(np.linalg.norm(np.array(other[0]) - new, axis=1)))
        while True:  # the other tree reaches for the new node
            nxt = toward(other[0][k], new)
            if not clear(other[0][k], nxt):
                break
            other[0].append(nxt)
            other[1].append(k)
            k = len(other[0]) - 1
            if np.array_equal(nxt, new):
                halves = [_branch(grow, len(grow[0]) - 1), _branch(other, k)]
                if i % 2:  # the end's tree grew this node
                    halves.reverse()
                path = halves[0][::-1] + halves[1][1:]
                break
        if path is not None:
            break
    if path is None:
        return None
    for _ in range(shortcuts):  # between random points of the path, not only its nodes
        lengths = np.r_[0.0, np.cumsum([np.linalg.norm(b - a) for a, b in itertools.pairwise(path)])]
        u, v = np.sort(rng.uniform(0.0, lengths[-1], 2))
        i, j = np.searchsorted(lengths, [u, v], side="right") - 1
        if i == j:
            continue
        a = path[i] + (path[i + 1] - path[i]) * (u - lengths[i]) / (lengths[i + 1] - lengths[i])
        b = path[j] + (path[j + 1] - path[j]) * (v - lengths[j]) / (lengths[j + 1] - lengths[j])
        if clear(a, b):
            path = [*path[: i + 1], a, b, *path[j + 1 :]]
    return path


def _branch(tree: tuple[list[np.ndarray], list[int]], k: int) -> list[np.ndarray]:
    """The nodes from node `k` back to the tree's root."""
    nodes = []
    while k >= 0:
        nodes.append(tree[0][k])
        k = tree[1][k]
    return nodes


def approach_route(
    chain: Chain,
    start: np.ndarray,
    waypoints: list[np.ndarray],
    goal_joints: np.ndarray,
    config: ApproachConfig,
    lower: np.ndarray,
    upper: np.ndarray,
    speed: np.ndarray,
    rng: np.random.Generator,
) -> list[np.ndarray] | None:
    """Joint positions from `start` to the first approach pose whose links keep `config.clearance`
    m off the approach line in front of it (from the goal's tip to 1.25 x `clearance` short of the
    first pose's tip: where a pushed object started), at most `config.route_spacing` control periods
    apart at `speed` (J,) rad per period; [] when the first pose is too near the goal for a line
    (the approach goes straight); None when no route was found in `route`'s iterations or it is
    longer than `config.max_route` periods: no approach, straight to the goal."""
    if not waypoints or config.clearance <= 0:
        return []
    tip = chain.forward(goal_joints)[:3, 3]
    first = chain.forward(waypoints[0])[:3, 3]
    back = first - tip
    span = float(np.linalg.norm(back))
    if span <= 1.25 * config.clearance:
        return []
    line = (tip, tip + back * (span - 1.25 * config.clearance) / span)
    # the line is only where the object may be: an arm already closer to it than that, or a first
    # approach pose closer to it, may come as close on the way
    ends = np.asarray([start, waypoints[0]], float)
    needed = min(config.clearance, 0.9 * float(clearance(chain, ends, line).min()))

    def free(u: np.ndarray) -> np.ndarray:  # in control periods at full speed, as the route is
        return clearance(chain, u * speed, line) > needed

    path = route(free, ends[0] / speed, ends[1] / speed, lower / speed, upper / speed, rng)
    if path is None:
        return None
    nodes = np.array(path)
    at = np.r_[0.0, np.cumsum(np.abs(np.diff(nodes, axis=0)).max(axis=1))]  # periods along the route
    if 0 < config.max_route < at[-1]:
        return None
    n = int(np.ceil(at[-1] / config.route_spacing))
    out = [np.interp(np.linspace(0.0, at[-1], n + 1)[1:-1], at, nodes[:, j]) for j in range(nodes.shape[1])]
    return list((np.stack(out, 1) * speed).astype(np.float32))  # the first approach pose follows


class ApproachPath:
    """The subgoals towards one goal, next first: a route's points, then the set-back poses.

    `plan` builds it once per goal from the joints the arm starts at; `target(q)` then says what
    to steer for from the measured joints q. On the route that is the point `lookahead` ahead of
    the next (never past the first set-back pose), so the arm keeps moving rather than stopping at
    each; the set-back poses are taken in turn. Subgoals up to the farthest one within `tolerance`
    of q are dropped. One definition serves the controller and eval's privileged push planner.
    """

    def __init__(self, config: ApproachConfig, route: list[np.ndarray], poses: list[np.ndarray]) -> None:
        self.config = config
        self.subgoals: list[np.ndarray] = [*route, *poses]
        self.route_left = len(route)  # the route's points lead `subgoals`

    @classmethod
    def plan(
        cls,
        chain: Chain,
        start: np.ndarray,
        goal_joints: np.ndarray,
        config: ApproachConfig,
        lower: np.ndarray,
        upper: np.ndarray,
        speed: np.ndarray,
        rng: np.random.Generator,
    ) -> ApproachPath:
        """The set-back poses of `goal_joints` and the route to them from `start` (see
        `approach_waypoints`, `approach_route`); empty (straight to the goal) without a route."""
        poses = approach_waypoints(chain, goal_joints, config, lower, upper)
        way = approach_route(chain, start, poses, goal_joints, config, lower, upper, speed, rng)
        return cls(config, [], []) if way is None else cls(config, way, poses)

    def target(self, q: np.ndarray) -> tuple[np.ndarray | None, bool]:
        """(the joints to steer for from the measured joints q, None once past the last subgoal:
        the goal itself; whether q has just passed a set-back pose, where a plan turns)."""
        a = self.config
        ahead = min(a.lookahead, self.route_left)
        window = self.subgoals[: ahead + 1]
        passed = [i for i, s in enumerate(window) if np.max(np.abs(q - s)) < a.tolerance]
        turned = False
        if passed:
            del self.subgoals[: passed[-1] + 1]
            turned = passed[-1] >= self.route_left
            self.route_left = max(self.route_left - passed[-1] - 1, 0)
            ahead = min(a.lookahead, self.route_left)
        if not self.subgoals:
            return None, turned
        return self.subgoals[min(ahead, len(self.subgoals) - 1)], turned
