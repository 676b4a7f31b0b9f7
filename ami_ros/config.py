"""Frozen configuration dataclasses, one per component, and a strict YAML loader.

No ROS and no torch here: every component, node and script reads its settings through these
classes, so defaults live in one place. The loader rejects unknown keys and wrong types, so a
typo in a YAML file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the offending key."""


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """The embedded MuJoCo robot (`ami_ros.sim`)."""

    image_width: int = 128
    """Camera image width in pixels."""
    image_height: int = 128
    """Camera image height in pixels."""
    camera: str = "scene"
    """MJCF camera to render: `scene` (third-person, default) or `top`."""
    shadows: bool = False
    """Render shadows and reflections (costs ~20x render time on CPU)."""
    task: str = "reach"
    """Goal sampled on reset: `reach` (an arm configuration) or `push` (a block pose)."""
    push_distance: tuple[float, float] = (0.05, 0.15)
    """Range of the block displacement of a push goal, metres."""
    block_radius: tuple[float, float] = (0.2, 0.42)
    """Distance range of the block's start from the arm base, metres."""

    def __post_init__(self) -> None:
        if self.image_width < 16 or self.image_height < 16:
            raise ConfigError(
                f"image size must be at least 16x16, got {self.image_width}x{self.image_height}"
            )
        if self.camera not in ("scene", "top"):
            raise ConfigError(f"camera must be 'scene' or 'top', got {self.camera!r}")
        if self.task not in ("reach", "push"):
            raise ConfigError(f"task must be 'reach' or 'push', got {self.task!r}")
        lo, hi = self.push_distance
        if not 0.0 < lo <= hi:
            raise ConfigError(f"push_distance must satisfy 0 < min <= max, got {self.push_distance}")
        lo, hi = self.block_radius
        if not 0.1 <= lo <= hi <= 0.48:
            raise ConfigError(f"block_radius must lie within [0.1, 0.48] m, got {self.block_radius}")


@dataclasses.dataclass(frozen=True)
class SimNodeConfig:
    """`sim_node`: the embedded robot on ROS 2, with the interfaces of a gz_ros2_control robot."""

    seed: int = 0
    """Episode seed; setting this parameter at run time resets the episode."""
    real_time_factor: float = 1.0
    """Target sim-time / wall-time ratio; 0 runs as fast as the machine allows."""
    control_rate: float = 100.0
    """Controller update rate in Hz (trajectory interpolation, joint_states)."""
    camera_rate: float = 30.0
    """Camera frame rate in Hz of simulated time."""
    publish_clock: bool = True
    """Publish /clock and stamp every message with simulated time (as Gazebo does)."""
    frame_id: str = "world"
    """Frame of the ground-truth poses."""
    camera_frame_id: str = "camera_optical_frame"
    """Frame of camera/image_raw and camera/camera_info."""
    diagnostics_period: float = 1.0
    """Seconds between /diagnostics messages."""
    position_tolerance: float = 0.02
    """Joint-limit tolerance (rad) when validating commanded positions."""

    def __post_init__(self) -> None:
        if self.real_time_factor < 0:
            raise ConfigError(f"real_time_factor must be >= 0, got {self.real_time_factor}")
        if not 1.0 <= self.control_rate <= 1000.0:
            raise ConfigError(f"control_rate must be in [1, 1000] Hz, got {self.control_rate}")
        if not 0.0 < self.camera_rate <= self.control_rate:
            raise ConfigError(f"camera_rate must be in (0, control_rate], got {self.camera_rate}")
        if self.diagnostics_period <= 0:
            raise ConfigError(f"diagnostics_period must be > 0, got {self.diagnostics_period}")


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` converted to `annotation`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(annotation)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation in (int, bool, str):
        if type(value) is not annotation:
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_type(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _check_type(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, prefix=f"{key}.")
    raise ConfigError(f"{key}: unsupported field type {annotation!r}")


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"unknown key(s) for {cls.__name__}: {', '.join(prefix + k for k in unknown)}")
    kwargs = {k: _check_type(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def load_yaml(path: str | Path, cls: type[T], section: str | None = None) -> T:
    """Load `cls` from a YAML file, optionally from one top-level `section` of it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if section is not None:
        if not isinstance(data, dict) or section not in data:
            raise ConfigError(f"{path}: missing section {section!r}")
        data = data[section]
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
