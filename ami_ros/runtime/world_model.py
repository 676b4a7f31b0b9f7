"""The exported world model on the robot: verified loading, provider selection, warm-up.

`load_model(model_dir)` reads manifest.yaml, checks every listed file exists and matches its
sha256, checks joint names against the robot's, opens one onnxruntime session per graph on the
best available execution provider (TensorRT -> CUDA -> CPU by default), checks each session's
input/output shapes against the manifest, and warms every session up. Any mismatch raises
`ModelLoadError` with a message naming it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import yaml

from ami_ros.paths import share_file
from ami_ros.robot import model_mismatch

log = logging.getLogger(__name__)
MANIFEST_FORMAT = "ami_ros.world_model/1"
GRAPHS = ("encoder.onnx", "predictor.onnx", "rollout_cost.onnx")
OPTIONAL_GRAPHS = ("policy.onnx", "arm_layer.onnx", "slot_forecast.onnx")
"""Graphs a model directory may add (`ami-ros train-policy`, `ami-ros train-slot`); opened when listed
and asked for."""
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class ModelLoadError(RuntimeError):
    """A model directory does not match its manifest or the robot; the message names the mismatch."""


def choose_providers(preferred: Sequence[str] = DEFAULT_PROVIDERS) -> list[str]:
    """`preferred` filtered to what this onnxruntime build offers; CPU is always last resort."""
    available = set(ort.get_available_providers())
    chosen = [p for p in preferred if p in available]
    return chosen if "CPUExecutionProvider" in chosen else [*chosen, "CPUExecutionProvider"]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_shapes(name: str, kind: str, expected: dict[str, list], actual: list[Any]) -> None:
    got = {a.name: list(a.shape) for a in actual}
    if list(got) != list(expected):
        raise ModelLoadError(f"{name}: {kind} names {list(got)} do not match the manifest's {list(expected)}")
    for key, shape in expected.items():
        real = got[key]
        ok = len(real) == len(shape) and all(
            isinstance(e, str) or r == e for e, r in zip(shape, real, strict=True)
        )
        if not ok:
            raise ModelLoadError(f"{name}: {kind} {key!r} has shape {real}, manifest says {shape}")


class WorldModelRuntime:
    """Encoder, predictor and fused rollout-cost sessions of one model directory.

    Shapes (J joints, K history, H horizon, latent (L, D) = (grid**2 + 1, latent_dim)):
        encode(image (S, S, 3) uint8 RGB, joints (J,)) -> (latent (L, D), joints_est (J,))
        predict(history (K, L, D) or (B, K, L, D), actions (H, J) or (B, H, J)) -> (latents, joints)
        rollout_cost(history (K, L, D), goal_latent (L, D), goal_joints (J,), actions (N, H, J)) -> (N,)
        propose(latent (L, D), joints (J,), goal_latent (L, D), goal_joints (J,)) -> actions (H, J)
    """

    def __init__(self, model_dir: Path, manifest: dict, sessions: dict[str, ort.InferenceSession]) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self.sessions = _Sessions(sessions)
        self.joint_names: list[str] = list(manifest["joints"]["names"])
        self.joint_limits = np.asarray(manifest["joints"]["limits_rad"], np.float32)
        self.action_limits = np.asarray(manifest["actions"]["limits_rad"], np.float32)
        self.image_size: int = int(manifest["image"]["size"][0])
        self.latent_shape: tuple[int, int] = tuple(manifest["latent"]["shape"])
        self.history: int = int(manifest["history"])
        self.horizon: int = int(manifest["horizon"])
        self.cost_weights = np.asarray(manifest["rollout_cost"]["default_weights"], np.float32)

    @property
    def providers(self) -> dict[str, str]:
        """Execution provider actually used by each session (first of `session.get_providers()`)."""
        return {name: s.get_providers()[0] for name, s in self.sessions.items()}

    def encode_batch(self, images: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images (B, S, S, 3) uint8, joints (B, J) -> latents (B, L, D), joints_est (B, J)."""
        if images.shape[1:] != (self.image_size, self.image_size, 3) or images.dtype != np.uint8:
            raise ValueError(
                f"image must be uint8 ({self.image_size}, {self.image_size}, 3) RGB, "
                f"got {images.dtype} {images.shape[1:]}"
            )
        latent, q = self.sessions["encoder.onnx"].run(
            None, {"image": np.ascontiguousarray(images), "joints": np.asarray(joints, np.float32)}
        )
        return latent, q

    def encode(self, image: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame: image (S, S, 3) uint8 RGB, joints (J,) rad -> latent (L, D), joints_est (J,)."""
        latent, q = self.encode_batch(image[None], np.asarray(joints, np.float32)[None])
        return latent[0], q[0]

    def step(self, history: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """history (B, K, L, D), action (B, J) -> next latent (B, L, D), predicted joints (B, J)."""
        nxt, q = self.sessions["predictor.onnx"].run(
            None, {"history": np.asarray(history, np.float32), "action": np.asarray(action, np.float32)}
        )
        return nxt, q

    def predict(self, history: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Autoregressive rollout of any length. history (K, L, D) or (B, K, L, D); actions (H, J) or
        (B, H, J). Returns latents (B, H, L, D) and joints (B, H, J) (batch dim dropped if unbatched)."""
        single = np.ndim(actions) == 2
        hist = np.asarray(history, np.float32)
        acts = np.asarray(actions, np.float32)
        if single:
            acts = acts[None]
        if hist.ndim == 3:
            hist = hist[None]
        if hist.shape[0] == 1 and acts.shape[0] > 1:
            hist = np.repeat(hist, acts.shape[0], axis=0)
        latents, joints = [], []
        for t in range(acts.shape[1]):
            nxt, q = self.step(hist, acts[:, t])
            latents.append(nxt)
            joints.append(q)
            hist = np.concatenate([hist[:, 1:], nxt[:, None]], axis=1)
        lat, jnt = np.stack(latents, 1), np.stack(joints, 1)
        return (lat[0], jnt[0]) if single else (lat, jnt)

    def rollout_cost(
        self,
        history: np.ndarray,
        goal_latent: np.ndarray,
        goal_joints: np.ndarray,
        actions: np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Cost (N,) of N action sequences (N, horizon, J) in one call (formula: manifest rollout_cost)."""
        feed = {
            "history": np.asarray(history, np.float32).reshape(1, self.history, *self.latent_shape),
            "goal_latent": np.asarray(goal_latent, np.float32).reshape(1, *self.latent_shape),
            "goal_joints": np.asarray(goal_joints, np.float32).reshape(1, -1),
            "actions": np.asarray(actions, np.float32),
            "weights": self.cost_weights if weights is None else np.asarray(weights, np.float32),
        }
        if feed["actions"].shape[1:] != (self.horizon, len(self.joint_names)):
            raise ValueError(
                f"actions must be (N, {self.horizon}, {len(self.joint_names)}), got {feed['actions'].shape}"
            )
        return self.sessions["rollout_cost.onnx"].run(None, feed)[0]

    def benchmark(self, batch: int = 256, repeats: int = 20) -> dict[str, float]:
        """Median latency (ms): encoder per frame, one predictor step and one rollout_cost at `batch`."""
        import time

        s, j = self.image_size, len(self.joint_names)
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
        latent, q = self.encode(image, np.zeros(j, np.float32))
        hist = np.repeat(latent[None], self.history, axis=0)
        hist_b = np.repeat(hist[None], batch, axis=0)
        lim = self.action_limits
        acts = rng.uniform(-lim, lim, (batch, self.horizon, j)).astype(np.float32)
        calls = {
            "encoder_ms_per_frame": lambda: self.encode(image, q),
            f"predictor_step_ms_batch{batch}": lambda: self.step(hist_b, acts[:, 0]),
            f"rollout_cost_ms_batch{batch}_h{self.horizon}": lambda: self.rollout_cost(hist, latent, q, acts),
        }
        out = {}
        for name, call in calls.items():
            call()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                call()
                times.append(1000 * (time.perf_counter() - t0))
            out[name] = float(np.median(times))
        return out

    @property
    def has_policy(self) -> bool:
        """The model has a goal-conditioned proposal (policy.onnx) and it is open."""
        return "policy.onnx" in self.sessions

    def propose(
        self, latent: np.ndarray, joints: np.ndarray, goal_latent: np.ndarray, goal_joints: np.ndarray
    ) -> np.ndarray:
        """The proposal's action chunk (H, J) from the latent now (L, D), the measured joints (J,),
        the goal latent (L, D) and the goal's joints (J,)."""
        feed = {
            "latent": np.asarray(latent, np.float32)[None],
            "joints": np.asarray(joints, np.float32)[None],
            "goal_latent": np.asarray(goal_latent, np.float32)[None],
            "goal_joints": np.asarray(goal_joints, np.float32)[None],
        }
        return self.sessions["policy.onnx"].run(None, feed)[0][0]

    def warm_up(self, batch: int = 256) -> None:
        """One call of every open session at planner-like sizes (allocations, TensorRT engine build)."""
        j = len(self.joint_names)
        latent = np.zeros(self.latent_shape, np.float32)
        q = np.zeros(j, np.float32)
        if "encoder.onnx" in self.sessions:
            s = self.image_size
            latent, q = self.encode(np.zeros((s, s, 3), np.uint8), q)
        hist = np.repeat(latent[None], self.history, axis=0)
        if "predictor.onnx" in self.sessions:
            self.step(np.repeat(hist[None], batch, axis=0), np.zeros((batch, j), np.float32))
        if "rollout_cost.onnx" in self.sessions:
            self.rollout_cost(hist, latent, q, np.zeros((batch, self.horizon, j), np.float32))
        if self.has_policy:
            self.propose(latent, q, latent, q)

    def close(self) -> None:
        """Release the onnxruntime sessions (their memory, GPU memory and TensorRT engines)."""
        self.sessions.clear()


def load_model(
    model_dir: str | Path,
    expected_joint_names: Sequence[str] | None = None,
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    intra_op_threads: int = 0,
    spin_wait: bool = False,
    trt_cache_dir: str | None = None,
    trt_fp16: bool = False,
    warm_up: bool = True,
    expected_control_period: float | None = None,
    expected_limits: tuple[Sequence[float], Sequence[float]] | None = None,
    graphs: Sequence[str] = GRAPHS + OPTIONAL_GRAPHS,
) -> WorldModelRuntime:
    """Open a model directory after verifying it against its manifest and the robot.

    Args:
        model_dir: folder with manifest.yaml and the .onnx files it lists.
        expected_joint_names: the robot's joint names in model order; a mismatch is an error.
        providers: preference order, filtered by `onnxruntime.get_available_providers()`.
        intra_op_threads: onnxruntime CPU threads (0 = onnxruntime's default).
        spin_wait: let onnxruntime's worker threads busy-wait between runs. It saves a little per
            run for one session alone on its cores, but the sessions of one process (the encoder
            and the planner's graph, or the one-process stack) then take each other's cores
            (measured: docs/history.md).
        trt_cache_dir, trt_fp16: TensorRT engine cache folder and fp16 (TensorRT provider only).
        warm_up: run every session once before returning.
        expected_control_period: the robot's control period (s); the model's actions are deltas
            over its own period, so another one is an error.
        expected_limits: the robot's (lower, upper) joint limits, rad; a limit beyond the range
            the model normalises joints by (manifest joints.limits_rad) is an error.
        graphs: the graphs to open, a subset of `GRAPHS` + `OPTIONAL_GRAPHS` (a node opens only
            what it calls; an optional graph the manifest does not list is skipped); the other
            graphs' files are neither read nor hashed.
    Raises:
        ModelLoadError naming the missing file, wrong hash, wrong joint names or wrong shape.
    """
    model_dir = Path(model_dir)
    path = model_dir / "manifest.yaml"
    if not path.is_file():
        raise ModelLoadError(f"missing file: {path}")
    try:
        manifest = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ModelLoadError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelLoadError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    check_robot(manifest, path, expected_joint_names, expected_control_period, expected_limits)
    files = manifest["files"]
    unknown = sorted(set(graphs) - set(GRAPHS + OPTIONAL_GRAPHS))
    if unknown or not graphs:
        raise ValueError(f"graphs must be a non-empty subset of {GRAPHS + OPTIONAL_GRAPHS}, got {graphs}")
    graphs = [g for g in graphs if g in GRAPHS or g in files]
    for name in GRAPHS:
        if name not in files:
            raise ModelLoadError(f"{path}: lists no {name}")
    blobs = {}  # the verified bytes are what the sessions load: no file is read twice
    for name, entry in files.items():
        if name in GRAPHS + OPTIONAL_GRAPHS and name not in graphs:
            continue  # a graph this caller does not open
        blobs[name] = _verified_bytes(model_dir, name, entry, path)

    chosen = choose_providers(providers)
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    options.log_severity_level = 3
    provider_args: list[Any] = []
    for p in chosen:
        if p == "TensorrtExecutionProvider":
            trt: dict[str, Any] = {"trt_fp16_enable": trt_fp16}
            if trt_cache_dir:
                trt |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": trt_cache_dir}
            provider_args.append((p, trt))
        else:
            provider_args.append(p)
    sessions = {}
    for name in graphs:
        try:
            sess = ort.InferenceSession(blobs[name], options, providers=provider_args)
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{model_dir / name}: onnxruntime cannot open it: {err}") from None
        _check_shapes(name, "input", files[name]["inputs"], sess.get_inputs())
        _check_shapes(name, "output", files[name]["outputs"], sess.get_outputs())
        sessions[name] = sess
    runtime = WorldModelRuntime(model_dir, manifest, sessions)
    if warm_up:
        runtime.warm_up()
    log.info("loaded %s on %s", model_dir, runtime.providers)
    return runtime


def _verified_bytes(model_dir: Path, name: Any, entry: Any, manifest: Path) -> bytes:
    """The bytes of file `name` of the model directory, if they match the manifest's sha256.

    Only plain file names inside the directory are accepted: a name with a path, or a symlink that
    leads out of the directory, would load a file the directory's owner did not vouch for.
    """
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise ModelLoadError(f"{manifest}: file name {name!r} is not a plain name inside {model_dir}")
    f = model_dir / name
    if not f.is_file():
        raise ModelLoadError(f"missing file: {f} (listed in {manifest})")
    # Beside the manifest that lists it, wherever that resolves to: `colcon build --symlink-install`
    # installs each file as a symlink into the source folder, manifest.yaml included.
    home = manifest.resolve().parent
    if f.resolve().parent not in (model_dir.resolve(), home):
        raise ModelLoadError(f"{f} resolves to {f.resolve()}, outside the model directory {model_dir}")
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(expected, str):
        raise ModelLoadError(f"{manifest}: {name} has no sha256")
    data = f.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ModelLoadError(f"sha256 mismatch for {f}: file has {digest}, manifest says {expected}")
    return data


class _Sessions(dict):
    """The open sessions by graph name; asking for one that was not opened says so."""

    def __missing__(self, name: str) -> ort.InferenceSession:
        raise RuntimeError(f"{name} was not opened: pass it in load_model(graphs=...)")


def check_robot(
    manifest: dict,
    path: Path,
    joint_names: Sequence[str] | None = None,
    control_period: float | None = None,
    limits: tuple[Sequence[float], Sequence[float]] | None = None,
) -> None:
    """The robot's joint names, control period and joint limits against the manifest's (see
    `load_model`): `ami_ros.robot.model_mismatch`, the check `ami-ros train --robot-config` makes too.

    Raises:
        ModelLoadError: naming the mismatch.
    """
    model_names = list(manifest["joints"]["names"])
    why = model_mismatch(
        model_names if joint_names is None else joint_names, control_period, limits,
        model_names, float(manifest["actions"]["control_period_s"]), manifest["joints"]["limits_rad"],
    )  # fmt: skip
    if why:
        raise ModelLoadError(f"{why} (manifest {path})")


def default_model_dir(name: str = "tabletop_arm") -> Path:
    """The shipped model `models/<name>`: from the package's share folder of a colcon or ROS
    install (ament index), a source checkout, or a pip install (see `ami_ros.paths`)."""
    return share_file("models", name)
