"""Export a trained world model to ONNX (+ manifest.yaml) and check parity with torch.

Writes to `out_dir` (weights embedded in each .onnx, no side files):
    encoder.onnx      image (B, S, S, 3) uint8 RGB, joints (B, J) rad -> latent (B, N+1, D), joints_est (B, J)
    predictor.onnx    history (B, K, N+1, D), action (B, J) -> next_latent (B, N+1, D), joints (B, J)
    rollout_cost.onnx history (1, K, N+1, D), goal_latent (1, N+1, D), goal_joints (1, J),
                      actions (B, H, J), weights (3,) -> cost (B,)
    manifest.yaml     what `ami_ros.runtime.load_model` checks (see `build_manifest`)
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
import yaml
from torch import nn

from ami_ros.config import TrainRunConfig, WorldModelConfig
from ami_ros.runtime.world_model import sha256
from ami_ros.world_model.model import WorldModel, count_parameters, latent_joints

log = logging.getLogger(__name__)
OPSET = 18
MANIFEST_FORMAT = "ami_ros.world_model/1"
# Joints only, with the pose network's goal-joint estimate: token distance is flat while the arm
# and its goal pose do not overlap in the image, so any token term drags reach down (measured in
# docs/results.md).
DEFAULT_COST_WEIGHTS = (0.0, 0.0, 1.0)
PARITY_TOLERANCE = 1e-4


def rollout_cost(
    predictor: nn.Module,
    cfg: WorldModelConfig,
    history: torch.Tensor,
    goal_latent: torch.Tensor,
    goal_joints: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Cost of each action sequence: how far its predicted latents land from the goal.

    cost = w0 * mean (final image tokens - goal tokens)^2
         + w1 * mean (2x2-pooled final image tokens - pooled goal tokens)^2   (coarse, wider basin)
         + w2 * mean over the horizon of mean ((predicted joints - goal joints) / joint limits)^2

    The joint term is a stage cost (every step, not only the last): with the final step alone,
    every split of the same total motion over the horizon costs the same, so the first action, the
    one executed, is left to chance and the arm dithers near the goal.
    Args: history (1, K, N+1, D); goal_latent (1, N+1, D); goal_joints (1, J) rad;
        actions (B, H, J); weights (3,). Returns (B,).
    """
    b, g, d = actions.shape[0], cfg.grid, cfg.latent_dim
    latents = predictor.rollout(history.expand(b, -1, -1, -1), actions)  # (B, H, N+1, D)
    diff = latents[:, -1, :-1] - goal_latent[:, :-1]  # (B, N, D)
    fine = diff.pow(2).mean(dim=(1, 2))
    grid = diff.transpose(1, 2).reshape(b, d, g, g)
    coarse = F.avg_pool2d(grid, g // 2).pow(2).mean(dim=(1, 2, 3))
    limits = predictor.limits
    joints = ((latent_joints(latents, limits) - goal_joints[:, None]) / limits).pow(2).mean(dim=(1, 2))
    return weights[0] * fine + weights[1] * coarse + weights[2] * joints


class _PredictorStep(nn.Module):
    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, history: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nxt = self.predictor(history, action)
        return nxt, latent_joints(nxt, self.predictor.limits)


class _RolloutCost(nn.Module):
    def __init__(self, predictor: nn.Module, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.predictor, self.cfg = predictor, cfg

    def forward(self, history, goal_latent, goal_joints, actions, weights):
        return rollout_cost(self.predictor, self.cfg, history, goal_latent, goal_joints, actions, weights)


def _specs(cfg: WorldModelConfig) -> dict[str, dict[str, dict[str, list]]]:
    """Input/output shapes per graph; "batch" marks the dynamic dimension."""
    s, j, k, h, n, d = (
        cfg.image_size,
        len(cfg.joint_names),
        cfg.history,
        cfg.horizon,
        cfg.n_tokens,
        cfg.latent_dim,
    )
    return {
        "encoder.onnx": {
            "inputs": {"image": ["batch", s, s, 3], "joints": ["batch", j]},
            "outputs": {"latent": ["batch", n, d], "joints_est": ["batch", j]},
        },
        "predictor.onnx": {
            "inputs": {"history": ["batch", k, n, d], "action": ["batch", j]},
            "outputs": {"next_latent": ["batch", n, d], "joints": ["batch", j]},
        },
        "rollout_cost.onnx": {
            "inputs": {
                "history": [1, k, n, d],
                "goal_latent": [1, n, d],
                "goal_joints": [1, j],
                "actions": ["batch", h, j],
                "weights": [3],
            },
            "outputs": {"cost": ["batch"]},
        },
    }


def export_graph(module: nn.Module, args: tuple, path: Path, spec: dict) -> None:
    """Export `module` on `args` to `path` (opset OPSET, weights embedded); spec: `_specs`' form."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    dynamic = tuple(
        {0: batch} if shape and shape[0] == "batch" else None for shape in spec["inputs"].values()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("torch.onnx", "onnx_ir", "onnxscript"):
            logging.getLogger(name).setLevel(logging.WARNING)
        program = torch.onnx.export(
            module,
            args,
            input_names=list(spec["inputs"]),
            output_names=list(spec["outputs"]),
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.save(str(path), external_data=False)


@torch.no_grad()
def export_checked(module: nn.Module, args: tuple, path: Path, spec: dict) -> float:
    """`export_graph`, then max |onnxruntime - torch| of the first output on `args`.

    Raises:
        RuntimeError: it exceeds PARITY_TOLERANCE x max(1, the largest |output|).
    """
    import onnxruntime as ort

    export_graph(module, args, path, spec)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, dict(zip(spec["inputs"], (x.numpy() for x in args), strict=True)))[0]
    want = module(*args)
    want = (want[0] if isinstance(want, tuple) else want).numpy()
    parity = float(np.abs(got - want).max())
    limit = PARITY_TOLERANCE * max(1.0, float(np.abs(want).max()))
    if not parity <= limit:
        raise RuntimeError(f"{path.name} differs from torch by {parity:.2e} (> {limit:.1e})")
    return parity


def example_inputs(
    cfg: WorldModelConfig,
    frames: np.ndarray | None = None,
    joints: np.ndarray | None = None,
    batch: int = 8,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Inputs for export and parity; real held-out frames/joints when given (batch >= 2)."""
    g = torch.Generator().manual_seed(seed)
    j, s = len(cfg.joint_names), cfg.image_size
    lim, alim = torch.tensor(cfg.joint_limits), torch.tensor(cfg.action_limits)
    if frames is None or joints is None:
        frames = torch.randint(0, 256, (batch, s, s, 3), dtype=torch.uint8, generator=g).numpy()
        joints = ((torch.rand(batch, j, generator=g) * 2 - 1) * lim).numpy()
    img, q = (
        torch.from_numpy(np.ascontiguousarray(frames[:batch])),
        torch.from_numpy(joints[:batch].astype(np.float32)),
    )
    b = len(img)
    return {
        "encoder": (img, q),
        "action": ((torch.rand(b, j, generator=g) * 2 - 1) * alim,),
        "actions": ((torch.rand(b, cfg.horizon, j, generator=g) * 2 - 1) * alim,),
        "weights": (torch.tensor([1.0, 0.5, 2.0]),),
    }


@torch.no_grad()
def export_model(
    model: WorldModel,
    out_dir: str | Path,
    run_config: TrainRunConfig | None = None,
    frames: np.ndarray | None = None,
    joints: np.ndarray | None = None,
    metrics: dict | None = None,
    data_summary: dict | None = None,
    command: str = "",
    wall_time_s: float | None = None,
) -> dict[str, Any]:
    """Export the three graphs, check parity on `frames`/`joints` (held-out; random if None),
    write manifest.yaml. Raises RuntimeError if any output differs from torch by > 1e-4."""
    import onnxruntime as ort

    cfg = model.cfg
    model = model.cpu().eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = _specs(cfg)
    ex = example_inputs(cfg, frames, joints)
    img, q = ex["encoder"]
    latent, _ = model.encoder(img, q)
    k = cfg.history
    history = torch.stack([latent[i : i + k] for i in range(len(latent) - k + 1)])  # (B', K, N+1, D)
    args = {
        "encoder.onnx": (img, q),
        "predictor.onnx": (history, ex["action"][0][: len(history)]),
        "rollout_cost.onnx": (history[:1], latent[-1:], q[-1:], ex["actions"][0], ex["weights"][0]),
    }
    modules = {
        "encoder.onnx": model.encoder,
        "predictor.onnx": _PredictorStep(model.predictor),
        "rollout_cost.onnx": _RolloutCost(model.predictor, cfg),
    }
    parity, t0 = {}, time.time()
    for name, module in modules.items():
        export_graph(module, args[name], out / name, specs[name])
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        feed = {key: a.numpy() for key, a in zip(specs[name]["inputs"], args[name], strict=True)}
        got = sess.run(None, feed)
        ref = module(*args[name])
        ref = ref if isinstance(ref, tuple) else (ref,)
        parity[name] = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True))
    log.info("exported %d graphs in %.1f s; parity %s", len(modules), time.time() - t0, parity)
    bad = {k: v for k, v in parity.items() if not v <= PARITY_TOLERANCE}
    if bad:
        raise RuntimeError(f"ONNX/torch parity above {PARITY_TOLERANCE}: {bad}")
    manifest = build_manifest(model, out, run_config, parity, metrics, data_summary, command, wall_time_s)
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    manifest["latency_ms_cpu"] = cpu_latency(out)
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return manifest


def cpu_latency(model_dir: Path, threads: int = 2) -> dict[str, float | int | str]:
    """Median onnxruntime CPU latencies (ms) of the exported model on `threads` threads, loaded the
    way the robot loads it (hashes and shapes verified). Machine-dependent: recorded with the host."""
    import platform

    from ami_ros.runtime import load_model

    runtime = load_model(model_dir, providers=("CPUExecutionProvider",), intra_op_threads=threads)
    timings = {k: round(v, 2) for k, v in runtime.benchmark(batch=256).items()}
    return timings | {"threads": threads, "cpu": platform.processor() or platform.machine()}


def build_manifest(
    model: WorldModel,
    out: Path,
    run_config: TrainRunConfig | None,
    parity: dict[str, float],
    metrics: dict | None,
    data_summary: dict | None,
    command: str,
    wall_time_s: float | None,
) -> dict[str, Any]:
    cfg = model.cfg
    specs = _specs(cfg)
    j = len(cfg.joint_names)
    files = {
        name: {"sha256": sha256(out / name), "bytes": (out / name).stat().st_size, **spec}
        for name, spec in specs.items()
    }
    return {
        "format": MANIFEST_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "opset": OPSET,
        "files": files,
        "image": {
            "size": [cfg.image_size, cfg.image_size],
            "channels": "RGB",
            "dtype": "uint8",
            "layout": "NHWC",
            "normalisation": "inside encoder.onnx: (pixel / 255 - 0.5) / 0.25; resize frames to size first",
        },
        "joints": {"names": list(cfg.joint_names), "limits_rad": list(cfg.joint_limits)},
        "actions": {
            "kind": "joint position delta: commanded target - measured position, rad",
            "limits_rad": list(cfg.action_limits),
            "control_period_s": run_config.data.control_period if run_config else 0.1,  # the bags' period
            "dim": j,
        },
        "latent": {
            "shape": [cfg.n_tokens, cfg.latent_dim],
            "dtype": "float32",
            "image_tokens": cfg.grid**2,
            "grid": [cfg.grid, cfg.grid],
            "token_order": "row-major over the image grid, then 1 proprio token",
            "proprio_token": f"index {cfg.n_tokens - 1}: "
            f"[q/limit, sin q, cos q, sin 2q, ...][:{cfg.latent_dim}]; "
            f"joints = latent[-1, :{j}] * limits",
        },
        "history": cfg.history,
        "horizon": cfg.horizon,
        "rollout_cost": {
            "formula": "w0*mean((tok_H - goal_tok)^2) + w1*mean(pool2x2(tok_H - goal_tok)^2) "
            "+ w2*mean_t(mean(((q_t - goal_q)/limits)^2)); tok_H after `horizon` steps, q_t after each",
            "default_weights": list(DEFAULT_COST_WEIGHTS),
        },
        "parameters": {
            "encoder": count_parameters(model.encoder),
            "predictor": count_parameters(model.predictor),
            "total": count_parameters(model),
        },
        "parity_max_abs": parity,
        "model_config": _plain(dataclasses.asdict(cfg)),
        "training": {
            "command": command,
            "wall_time_s": wall_time_s,
            "data": _plain(data_summary or {}),
            "config": _plain(dataclasses.asdict(run_config)) if run_config else None,
        },
        "metrics": _plain(metrics or {}),
    }


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, episodes: list | None = None
) -> dict[str, Any]:
    """Export a `train` checkpoint (metrics.json beside it is embedded in the manifest).

    Parity is checked on frames of a held-out episode of `episodes` (the training split, recomputed
    from the checkpoint's seed), on random inputs when `episodes` is None.
    """
    import json

    from ami_ros.world_model.data import split_episodes
    from ami_ros.world_model.train import load_checkpoint

    model, run_cfg, ckpt = load_checkpoint(checkpoint)
    metrics_path = Path(checkpoint).with_name("metrics.json")
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    frames = joints = None
    if episodes:
        held_out = split_episodes(episodes, run_cfg.train.val_fraction, run_cfg.train.seed)[1][0]
        frames, joints = held_out["frames"][:8], held_out["joints"][:8]
    return export_model(
        model,
        out_dir,
        run_cfg,
        frames,
        joints,
        metrics=metrics,
        data_summary=ckpt.get("data"),
        command=ckpt.get("command", ""),
        wall_time_s=ckpt.get("wall_time_s"),
    )
