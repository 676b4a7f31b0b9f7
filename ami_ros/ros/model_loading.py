"""Open the world model for a node from its `runtime.*` parameters (shared by the three nodes)."""

from __future__ import annotations

from collections.abc import Sequence

from rclpy.node import Node

from ami_ros.config import ConfigError, RuntimeConfig
from ami_ros.ros.params import declare_from_dataclass, read_dataclass
from ami_ros.runtime import ModelLoadError, WorldModelRuntime, default_model_dir, load_model
from ami_ros.runtime.world_model import GRAPHS


def declare_runtime(node: Node) -> None:
    """Declare the `runtime.*` parameters (a lifecycle node does this at construction)."""
    declare_from_dataclass(node, RuntimeConfig, prefix="runtime.")


def load_node_model(
    node: Node,
    joint_names: tuple[str, ...],
    graphs: Sequence[str] = GRAPHS,
    control_period: float | None = None,
    limits: tuple[Sequence[float], Sequence[float]] | None = None,
) -> WorldModelRuntime:
    """Load and warm up the model's `graphs` from `runtime.*` (declared here if not yet), checked
    against the robot: its joint names and, where given, its control period and (lower, upper)
    joint limits. Logs the execution providers used.

    Raises:
        ConfigError: the model is missing, corrupt or does not fit the robot (the message says how).
    """
    if not node.has_parameter("runtime.model_dir"):
        declare_runtime(node)
    cfg = read_dataclass(node, RuntimeConfig, prefix="runtime.")
    path = cfg.model_dir or str(default_model_dir())
    try:
        runtime = load_model(
            path,
            expected_joint_names=joint_names,
            providers=cfg.providers,
            intra_op_threads=cfg.intra_op_threads,
            spin_wait=cfg.spin_wait,
            trt_cache_dir=cfg.trt_cache_dir or None,
            trt_fp16=cfg.trt_fp16,
            graphs=graphs,
            expected_control_period=control_period,
            expected_limits=limits,
        )
    except ModelLoadError as err:
        raise ConfigError(f"runtime.model_dir: {err}") from None
    providers = sorted(set(runtime.providers.values()))
    node.get_logger().info(
        f"model {path} ({', '.join(runtime.sessions)}) loaded and warmed up on {', '.join(providers)}"
    )
    return runtime
