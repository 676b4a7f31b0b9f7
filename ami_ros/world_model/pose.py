"""Fit the encoder's pixel pose network on a trained world model (`ami-ros train-pose`).

The planner's joint cost needs the goal image's joint positions. The JEPA tokens hold the proximal
joints but not the distal ones, so a small CNN (`model.PoseNet`) learns them from the same frames,
supervised by the recorded joint states. Everything else is frozen: the latent, the predictor and
their metrics are exactly the input checkpoint's. The output is a regular checkpoint (plus
metrics.json) for `ami-ros export`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ami_ros.config import PoseTrainConfig, TrainRunConfig, from_dict
from ami_ros.world_model.data import Episode, split_episodes
from ami_ros.world_model.evaluate import evaluate
from ami_ros.world_model.latents import cached_latents
from ami_ros.world_model.model import Encoder, WorldModel
from ami_ros.world_model.train import autocast, resolve_precision, save_checkpoint

log = logging.getLogger(__name__)


def _load_without_pose(module: torch.nn.Module, state: dict) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    fresh = [k for k in missing if not k.startswith("pose_net.")]
    stale = [k for k in unexpected if not k.startswith("pose_net.")]
    if fresh or stale:
        raise ValueError(f"checkpoint does not fit the model: missing {fresh}, unexpected {stale}")


def _pose_mae(model: WorldModel, frames: np.ndarray, joints: np.ndarray, batch: int = 1024) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        est = [
            model.encoder.pose(torch.from_numpy(frames[i : i + batch])) for i in range(0, len(frames), batch)
        ]
    return np.abs(torch.cat(est).numpy() - joints).mean(axis=0)


def train_pose(
    checkpoint: str | Path,
    episodes: Sequence[Episode],
    out_dir: str | Path,
    cfg: PoseTrainConfig,
    command: str = "",
) -> dict:
    """Train the pose network of `checkpoint`'s encoder; writes out_dir/checkpoint.pt and metrics.json.

    Returns the metrics (those of `evaluate`, with the pose network as the joint head).
    """
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.num_threads)
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    run_cfg = from_dict(TrainRunConfig, ckpt["config"])
    run_cfg = dataclasses.replace(
        run_cfg, model=dataclasses.replace(run_cfg.model, pose_channels=cfg.pose_channels)
    )
    model = WorldModel(run_cfg.model)
    _load_without_pose(model.encoder, ckpt["encoder"])
    model.predictor.load_state_dict(ckpt["predictor"])
    target = Encoder(run_cfg.model)
    _load_without_pose(target, ckpt["target_encoder"])

    train_eps, val_eps = split_episodes(episodes, run_cfg.train.val_fraction, run_cfg.train.seed)
    frames = torch.from_numpy(np.concatenate([ep["frames"] for ep in train_eps]))
    limits = model.encoder.limits
    joints = torch.from_numpy(np.concatenate([ep["joints"] for ep in train_eps]).astype(np.float32)) / limits
    val_frames = np.concatenate([ep["frames"] for ep in val_eps])
    val_joints = np.concatenate([ep["joints"] for ep in val_eps]).astype(np.float32)

    net = model.encoder.pose_net
    assert net is not None
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(frames) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    cpu = torch.device("cpu")
    precision = resolve_precision(cfg.precision, cpu)
    log.info("precision %s", precision)
    history = []
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(len(frames))
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            with autocast(precision, cpu):
                pred = net(Encoder.normalise(frames[idx]))
            loss = F.smooth_l1_loss(pred.float(), joints[idx], beta=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        mae = _pose_mae(model, val_frames, val_joints)
        history.append({"epoch": epoch + 1, "val_mae_rad": mae.tolist(), "wall_s": time.time() - t0})
        log.info("epoch %d/%d: held-out joint error %s rad", epoch + 1, cfg.epochs, np.round(mae, 3).tolist())

    cache = run_cfg.train.latent_cache  # the latent does not depend on the pose network: reused
    latents = (cached_latents(model.encoder, train_eps, cache), cached_latents(model.encoder, val_eps, cache))
    metrics = evaluate(model, train_eps, val_eps, latents=latents)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wall = time.time() - t0
    save_checkpoint(
        out / "checkpoint.pt",
        run_cfg,
        model,
        target,
        data=ckpt.get("data", {}),
        command=" && ".join(filter(None, [ckpt.get("command", ""), command])),
        wall_time_s=float(ckpt.get("wall_time_s") or 0.0) + wall,
        pose_training={"config": dataclasses.asdict(cfg), "history": history, "wall_time_s": wall},
    )
    metrics["pose_training"] = {"epochs": cfg.epochs, "val_mae_rad_per_joint": history[-1]["val_mae_rad"]}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
