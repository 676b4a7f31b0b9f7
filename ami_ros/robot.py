"""The robot, described once: a robot file plus its URDF.

A robot file (`config/robots/<arm>.robot.yaml`) names the URDF, the joints the model controls (in
model order), the control period and the topics; the URDF gives each joint's position limits and
velocity. Everything else is derived here, not typed: the action limits (velocity x control
period: the most a joint moves in one period), the range the model normalises joints by, and the
robot fields of every config dataclass (`RobotDescription.apply`). One check says whether a
model fits the robot (`model_mismatch`): loading a model runs it, and so does
`ami-ros train --robot-config` before training. A config with a `robot` field (the node configs,
a training config) names its robot file there, and `ami_ros.config.from_dict` applies it.

No ROS and no torch here.

    robot:
      urdf: ur5e.urdf                 # relative to this file's folder, else to the ami_ros package
      joints: [shoulder_pan_joint, ...]
      control_period: 0.1
      joint_lower: [...]              # optional: tighter than the URDF's (e.g. above the table)
      joint_upper: [...]
      velocity_limits: [...]          # optional: slower than the URDF's
      image_topic: /camera/image_raw  # optional topics (DataConfig's defaults otherwise)
"""

from __future__ import annotations

import dataclasses
import typing
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ami_ros.config import ConfigError
from ami_ros.paths import share_file

T = TypeVar("T")
_PACKAGE = Path(__file__).resolve().parent
TOPIC_KEYS = ("image_topic", "joint_state_topic", "command_topic", "command_type")
"""Optional robot-file keys that set the training data's topics (`DataConfig`)."""
_KEYS = {"urdf", "joints", "control_period", "joint_lower", "joint_upper", "velocity_limits", *TOPIC_KEYS}


@dataclasses.dataclass(frozen=True)
class RobotDescription:
    """One arm: its joints in model order, their limits and velocities, its control period."""

    name: str
    urdf: Path
    joint_names: tuple[str, ...]
    joint_lower: tuple[float, ...]
    """Lower position limits, rad (the URDF's, or the robot file's tighter ones)."""
    joint_upper: tuple[float, ...]
    velocity_limits: tuple[float, ...]
    """rad/s."""
    control_period: float
    """Seconds between commands (the model's action period)."""
    topics: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if not n or {len(self.joint_lower), len(self.joint_upper), len(self.velocity_limits)} != {n}:
            raise ConfigError(f"robot {self.name}: one lower, upper and velocity limit per joint")
        if any(lo >= hi for lo, hi in zip(self.joint_lower, self.joint_upper, strict=True)):
            raise ConfigError(f"robot {self.name}: every lower limit must be below its upper limit")
        if min(self.velocity_limits) <= 0 or self.control_period <= 0:
            raise ConfigError(f"robot {self.name}: velocity limits and control_period must be > 0")

    @property
    def action_limits(self) -> tuple[float, ...]:
        """The most each joint moves in one control period: velocity limit x period, rad."""
        return tuple(round(v * self.control_period, 9) for v in self.velocity_limits)

    @property
    def joint_limits(self) -> tuple[float, ...]:
        """The symmetric range the model normalises each joint by: max(|lower|, |upper|), rad."""
        return tuple(max(abs(lo), abs(hi)) for lo, hi in zip(self.joint_lower, self.joint_upper, strict=True))

    def values(self) -> dict[str, Any]:
        """The robot's value of each config field name it sets (see `apply`)."""
        return {
            "joint_names": self.joint_names,
            "joint_lower": self.joint_lower,
            "joint_upper": self.joint_upper,
            "velocity_limits": self.velocity_limits,
            "control_period": self.control_period,
            "joint_limits": self.joint_limits,
            "action_limits": self.action_limits,
            **self.topics,
        }

    def apply(self, config: T) -> T:
        """`config` (a config dataclass) with every robot field set from this robot, in nested
        config dataclasses too (a training config's `model` and `data`, a controller's sections).

        Raises:
            ConfigError: the result is invalid (the config's own check names why).
        """
        values = self.values()
        changes: dict[str, Any] = {}
        hints = typing.get_type_hints(type(config))
        for field in dataclasses.fields(config):  # type: ignore[arg-type]
            value = getattr(config, field.name)
            if dataclasses.is_dataclass(hints[field.name]) and dataclasses.is_dataclass(value):
                changes[field.name] = self.apply(value)
            elif field.name in values:
                changes[field.name] = values[field.name]
        if hasattr(config, "robot"):
            changes["robot"] = ""  # applied: the config now holds the values, not a reference
        return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def urdf_joints(path: Path) -> dict[str, tuple[float, float, float]]:
    """name -> (lower, upper, velocity) of the URDF's revolute and prismatic joints."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise ConfigError(f"robot URDF {path}: {err}") from None
    joints = {}
    for joint in root.iter("joint"):
        limit = joint.find("limit")
        if joint.get("type") in ("revolute", "prismatic") and limit is not None:
            values = (limit.get("lower"), limit.get("upper"), limit.get("velocity"))
            if None in values:
                raise ConfigError(f"robot URDF {path}: joint {joint.get('name')} lacks lower/upper/velocity")
            joints[joint.get("name", "")] = tuple(float(v) for v in values)  # type: ignore[arg-type]
    return joints  # type: ignore[return-value]


def _resolve(path: str, folder: Path) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    return folder / candidate if (folder / candidate).exists() else _PACKAGE / candidate


def robot_file(name: str | Path) -> Path:
    """A robot file named in a config: a path (absolute or from the working directory), else a
    file of the package's `config/robots/` (wherever the package is installed)."""
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return share_file("config", "robots", str(name))


def load_robot(path: str | Path) -> RobotDescription:
    """Read a robot file and its URDF.

    Raises:
        ConfigError: a missing or unknown key, a joint the URDF lacks, a limit wider than the URDF's.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"robot file {path}: {err}") from None
    robot = data.get("robot") if isinstance(data, dict) else None
    if not isinstance(robot, dict):
        raise ConfigError(f"robot file {path}: needs a `robot:` mapping")
    unknown, missing = set(robot) - _KEYS, {"urdf", "joints", "control_period"} - set(robot)
    if unknown or missing:
        raise ConfigError(f"robot file {path}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
    urdf = _resolve(str(robot["urdf"]), path.parent)
    limits = urdf_joints(urdf)
    names = tuple(str(n) for n in robot["joints"])
    absent = [n for n in names if n not in limits]
    if absent:
        raise ConfigError(f"robot file {path}: joints {absent} are not movable joints of {urdf}")
    lower, upper, velocity = (tuple(limits[n][i] for n in names) for i in range(3))
    chosen = {}
    for key, urdf_values in (("joint_lower", lower), ("joint_upper", upper), ("velocity_limits", velocity)):
        values = tuple(float(v) for v in robot.get(key, urdf_values))
        if len(values) != len(names):
            raise ConfigError(f"robot file {path}: {key} needs {len(names)} values, got {len(values)}")
        wider = [
            n for n, v, u in zip(names, values, urdf_values, strict=True)
            if (v < u - 1e-4 if key == "joint_lower" else v > u + 1e-4)  # 1e-4: rounding of typed limits
        ]  # fmt: skip
        if wider:
            raise ConfigError(f"robot file {path}: {key} of {wider} goes beyond the URDF's ({urdf})")
        chosen[key] = values
    topics = {k: str(robot[k]) for k in TOPIC_KEYS if k in robot}
    name = path.name.removesuffix(".robot.yaml").removesuffix(".yaml")
    period = float(robot["control_period"])
    return RobotDescription(name, urdf, names, control_period=period, topics=topics, **chosen)


def model_mismatch(
    joint_names: Sequence[str],
    control_period: float | None,
    limits: tuple[Sequence[float], Sequence[float]] | None,
    model_joint_names: Sequence[str],
    model_control_period: float,
    model_joint_limits: Sequence[float],
) -> str | None:
    """Why a model does not fit a robot, or None when it does: the one "model fits this robot" check.

    The robot's joint names and order must be the model's; its control period the model's (the
    model's actions are deltas over its own period); its (lower, upper) limits within the range
    the model normalises each joint by. `control_period` or `limits` None: not checked.
    """
    if list(joint_names) != list(model_joint_names):
        return f"joint names mismatch: the robot has {list(joint_names)}, the model {list(model_joint_names)}"
    if (
        control_period is not None
        and abs(control_period - model_control_period) > 1e-6 * model_control_period
    ):
        return (
            f"control period mismatch: the robot's is {control_period} s, the model was trained on "
            f"{model_control_period} s actions"
        )
    if limits is None:
        return None
    lower, upper = limits
    if not len(lower) == len(upper) == len(model_joint_limits):
        return f"{len(model_joint_limits)} joint limits expected (the model's joints), got {len(lower)}"
    outside = [
        (name, bound)
        for name, lo, hi, bound in zip(model_joint_names, lower, upper, model_joint_limits, strict=True)
        if max(abs(lo), abs(hi)) > bound * (1 + 1e-6)
    ]
    if outside:
        names, bounds = [n for n, _ in outside], [b for _, b in outside]
        return f"joint limits of {names} reach beyond the range the model was trained on (+-{bounds} rad)"
    return None
