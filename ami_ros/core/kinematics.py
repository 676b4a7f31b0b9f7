"""Kinematics of a serial chain read from the robot's URDF (numpy and the standard library's XML
parser; no ROS), and the approach subgoals the controller plans through (`approach_waypoints`).

A goal image fixes the arm's final pose, and for a push that pose is the pusher at the block's
trailing face, pointing along the push: the block started behind it, on the tool axis. So, as a
grasp is approached from a pre-grasp pose, the controller first steers the joints to poses set
back from the goal pose along the tool axis (farthest first) and then in along that axis to the
goal pose itself. The same subgoals serve every goal image; for a reach they are a short detour.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ami_ros.config import ApproachConfig, ConfigError

_PACKAGE = Path(__file__).resolve().parents[1]  # relative URDF paths are under the ami_ros package


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` about the unit `axis` (Rodrigues)."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
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
        by_child = {j.find("child").get("link"): j for j in root.iter("joint") if j.find("child") is not None}
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
            link = j.find("parent").get("link")
        missing = [names[i] for i in sorted(set(range(len(names))) - {s.index for s in steps})]
        if missing:
            raise ConfigError(f"{path}: joints {missing} are not between the root and {tip_link!r}")
        self.joints: tuple[_Joint, ...] = tuple(reversed(steps))

    def forward(self, q: np.ndarray) -> np.ndarray:
        """(4, 4) pose of the tip link in the root link's frame at joint positions `q` (J,)."""
        t = np.eye(4)
        for j in self.joints:
            t = t @ j.origin
            if j.kind in ("revolute", "continuous"):
                move = np.eye(4)
                move[:3, :3] = _rotation(j.axis, float(q[j.index]))
                t = t @ move
            elif j.kind == "prismatic":  # t is this loop's own product: safe to update in place
                t[:3, 3] += t[:3, :3] @ j.axis * float(q[j.index])
        return t

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

        def error(q: np.ndarray) -> np.ndarray:
            t = self.forward(q)
            return np.r_[position - t[:3, 3], axis_weight * np.cross(t[:3, :3] @ tool_axis, direction)]

        for _ in range(iterations):
            e = error(q)
            if np.linalg.norm(e) < 5e-4:
                break
            jac = np.stack([(e - error(q + step)) / eps for step in steps], 1)
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
