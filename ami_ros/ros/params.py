"""ROS parameters declared from, and read back into, the config dataclasses of `ami_ros.config`.

Defaults and validation live in one place: every field of a dataclass becomes one parameter with
the field's default (tuples become ROS arrays) and its docstring as description; reading goes
through `ami_ros.config.from_dict`, so a wrong type or value fails exactly as in a YAML file.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
from collections.abc import Collection
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from ami_ros.config import from_dict

T = TypeVar("T")


def declare_from_dataclass(node: Node, cls: type, prefix: str = "", dynamic: Collection[str] = ()) -> None:
    """Declare one parameter `prefix + field` per field of dataclass `cls`, with the field's default.

    Parameters are dynamically typed (`-p rate:=2` for a float field is fine: `read_dataclass`
    checks and converts) and read-only after start-up except the fields named in `dynamic`.
    """
    docs = _field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        if isinstance(default, tuple):
            default = list(default)
        descriptor = ParameterDescriptor(
            description=docs.get(field.name, ""),
            dynamic_typing=True,
            read_only=field.name not in dynamic,
        )
        node.declare_parameter(prefix + field.name, default, descriptor)


def read_dataclass(node: Node, cls: type[T], prefix: str = "") -> T:
    """Build dataclass `cls` from the node's parameters `prefix + field`.

    Raises:
        ConfigError: a parameter has a wrong type or an invalid value (the message names it).
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    data = {name: plain(node.get_parameter(prefix + name).value) for name in names}
    return from_dict(cls, data, prefix=prefix)


def plain(value: Any) -> Any:
    """A parameter value as plain Python (ROS arrays arrive as array.array or numpy arrays)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return value
    return [v.item() if hasattr(v, "item") else v for v in value]


@functools.cache
def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (`x: int = 0` followed by `\"\"\"doc\"\"\"`) of a dataclass, by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for stmt, nxt in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs
