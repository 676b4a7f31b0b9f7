"""ROS parameters declared from, and read back into, the config dataclasses of `ami_ros.config`.

Defaults and validation live in one place: every field of a dataclass becomes one parameter with
the field's default (tuples become ROS arrays) and its docstring as description; reading goes
through `ami_ros.config.from_dict`, so a wrong type or value fails exactly as in a YAML file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import typing
from collections.abc import Collection
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node

from ami_ros.config import ConfigError, field_docs, from_dict
from ami_ros.ros.fault_log import FaultLog

T = TypeVar("T")


def declare_from_dataclass(
    node: Node, cls: type, prefix: str = "", dynamic: Collection[str] = (), defaults: Any = None
) -> None:
    """Declare one parameter `prefix + field` per field of dataclass `cls`, with the field's default.

    Parameters are dynamically typed (`-p rate:=2` for a float field is fine: `read_dataclass`
    checks and converts) and read-only after start-up except the fields named in `dynamic`. A
    field that is itself a dataclass becomes its fields under `prefix + field + "."`. When `cls`
    has a `robot` field and the node is given a robot file, the robot's values are the defaults of
    the fields it sets (joints, limits, ...), so `ros2 param get` shows what the node uses.
    """
    docs = field_docs(cls)
    if defaults is None and "robot" in {f.name for f in dataclasses.fields(cls)}:
        robot_descriptor = ParameterDescriptor(description=docs.get("robot", ""), dynamic_typing=True)
        robot = node.declare_parameter(prefix + "robot", "", robot_descriptor).value
        if isinstance(robot, str) and robot:
            from ami_ros.robot import load_robot, robot_file

            with contextlib.suppress(ConfigError):  # `read_dataclass` reports it, naming the file
                defaults = load_robot(robot_file(robot)).apply(cls())
    for field in dataclasses.fields(cls):
        if field.name == "robot" and node.has_parameter(prefix + "robot"):
            continue
        if defaults is not None:
            default = getattr(defaults, field.name)
        elif field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        if dataclasses.is_dataclass(default):
            declare_from_dataclass(node, type(default), f"{prefix}{field.name}.", dynamic, default)
            continue
        if isinstance(default, tuple):
            default = list(default)
        descriptor = ParameterDescriptor(
            description=docs.get(field.name, ""),
            dynamic_typing=True,
            read_only=False,  # enforced by `_refuse_invalid`, after the value is checked
        )
        node.declare_parameter(prefix + field.name, default, descriptor)
    _guard(node, cls, prefix, dynamic)  # after declaring: a declaration runs the callbacks too


def read_dataclass(node: Node, cls: type[T], prefix: str = "") -> T:
    """Build dataclass `cls` from the node's parameters `prefix + field`.

    Raises:
        ConfigError: a parameter has a wrong type or an invalid value (the message names it).
    """
    return from_dict(cls, _read_fields(node, cls, prefix), prefix=prefix)


def _read_fields(node: Node, cls: type, prefix: str) -> dict[str, Any]:
    """The parameters of `cls`'s fields as a mapping; a dataclass field as a nested mapping."""
    hints = typing.get_type_hints(cls)
    data = {}
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            data[field.name] = _read_fields(node, hints[field.name], f"{prefix}{field.name}.")
        else:
            data[field.name] = plain(node.get_parameter(prefix + field.name).value)
    return data


def _guard(node: Node, cls: type, prefix: str, dynamic: Collection[str]) -> None:
    """Register `cls`'s parameters with the node's guard, installing the guard on first use."""
    sections = node.__dict__.setdefault("_ami_param_sections", [])
    if not sections:
        node.add_on_set_parameters_callback(functools.partial(_refuse_invalid, node))
    sections.append((cls, prefix, frozenset(dynamic)))


def _refuse_invalid(node: Node, params: list) -> SetParametersResult:
    """Refuse a run-time change (`ros2 param set`, a SetParameters call) that fails validation.

    The dataclass of every changed parameter is rebuilt with the proposed values, so its type and
    `__post_init__` checks run exactly as at start-up: `max_age:=-1`, `planner.samples:=0`,
    `safety.max_step:=nan` or an unknown execution provider are refused with that reason. A valid
    value for a field that is not dynamic is refused as read-only (the node would not apply it).
    """
    changes = {p.name: plain(p.value) for p in params}
    for cls, prefix, dynamic in node.__dict__["_ami_param_sections"]:
        fields = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default_factory is dataclasses.MISSING or not dataclasses.is_dataclass(f.default_factory())
        ]
        touched = [f for f in fields if prefix + f in changes]
        if not touched or not all(node.has_parameter(prefix + f) for f in fields):
            continue
        data = {f: changes.get(prefix + f, plain(node.get_parameter(prefix + f).value)) for f in fields}
        try:
            from_dict(cls, data, prefix=prefix)
        except (ConfigError, TypeError, ValueError) as err:
            return _refuse(node, f"invalid value: {err}")
        frozen = [prefix + f for f in touched if f not in dynamic]
        if frozen:
            return _refuse(node, f"{', '.join(frozen)}: read-only at run time (valid; set it at start-up)")
    return SetParametersResult(successful=True)


def _refuse(node: Node, reason: str) -> SetParametersResult:
    """The refusal, also in the node's log (throttled per kind) and its /diagnostics `last_error`."""
    text = f"parameter change refused: {reason}"
    try:
        node._error(text)  # type: ignore[attr-defined]  # the node's own path: counted, in diagnostics
    except AttributeError:  # a node without one, or not configured yet
        FaultLog.of(node)(text, "warning")
    return SetParametersResult(successful=False, reason=reason)


def plain(value: Any) -> Any:
    """A parameter value as plain Python (ROS arrays arrive as array.array or numpy arrays)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return value
    return [v.item() if hasattr(v, "item") else v for v in value]
