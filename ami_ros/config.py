"""Frozen configuration dataclasses, one per component, and a strict YAML loader.

No ROS and no torch here: every component, node and script reads its settings through these
classes, so defaults live in one place. The loader rejects unknown keys and wrong types, so a
typo in a YAML file is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import math
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

# The embedded arm's robot fields: the defaults of every config. Its description is
# config/robots/tabletop_arm.robot.yaml + its URDF (test/unit/test_robot.py checks these equal it);
# a config takes another arm by naming that arm's robot file in its `robot` field (ami_ros.robot).
EMBEDDED_JOINTS = ("joint1", "joint2", "joint3", "joint4")
EMBEDDED_LOWER = (-1.9, -2.4, -2.4, -2.0)
EMBEDDED_UPPER = (1.9, 2.4, 2.4, 2.0)
EMBEDDED_VELOCITY = (1.5, 2.0, 2.5, 3.0)
EMBEDDED_PERIOD = 0.1
EMBEDDED_RANGE = tuple(max(abs(lo), abs(hi)) for lo, hi in zip(EMBEDDED_LOWER, EMBEDDED_UPPER, strict=True))
"""The range the model normalises each joint by, rad."""
EMBEDDED_ACTION_LIMITS = tuple(round(v * EMBEDDED_PERIOD, 9) for v in EMBEDDED_VELOCITY)
"""The most each joint moves in one control period (velocity x period), rad."""


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
    """Render shadows and reflections (much slower on CPU: `ami-ros bench` measures it)."""
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
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.real_time_factor < 0:
            raise ConfigError(f"real_time_factor must be >= 0, got {self.real_time_factor}")
        if not 1.0 <= self.control_rate <= 1000.0:
            raise ConfigError(f"control_rate must be in [1, 1000] Hz, got {self.control_rate}")
        if not 0.0 < self.camera_rate <= self.control_rate:
            raise ConfigError(f"camera_rate must be in (0, control_rate], got {self.camera_rate}")
        if self.diagnostics_period <= 0:
            raise ConfigError(f"diagnostics_period must be > 0, got {self.diagnostics_period}")


PRECISIONS = ("fp32", "bf16", "auto")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (`x: int = 0` followed by `\"\"\"doc\"\"\"`) of a dataclass, by field name.

    They document every field once: ROS parameter descriptions (`ros2 param describe`) and the
    generated reference page (`python -m ami_ros.docs`) both read them.
    """
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


def _require_finite(config: Any) -> None:
    """Raise ConfigError naming the first float field (or tuple element) of `config` that is NaN or
    infinite: comparisons with NaN are all false, so a range check alone lets it through."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{field.name}: expected a finite number, got {v!r}")


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` converted to `annotation`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(annotation)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
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
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
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
    config = cls(**kwargs)
    if getattr(config, "robot", ""):  # the robot file's values replace the robot fields
        from ami_ros.robot import load_robot, robot_file  # ami_ros.robot imports this module

        config = load_robot(robot_file(config.robot)).apply(config)  # type: ignore[attr-defined]
    return config


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


def load_ros_params(path: str | Path, node: str) -> dict[str, Any]:
    """The `ros__parameters` of `node` in a ROS 2 parameter file, nested as written.

    The section is found by the node's name: `node`, `/node`, `/**/node` or `/<namespace>/node`.
    Pick one config from it with `from_params`.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    for key, value in (data or {}).items() if isinstance(data, dict) else ():
        if str(key).rsplit("/", 1)[-1] == node:
            params = value.get("ros__parameters") if isinstance(value, dict) else None
            if not isinstance(params, dict):
                raise ConfigError(f"{path}: section {key!r} has no ros__parameters mapping")
            return params
    raise ConfigError(f"{path}: no parameters for node {node!r}")


def from_params(cls: type[T], params: dict[str, Any]) -> T:
    """Build dataclass `cls` from the keys of a node's parameters that are its fields.

    A node's section mixes several configs (its own, `ControllerConfig`, `runtime.*`); each
    takes its fields, with the same type and value checks as `from_dict`.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return from_dict(cls, {k: v for k, v in params.items() if k in names})


# ---------------------------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Reading rosbag2 recordings into synchronised (frame, joint state, action) sequences.

    Topic names are matched with or without the leading slash; a namespaced robot's bag needs its
    full names (`/robot1/camera/image_raw`).
    """

    image_topic: str = "/camera/image_raw"
    """sensor_msgs/Image topic (rgb8, bgr8 or mono8)."""
    joint_state_topic: str = "/joint_states"
    """sensor_msgs/JointState topic; joints are matched by name, in any order."""
    command_topic: str = "/arm_controller/joint_trajectory"
    """Topic of the joint-position commands sent to the robot."""
    command_type: str = "trajectory"
    """`trajectory` (trajectory_msgs/JointTrajectory, first point) or `forward` (Float64MultiArray)."""
    joint_names: tuple[str, ...] = EMBEDDED_JOINTS
    """Joint order of the `joints` and `actions` arrays (and of `forward` commands)."""
    control_period: float = EMBEDDED_PERIOD
    """Seconds between commands; a stamp gap above 2.5x this starts a new segment."""
    max_skew: float = 0.05
    """Largest |stamp difference| (s) between a command and its frame / joint state."""
    image_size: int = 64
    """Frames are resized to image_size x image_size (cv2.INTER_AREA), RGB."""
    min_synced_fraction: float = 0.5
    """A bag where fewer commands than this fraction find a frame and joint state is an error."""
    object_topic: str = "/sim/object_pose"
    """Optional ground truth (PoseStamped) of the block, for probes only; ignored when absent."""
    end_effector_topic: str = "/sim/end_effector_pose"
    """Optional ground truth (PoseStamped) of the end effector, for probes only."""

    def __post_init__(self) -> None:
        if self.command_type not in ("trajectory", "forward"):
            raise ConfigError(f"command_type must be 'trajectory' or 'forward', got {self.command_type!r}")
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise ConfigError(f"joint_names must be non-empty and unique, got {self.joint_names}")
        if self.control_period <= 0 or self.max_skew <= 0:
            raise ConfigError("control_period and max_skew must be > 0")
        if self.image_size < 8:
            raise ConfigError(f"image_size must be >= 8, got {self.image_size}")
        if not 0.0 <= self.min_synced_fraction <= 1.0:
            raise ConfigError(f"min_synced_fraction must be in [0, 1], got {self.min_synced_fraction}")


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """`ami-ros collect`: exploration of the embedded robot recorded as rosbag2 MCAP shards."""

    episodes: int = 800
    """Number of episodes; episode i is reset with seed `seed + i`."""
    steps_per_episode: int = 50
    """Control steps (frame, joint state, command) recorded per episode."""
    episodes_per_shard: int = 100
    """Episodes per bag directory (`shard_0000`, `shard_0001`, ...)."""
    seed: int = 0
    """Seed of the first episode; also seeds the exploration policy."""
    control_period: float = EMBEDDED_PERIOD
    """Seconds of simulated time between commands."""
    demo_fraction: float = 0.4
    """Fraction of episodes with goal-directed push demonstrations: the block pushed to the episode's
    push goal, then the arm to the goal pose (scripted, standing in for teleoperated demonstrations)."""
    push_fraction: float = 0.35
    """Fraction of episodes with scripted pushes of the block towards random points."""
    random_fraction: float = 0.15
    """Fraction of episodes with smooth random joint motion (Ornstein-Uhlenbeck deltas)."""
    probe_fraction: float = 0.0
    """Fraction of episodes with probes of the block: the tip driven near it, then chunks of equal
    random joint steps (the commands a chunked planner searches). The rest of the episodes reach
    random joint configurations across the limits."""
    probe_chunks: int = 4
    """Chunks of equal random steps per probe."""
    probe_chunk: int = 5
    """Control steps per chunk of a probe."""
    probe_std: float = 0.5
    """Std of a probe's random joint steps, as a fraction of the largest per-step delta."""
    ou_theta: float = 0.15
    """Mean reversion of the random-motion deltas per step."""
    ou_sigma: float = 0.4
    """Noise of the random-motion deltas per step, as a fraction of the largest per-step delta."""
    push_distance: tuple[float, float] = (0.04, 0.15)
    """Range of the distance (m) the pusher travels beyond first contact in a scripted push."""
    push_speed: float = 0.15
    """Pusher speed along the push line, m/s."""
    push_noise: float = 0.004
    """Std (m) of the noise added to each pusher waypoint."""
    episode_gap: float = 1.0
    """Seconds of stamp offset between episodes (the reader splits segments at such gaps)."""
    compression: str = "zstd"
    """MCAP chunk compression: `zstd`, `lz4` or `none`."""
    ground_truth: bool = True
    """Also record /sim/object_pose and /sim/end_effector_pose (probes and evaluation only)."""
    jobs: int = 1
    """Worker processes, each recording whole shards (the bags are the same for any number)."""
    sim: SimConfig = dataclasses.field(default_factory=lambda: SimConfig(task="push"))
    """The embedded robot (camera resolution, block placement)."""

    def __post_init__(self) -> None:
        if min(self.episodes, self.steps_per_episode - 1, self.episodes_per_shard) < 1:
            raise ConfigError("episodes and episodes_per_shard must be >= 1, steps_per_episode >= 2")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not 0.002 <= self.control_period <= 2.0:
            raise ConfigError(f"control_period must be in [0.002, 2] s, got {self.control_period}")
        fractions = (self.demo_fraction, self.push_fraction, self.random_fraction, self.probe_fraction)
        if min(fractions) < 0 or sum(fractions) > 1 + 1e-9:
            raise ConfigError(
                "demo_fraction, push_fraction, random_fraction, probe_fraction must be >= 0 with sum <= 1,"
                f" got {fractions}"
            )
        if min(self.probe_chunks, self.probe_chunk) < 1 or self.probe_std < 0:
            raise ConfigError("probe_chunks and probe_chunk must be >= 1, probe_std >= 0")
        if self.jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {self.jobs}")
        lo, hi = self.push_distance
        if not 0.0 < lo <= hi:
            raise ConfigError(f"push_distance must satisfy 0 < min <= max, got {self.push_distance}")
        if self.push_speed <= 0 or self.push_noise < 0 or self.ou_theta < 0 or self.ou_sigma < 0:
            raise ConfigError("push_speed must be > 0; push_noise, ou_theta and ou_sigma >= 0")
        if self.episode_gap < 2.5 * self.control_period:
            raise ConfigError(f"episode_gap must be >= 2.5 x control_period, got {self.episode_gap}")
        if self.compression not in ("zstd", "lz4", "none"):
            raise ConfigError(f"compression must be 'zstd', 'lz4' or 'none', got {self.compression!r}")


@dataclasses.dataclass(frozen=True)
class RecorderConfig:
    """`recorder_node` parameters."""

    topics: tuple[str, ...] = ("camera/image_raw", "joint_states", "arm_controller/joint_trajectory")
    """Topics to record; relative names resolve in the node's namespace."""
    output: str = ""
    """Bag directory to create (must not exist); default `rosbag2_YYYY_MM_DD-HH_MM_SS`."""
    compression: str = "zstd"
    """MCAP chunk compression: `zstd`, `lz4` or `none`."""
    discovery_period: float = 0.5
    """Seconds between looks at the graph for topics not subscribed yet."""

    def __post_init__(self) -> None:
        if not self.topics:
            raise ConfigError("topics must name at least one topic")
        if self.compression not in ("zstd", "lz4", "none"):
            raise ConfigError(f"compression must be 'zstd', 'lz4' or 'none', got {self.compression!r}")
        if self.discovery_period <= 0:
            raise ConfigError(f"discovery_period must be > 0, got {self.discovery_period}")


# ---------------------------------------------------------------------------- world model
@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """The JEPA world model (`ami_ros.world_model`): ViT encoder + FiLM-conv latent predictor.

    The latent of one frame is `(n_tokens + 1, latent_dim)` float32: `grid x grid` image patch tokens
    (row-major) followed by one proprio token, a fixed Fourier embedding of the joint positions.
    """

    image_size: int = 64
    """Square input image side in pixels (frames are resized to this before encoding)."""
    patch_size: int = 8
    """ViT patch side; `image_size / patch_size` is the latent grid side (8 -> 8x8 tokens)."""
    encoder_dim: int = 96
    """ViT width."""
    encoder_depth: int = 4
    """ViT blocks."""
    encoder_heads: int = 4
    """Attention heads per ViT block."""
    latent_dim: int = 16
    """Channels per latent token (>= number of joints)."""
    joint_names: tuple[str, ...] = EMBEDDED_JOINTS
    """Joint order of joint and action vectors."""
    joint_limits: tuple[float, ...] = EMBEDDED_RANGE
    """Symmetric joint position limits, rad (joint positions are normalised by them)."""
    action_limits: tuple[float, ...] = EMBEDDED_ACTION_LIMITS
    """Per-joint action bound: action = target - measured position, clipped to +- this (rad)."""
    history: int = 2
    """Latents the predictor sees (its memory)."""
    horizon: int = 5
    """Prediction steps in training (rollout loss) and in the fused rollout-cost graph."""
    predictor_channels: int = 32
    """Channels of the predictor's conv trunk on the latent grid."""
    predictor_blocks: int = 3
    """FiLM-conditioned 3x3 conv residual blocks (dilations 1, 2, 4, 1, 2, ...)."""
    predictor_cond_dim: int = 128
    """Width of the conditioning MLP (action + proprio history -> FiLM parameters)."""
    pose_channels: tuple[int, ...] = ()
    """Channels of the pixel pose network's stages (each halves the resolution) that gives the
    encoder's joint estimate; empty: the joint estimate comes from the image tokens."""

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size or self.image_size // self.patch_size < 2:
            raise ConfigError(f"image_size {self.image_size} must be a multiple (>= 2x) of patch_size")
        n = len(self.joint_names)
        if len(self.joint_limits) != n or len(self.action_limits) != n:
            raise ConfigError(
                f"joint_names, joint_limits and action_limits must have equal lengths, got "
                f"{n}, {len(self.joint_limits)}, {len(self.action_limits)}"
            )
        if min(self.joint_limits) <= 0 or min(self.action_limits) <= 0:
            raise ConfigError("joint_limits and action_limits must be > 0")
        if self.latent_dim < n:
            raise ConfigError(f"latent_dim must be >= the number of joints ({n}), got {self.latent_dim}")
        if self.encoder_dim % self.encoder_heads:
            raise ConfigError("encoder_dim must be a multiple of encoder_heads")
        if self.history < 1 or self.horizon < 1 or self.predictor_blocks < 1:
            raise ConfigError("history, horizon and predictor_blocks must be >= 1")
        if len(self.pose_channels) > 0 and (
            min(self.pose_channels) < 1 or self.image_size >> len(self.pose_channels) < 1
        ):
            raise ConfigError(
                f"pose_channels must be positive, at most log2(image_size) stages: {self.pose_channels}"
            )

    @property
    def grid(self) -> int:
        """Side of the latent token grid."""
        return self.image_size // self.patch_size

    @property
    def n_tokens(self) -> int:
        """Latent tokens per frame: grid**2 image tokens + 1 proprio token."""
        return self.grid**2 + 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the world model (`ami-ros train`)."""

    seed: int = 0
    """Seed of every generator (init, sampling, split)."""
    device: str = "auto"
    """`auto` (cuda if available, else cpu), `cpu`, `cuda` or `cuda:N`; under torchrun the local rank."""
    steps: int = 3000
    """Optimiser steps."""
    batch_size: int = 32
    """Windows per step, over all processes (under DDP each of N processes takes batch_size / N)."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to lr_min_ratio x lr)."""
    lr_min_ratio: float = 0.05
    """Final learning rate as a fraction of lr."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    weight_decay: float = 0.05
    """AdamW weight decay (matrices only)."""
    grad_clip: float = 1.0
    """Gradient norm clip; 0 disables."""
    ema_momentum: float = 0.99
    """EMA target-encoder momentum at step 0; rises to ema_momentum_end with a cosine."""
    ema_momentum_end: float = 0.999
    """EMA momentum at the last step."""
    w_teacher: float = 1.0
    """Teacher-forcing loss (one step from true history), relative MSE."""
    w_rollout: float = 1.0
    """Multi-step rollout loss (predictor fed its own predictions), relative MSE."""
    w_joints: float = 1.0
    """Joint-estimate losses (image head and predicted joints), MSE of limit-normalised joints."""
    w_variance: float = 1.0
    """VICReg variance hinge on encoder token dimensions."""
    w_covariance: float = 1.0
    """VICReg covariance (off-diagonal) on encoder token dimensions."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for evaluation (split by episode)."""
    eval_every: int = 500
    """Steps between validation k-step error measurements (0: only at the end)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (0: only at the end)."""
    num_threads: int = 2
    """torch CPU threads (per process)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    precision: str = "fp32"
    """`fp32`; `bf16`: the network's forward pass under bfloat16 autocast, its outputs and the losses
    in fp32 (weights, optimiser state and exports stay fp32), which halves an end-to-end step on a
    CPU with AVX512-BF16 or AMX and on recent GPUs; `auto`: bf16 where the device computes it
    natively, else fp32."""
    freeze_encoder: bool = False
    """Keep the encoder of `init_checkpoint` as it is and train the predictor only, on latents encoded
    once and cached in `latent_cache` (the encoder fields of `model` are then the checkpoint's)."""
    init_checkpoint: str = ""
    """A `train` / `train-pose` checkpoint to start from: its encoder (the encoder fields of `model`
    are then the checkpoint's) and, with `init_predictor`, its predictor. Required with
    `freeze_encoder`."""
    init_predictor: bool = True
    """With `init_checkpoint`: start from its predictor too (false: a fresh one, e.g. a larger one)."""
    latent_cache: str = ".cache/latents"
    """Folder of cached latents (named by a hash of encoder weights and data; rebuilt when missing)."""
    rollout_horizon: int = 0
    """Predicted steps per training window (0: `model.horizon`); cheap with a frozen encoder."""
    variance_beyond_joints: bool = False
    """End to end: VICReg's variance hinge holds what an MLP of the joint positions does not predict
    of the image tokens (`losses.ArmHead`, fitted two steps a batch with its own optimiser at 5x
    `lr`), so the tokens must vary with the scene beyond the arm; false: the tokens' own variance."""
    latent_whitening: float = 0.0
    """With `freeze_encoder`: > 0 measures the predictor's latent errors after whitening by the
    covariance of the cached latents' one-frame changes plus this value times the identity
    (`losses.change_whitening`), so the arm's few large directions do not drown the block's; 0: plain
    MSE."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be >= 1")
        if self.lr <= 0 or not 0 <= self.lr_min_ratio <= 1:
            raise ConfigError("lr must be > 0 and lr_min_ratio in [0, 1]")
        if not 0 <= self.ema_momentum <= self.ema_momentum_end <= 1:
            raise ConfigError("need 0 <= ema_momentum <= ema_momentum_end <= 1")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.rollout_horizon < 0:
            raise ConfigError(f"rollout_horizon must be >= 0, got {self.rollout_horizon}")
        if self.variance_beyond_joints and self.freeze_encoder:
            raise ConfigError("variance_beyond_joints trains the encoder: not with freeze_encoder")
        if self.latent_whitening < 0 or (self.latent_whitening > 0 and not self.freeze_encoder):
            raise ConfigError(
                f"latent_whitening must be >= 0 (> 0 only with freeze_encoder), got {self.latent_whitening}"
            )
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        check_precision(self.precision)


@dataclasses.dataclass(frozen=True)
class TrainRunConfig:
    """A training YAML file (`config/train*.yaml`): the `model`, `train` and `data` sections."""

    robot: str = ""
    """Robot file (`config/robots/<arm>.robot.yaml`: a name there, or a path): its joints, limits,
    control period and topics replace the `model` and `data` sections' (action limits derived as
    velocity x period). Empty: the sections' own values."""
    model: WorldModelConfig = dataclasses.field(default_factory=WorldModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    """How the robot's bags are read: its topics, command type and joint names (a real arm's, see
    config/train_ur5e_tiny.yaml); `data.image_size` is ignored, frames take `model.image_size`."""

    def __post_init__(self) -> None:
        if tuple(self.data.joint_names) != tuple(self.model.joint_names):
            raise ConfigError(
                f"data.joint_names {list(self.data.joint_names)} differ from model.joint_names "
                f"{list(self.model.joint_names)}: the bags' joints are the model's, in the same order"
            )


@dataclasses.dataclass(frozen=True)
class PoseTrainConfig:
    """`ami-ros train-pose`: fit the encoder's pixel pose network on a trained world model.

    Only the pose network learns; the JEPA encoder, predictor and latent stay exactly as trained.
    """

    pose_channels: tuple[int, ...] = (32, 64, 96, 128)
    """Channels of the pose network's stages (see `WorldModelConfig.pose_channels`)."""
    epochs: int = 20
    """Passes over the training frames."""
    batch_size: int = 128
    """Frames per step."""
    lr: float = 0.002
    """Peak learning rate (one-cycle schedule)."""
    weight_decay: float = 0.0001
    """AdamW weight decay."""
    seed: int = 0
    """Seed of the initialisation and the batch order."""
    num_threads: int = 2
    """torch CPU threads."""
    precision: str = "fp32"
    """`fp32`, `bf16` or `auto`, as `TrainConfig.precision`."""

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if not self.pose_channels or min(self.pose_channels) < 1:
            raise ConfigError(f"pose_channels must be non-empty and positive, got {self.pose_channels}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("epochs, batch_size and lr must be positive, weight_decay >= 0")


@dataclasses.dataclass(frozen=True)
class PolicyTrainConfig:
    """`ami-ros train-policy`: the planner's goal-conditioned proposal, learned from recordings by
    behaviour cloning with hindsight goals, on an exported model's latents (nothing else changes)."""

    channels: int = 64
    """Channels of the proposal network's convolutions over the token grid."""
    hidden: int = 256
    """Width of its head."""
    steps: int = 1500
    """Optimiser steps."""
    batch_size: int = 256
    """(step, goal) pairs per step."""
    lr: float = 0.001
    """Peak learning rate (cosine schedule)."""
    weight_decay: float = 0.0001
    """AdamW weight decay."""
    cost_weights: tuple[float, ...] = ()
    """Rollout-cost weights the planner uses with this proposal, written to the manifest's
    `rollout_cost.default_weights` (empty: keep the manifest's)."""
    max_goal_steps: int = 25
    """Hindsight goals are drawn uniformly 1 .. this many steps ahead in the same episode (about
    one approach and push of the recordings: further goals mix several pushes)."""
    stay_fraction: float = 0.1
    """Fraction of samples whose goal is the frame itself, with zero actions as the target: at
    its goal the proposal keeps still instead of pulling the planner off it."""
    val_fraction: float = 0.05
    """Episodes held out for the reported action error."""
    eval_every: int = 250
    """Steps between held-out evaluations."""
    seed: int = 0
    """Seed of the initialisation, the split and the sampled goals."""
    num_threads: int = 2
    """torch and onnxruntime CPU threads."""

    def __post_init__(self) -> None:
        if (
            min(self.channels, self.hidden, self.steps, self.batch_size, self.eval_every, self.max_goal_steps)
            < 1
        ):
            raise ConfigError(
                "channels, hidden, steps, batch_size, eval_every and max_goal_steps must be >= 1"
            )
        if any(not w >= 0 for w in self.cost_weights):
            raise ConfigError(f"cost_weights must be >= 0, got {self.cost_weights}")
        if not 0 <= self.stay_fraction < 1:
            raise ConfigError(f"stay_fraction must be in [0, 1), got {self.stay_fraction}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 < self.val_fraction < 1:
            raise ConfigError("lr must be > 0, weight_decay >= 0, val_fraction in (0, 1)")


@dataclasses.dataclass(frozen=True)
class SlotTrainConfig:
    """`ami-ros train-slot`: the scene slot, learned from recordings (camera, joint states,
    commands) beside an exported model (`ami_ros.world_model.scene_slot`).

    What the joints explain in the camera frame is learned first: a background image and an arm
    layer (colour, opacity) that a decoder renders from the joint states. The scene slot is where
    the rest of the frame is strongest; its forecast maps the slot, its last step and the wrist's
    and tip's path along commanded joints to the slot up to `horizon` frames ahead.
    """

    urdf: str = "sim/assets/tabletop_arm.urdf"
    """The robot's URDF (absolute, or relative to the ami_ros Python package), for the path of the
    wrist and tip along commanded joints."""
    tip_link: str = "end_effector"
    """The URDF link at the tip; the path uses it and its parent joint's origin (the wrist)."""
    image_size: int = 64
    """Frame size (px) the slot is read at."""
    window: int = 2
    """Half-width (px) of the window around the residual's peak that the slot is the centroid of."""
    renderer_steps: int = 3000
    """Optimiser steps of the arm layer."""
    renderer_batch: int = 64
    """Frames per arm-layer step."""
    horizon: int = 20
    """The furthest the forecast looks ahead (frames); it is trained for every k from 1 to this."""
    width: int = 256
    """Width of the forecast MLP's three hidden layers."""
    steps: int = 12000
    """Optimiser steps of the forecast."""
    batch_size: int = 512
    """Windows per forecast step."""
    lr: float = 0.002
    """Peak learning rate of both (one-cycle schedule)."""
    val_fraction: float = 0.1
    """Episodes held out for the forecast diagnostic."""
    seed: int = 0
    """Seed of the initialisation, the split and the batches."""
    num_threads: int = 2
    """torch CPU threads."""

    def __post_init__(self) -> None:
        if min(self.image_size, self.renderer_steps, self.renderer_batch, self.horizon, self.width) < 1:
            raise ConfigError("image_size, renderer_steps, renderer_batch, horizon and width must be >= 1")
        if min(self.steps, self.batch_size, self.num_threads, self.window) < 1:
            raise ConfigError("steps, batch_size, num_threads and window must be >= 1")
        if self.image_size % 8 or self.lr <= 0 or not 0 < self.val_fraction < 1:
            raise ConfigError("image_size must be a multiple of 8, lr > 0, val_fraction in (0, 1)")


# ---------------------------------------------------------------------------- planning and safety
@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """Sampling-based MPC in latent space (`ami_ros.core.planner`)."""

    method: str = "cem"
    """`cem` (elite refitting) or `mppi` (cost-weighted averaging)."""
    horizon: int = 5
    """Actions per plan (control ticks looked ahead)."""
    samples: int = 64
    """Action sequences evaluated per iteration (the search size's measured trade-off between
    success and tick time: docs/results.md)."""
    iterations: int = 2
    """Refinement iterations per control tick."""
    elites: int = 8
    """CEM: sequences the distribution is refitted to (fewer elites: bolder first actions, so
    the arm crosses a route faster; measured in docs/results.md)."""
    temperature: float = 0.05
    """MPPI: cost scale of the exponential weights (lower is greedier)."""
    init_std: float = 0.5
    """Initial sampling std, as a fraction of each action bound."""
    min_std: float = 0.05
    """Floor of the sampling std, as a fraction of each action bound."""
    momentum: float = 0.0
    """Fraction of the previous iteration's mean kept at each refit."""
    prior_weight: float = 1.0
    """With a model that has a proposal (policy.onnx): the search starts from the proposal and
    each sample's cost adds this x its mean squared distance to it (in units of the action
    bounds). 0: the proposal only seeds the search."""
    seed: int = 0
    """Seed of the planner's random generator."""

    def __post_init__(self) -> None:
        if self.method not in ("cem", "mppi"):
            raise ConfigError(f"method must be 'cem' or 'mppi', got {self.method!r}")
        if self.horizon < 1 or self.iterations < 1:
            raise ConfigError("horizon and iterations must be >= 1")
        if not 2 <= self.elites <= self.samples:
            raise ConfigError(f"elites must be in [2, samples={self.samples}], got {self.elites}")
        if self.temperature <= 0 or self.init_std <= 0 or self.min_std < 0:
            raise ConfigError("temperature and init_std must be > 0, min_std >= 0")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.prior_weight >= 0:
            raise ConfigError(f"prior_weight must be >= 0, got {self.prior_weight}")


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """The filter between planner and robot (`ami_ros.core.safety`)."""

    max_step: float = 0.3
    """Largest change of any joint target per control tick, rad."""
    velocity_scale: float = 1.0
    """Fraction of each joint's velocity limit a command may ask for."""
    limit_margin: float = 0.02
    """Distance kept from each joint limit, rad."""

    def __post_init__(self) -> None:
        _require_finite(self)
        if self.max_step <= 0 or not 0 < self.velocity_scale <= 1 or self.limit_margin < 0:
            raise ConfigError("max_step must be > 0, velocity_scale in (0, 1], limit_margin >= 0")


@dataclasses.dataclass(frozen=True)
class ApproachConfig:
    """Approach subgoals (`ami_ros.core.kinematics`): the planner first steers to poses set back
    from the goal pose along the tool axis, then in along it, as a grasp is approached from a
    pre-grasp pose (a push goal image shows the pusher behind the block it pushed). Off while
    `urdf` is empty."""

    urdf: str = ""
    """The robot's URDF (absolute, or relative to the ami_ros Python package); empty: no subgoals."""
    tip_link: str = "end_effector"
    """The URDF link whose pose the goal's approach is set back from."""
    tool_axis: tuple[float, ...] = (1.0, 0.0, 0.0)
    """The approach direction in the tip link's frame."""
    distance: float = 0.2
    """How far (m) behind the goal pose the approach starts."""
    waypoints: int = 4
    """Subgoals evenly spaced up to `distance` behind the goal pose (the goal itself comes last)."""
    tolerance: float = 0.08
    """A subgoal is passed once every joint is within this (rad) of it."""
    max_ik_error: float = 0.005
    """Set-back poses the arm cannot reach within this (m) are left out."""
    axis_weight: float = 0.1
    """How much the set-back poses keep the tool pointing along the approach: metres of tip error
    one radian of misalignment weighs in the IK (0: the tip's position only, for a round pusher)."""
    clearance: float = 0.0
    """On the way to the first approach pose the arm's links keep this far (m) off the approach
    line in front of it, where a pushed object started: a route through joint space is planned
    once per goal; with none found, no approach (0: straight to the first approach pose)."""
    lookahead: int = 2
    """On the route the planner steers for the point this many ahead of the next one (never past
    the first approach pose), so it keeps moving rather than stopping at each."""
    route_spacing: float = 1.0
    """The route's subgoals are at most this many control periods apart, at the model's action
    limits."""
    max_route: float = 0.0
    """The longest route (control periods at the model's action limits) worth its detour: past it
    the planner goes straight to the goal, with no approach (0: any length)."""

    def __post_init__(self) -> None:
        _require_finite(self)
        if len(self.tool_axis) != 3 or not math.hypot(*self.tool_axis) > 0:
            raise ConfigError(f"approach.tool_axis must be a non-zero 3-vector, got {self.tool_axis}")
        if min(self.distance, self.tolerance, self.max_ik_error) <= 0 or self.waypoints < 1:
            raise ConfigError("approach distance, tolerance and max_ik_error must be > 0, waypoints >= 1")
        if self.axis_weight < 0 or self.clearance < 0:
            raise ConfigError(
                f"approach.axis_weight and clearance must be >= 0, got {self.axis_weight}, {self.clearance}"
            )
        if self.route_spacing <= 0 or self.lookahead < 0 or self.max_route < 0:
            raise ConfigError(
                "approach: need route_spacing > 0, lookahead >= 0 and max_route >= 0, got "
                f"{self.route_spacing}, {self.lookahead}, {self.max_route}"
            )


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """The control tick (`ami_ros.core.controller.Controller`) that planner_node and `ami-ros eval`
    both run: goal, latent history, plan, safety filter, goal-reached decision and hold reasons.

    As planner_node parameters the fields keep plain names (`control_period`, `planner.samples`,
    `safety.max_step`); eval reads the same planner_node section of the robot config.
    """

    robot: str = ""
    """Robot file (`config/robots/<arm>.robot.yaml`: a name there, or a path): its joints, limits,
    velocities and control period replace this config's robot fields (`ami_ros.robot`). Empty:
    this config's own values."""
    joint_names: tuple[str, ...] = EMBEDDED_JOINTS
    """The robot's joints in model order (checked against the model manifest)."""
    joint_lower: tuple[float, ...] = EMBEDDED_LOWER
    """Lower joint position limits, rad (the safety filter's)."""
    joint_upper: tuple[float, ...] = EMBEDDED_UPPER
    """Upper joint position limits, rad."""
    velocity_limits: tuple[float, ...] = EMBEDDED_VELOCITY
    """Joint velocity limits, rad/s."""
    control_period: float = EMBEDDED_PERIOD
    """Seconds between plan ticks (the model's action period)."""
    max_age: float = 0.3
    """Inputs (latent, joint state) older than this (s) make the planner hold position."""
    success_energy: float = 0.0001
    """The goal counts as reached when the energy falls below this (and no longer once it rises
    above twice this). With the shipped model's joint-only cost, 1e-4 is a normalised RMS joint
    error of 0.01 (about 0.02 rad)."""
    success_scene_mse: float = 0.008
    """...and only while the scene matches the goal image: the image tokens' mean squared distance
    to the goal's (the energy's fine-token term) is below this (twice this to stay reached). The
    arm at the goal pose with the block elsewhere is not the goal (how well it separates them:
    docs/results.md)."""
    cost_weights: tuple[float, ...] = ()
    """Rollout-cost weights (see the model manifest's `rollout_cost`); empty: the manifest's default."""
    planner: PlannerConfig = dataclasses.field(default_factory=PlannerConfig)
    """The sampling planner (its horizon is fixed by the model's rollout-cost graph)."""
    safety: SafetyConfig = dataclasses.field(default_factory=SafetyConfig)
    """The filter every command passes through."""
    approach: ApproachConfig = dataclasses.field(default_factory=ApproachConfig)
    """Subgoals along the tool axis before the goal pose (off without a URDF)."""

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if not n or {len(self.joint_lower), len(self.joint_upper), len(self.velocity_limits)} != {n}:
            raise ConfigError(
                "joint_names, joint_lower, joint_upper and velocity_limits must have equal lengths"
            )
        if any(lo >= hi for lo, hi in zip(self.joint_lower, self.joint_upper, strict=True)):
            raise ConfigError("every joint_lower must be < joint_upper")
        if min(self.velocity_limits) <= 0:
            raise ConfigError("velocity_limits must be > 0")
        if self.control_period <= 0 or self.max_age <= 0:
            raise ConfigError("control_period and max_age must be > 0")
        if self.success_energy < 0 or any(w < 0 for w in self.cost_weights):
            raise ConfigError("success_energy and cost_weights must be >= 0")
        if not self.success_scene_mse > 0:
            raise ConfigError(f"success_scene_mse must be > 0, got {self.success_scene_mse}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Closed-loop evaluation on the embedded robot (`ami-ros eval`)."""

    task: str = "reach"
    """`reach` (end effector to the goal's) or `push` (block to its goal)."""
    episodes: int = 50
    """Episodes, seeds `seed` .. `seed + episodes - 1` (keep them apart from training seeds)."""
    seed: int = 100_000
    """First episode seed; `ami-ros collect` uses seeds from 0."""
    max_steps: int = 60
    """Control ticks per episode."""
    success_m: float = 0.03
    """Success: end effector (reach) or block (push) within this distance of the goal, metres."""
    controller: ControllerConfig = dataclasses.field(default_factory=ControllerConfig)
    """The control tick's settings; `ami-ros eval` reads them from the robot config's planner_node
    section (`load_ros_params`), so eval runs the node's controller with the node's settings."""

    @property
    def control_period(self) -> float:
        """Seconds per control tick (the controller's)."""
        return self.controller.control_period

    def __post_init__(self) -> None:
        if self.task not in ("reach", "push"):
            raise ConfigError(f"task must be 'reach' or 'push', got {self.task!r}")
        if self.episodes < 1 or self.max_steps < 1 or self.success_m <= 0:
            raise ConfigError("episodes, max_steps and success_m must be positive")


# ------------------------------------------------------------------------------------- nodes
KNOWN_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "MIGraphXExecutionProvider",
    "OpenVINOExecutionProvider",
    "DnnlExecutionProvider",
    "VitisAIExecutionProvider",
    "QNNExecutionProvider",
    "NnapiExecutionProvider",
    "VSINPUExecutionProvider",
    "JsExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "RknpuExecutionProvider",
    "WebNNExecutionProvider",
    "WebGpuExecutionProvider",
    "XnnpackExecutionProvider",
    "CANNExecutionProvider",
    "AzureExecutionProvider",
    "CPUExecutionProvider",
)
"""Every execution provider onnxruntime knows (`onnxruntime.get_all_providers()`; a test keeps the
two equal). A name outside it is a typo, refused rather than skipped as "unavailable"."""


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """The onnxruntime sessions of a node (`ami_ros.runtime.load_model`)."""

    model_dir: str = ""
    """Model directory (manifest.yaml + .onnx files); empty: the package's models/tabletop_arm."""
    providers: tuple[str, ...] = (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    )
    """Execution providers in order of preference; unavailable ones are skipped, CPU is the fallback."""
    intra_op_threads: int = 0
    """onnxruntime CPU threads per session (0: onnxruntime's default, one per core)."""
    spin_wait: bool = False
    """Let onnxruntime's worker threads busy-wait between runs (see `load_model`): off, the
    sessions of one process do not take each other's cores."""
    trt_fp16: bool = False
    """TensorRT: build fp16 engines."""
    trt_cache_dir: str = ""
    """TensorRT: engine cache folder (empty: no cache, engines are rebuilt at every start)."""

    def __post_init__(self) -> None:
        if not self.providers:
            raise ConfigError("providers must name at least one execution provider")
        unknown = [p for p in self.providers if p not in KNOWN_PROVIDERS]
        if unknown:
            raise ConfigError(
                f"providers: unknown execution provider(s) {unknown}; known: {list(KNOWN_PROVIDERS)}"
            )
        if self.intra_op_threads < 0:
            raise ConfigError(f"intra_op_threads must be >= 0, got {self.intra_op_threads}")


@dataclasses.dataclass(frozen=True)
class EncoderNodeConfig:
    """`encoder_node`: camera frame + joint state -> ami/latent."""

    robot: str = ""
    """Robot file (`config/robots/<arm>.robot.yaml`: a name there, or a path): its joints, limits,
    velocities and control period replace this config's robot fields (`ami_ros.robot`). Empty:
    this config's own values."""
    joint_names: tuple[str, ...] = EMBEDDED_JOINTS
    """The robot's joints in model order (checked against the model manifest)."""
    max_skew: float = 0.05
    """Largest |stamp difference| (s) between a frame and the joint state paired with it."""
    max_rate: float = 0.0
    """Encode at most this many frames a second (by their stamps; a frame sooner than 0.9 / max_rate
    after the last one encoded is skipped): the planner uses one latent a control period, so a 30
    Hz camera at 10 keeps two thirds of the encoder's and the predictor's work off the CPU. 0:
    every frame."""
    diagnostics_period: float = 1.0
    """Seconds between /diagnostics messages."""
    latency_trace: str = ""
    """A file to append each camera frame's stage times to (JSON lines, `ami_ros.core.trace`;
    `ami-ros bench --stack` and `ami-ros demo` read them). Empty: none recorded."""

    def __post_init__(self) -> None:
        if not self.joint_names:
            raise ConfigError("joint_names must not be empty")
        if self.max_skew <= 0 or self.diagnostics_period <= 0:
            raise ConfigError("max_skew and diagnostics_period must be > 0")
        if not self.max_rate >= 0:
            raise ConfigError(f"max_rate must be >= 0 (0: every frame), got {self.max_rate}")


@dataclasses.dataclass(frozen=True)
class PredictorNodeConfig:
    """`predictor_node`: forecasts of the commands actually sent, and surprise."""

    robot: str = ""
    """Robot file (`config/robots/<arm>.robot.yaml`: a name there, or a path): its joints, limits,
    velocities and control period replace this config's robot fields (`ami_ros.robot`). Empty:
    this config's own values."""
    joint_names: tuple[str, ...] = EMBEDDED_JOINTS
    """The robot's joints in model order (checked against the model manifest)."""
    command_interface: str = "trajectory"
    """Commands to forecast: `trajectory` (arm_controller/joint_trajectory) or `forward`
    (forward_position_controller/commands)."""
    surprise_threshold: float = 0.5
    """Surprise (mean squared error of the forecast image tokens) above which the world counts as
    not behaving as the model expects."""
    surprise_window: int = 10
    """Consecutive forecasts above the threshold before /diagnostics warns."""
    stillness_threshold: float = 300.0
    """WARN when every forecast of the window has joints moving this many rad per unit of image-token
    change (`Forecaster`'s stillness): the camera image stays the same while the arm moves."""
    scene_threshold: float = 8.0
    """WARN for a window of forecasts after one whose scene surprise (`Forecaster`'s: image tokens that
    changed where the forecast expected none) exceeds this: something the model did not see moved
    (a knocked block), or the view changed. The default is about twice the largest normal value seen
    with the shipped model (4.1 in the early-warning benchmark, 4.9 over ROS in `ami-ros demo`)."""
    diagnostics_period: float = 1.0
    """Seconds between /diagnostics messages."""

    def __post_init__(self) -> None:
        if self.command_interface not in ("trajectory", "forward"):
            raise ConfigError(
                f"command_interface must be 'trajectory' or 'forward', got {self.command_interface!r}"
            )
        thresholds = (self.surprise_threshold, self.stillness_threshold, self.scene_threshold)
        if min(*thresholds, self.diagnostics_period) <= 0:
            raise ConfigError(
                "surprise_threshold, stillness_threshold, scene_threshold and diagnostics_period must be > 0"
            )
        if self.surprise_window < 1:
            raise ConfigError(f"surprise_window must be >= 1, got {self.surprise_window}")


@dataclasses.dataclass(frozen=True)
class PlannerNodeConfig:
    """`planner_node`'s own parameters, beside the `ControllerConfig` fields it also declares."""

    command_interface: str = "trajectory"
    """`trajectory`: trajectory_msgs/JointTrajectory on arm_controller/joint_trajectory;
    `forward`: std_msgs/Float64MultiArray on forward_position_controller/commands."""
    goal_memory_dir: str = "~/.ros/ami_goals"
    """Folder of named goals (`<name>.npz`), kept across restarts."""
    start_enabled: bool = True
    """Start commanding as soon as a goal is set (false: wait for ami/enable)."""
    diagnostics_period: float = 1.0
    """Seconds between /diagnostics messages."""
    latency_trace: str = ""
    """A file to append each camera frame's stage times to (JSON lines, `ami_ros.core.trace`;
    `ami-ros bench --stack` and `ami-ros demo` read them). Empty: none recorded."""

    def __post_init__(self) -> None:
        if self.command_interface not in ("trajectory", "forward"):
            raise ConfigError(
                f"command_interface must be 'trajectory' or 'forward', got {self.command_interface!r}"
            )
        if self.diagnostics_period <= 0:
            raise ConfigError(f"diagnostics_period must be > 0, got {self.diagnostics_period}")
