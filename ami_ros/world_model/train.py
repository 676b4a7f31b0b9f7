"""Train the JEPA world model: `train(config, episodes, out_dir)`, used by `ami-ros train`.

CPU, one GPU (`train.device`), or several GPUs under `torchrun` (DDP when WORLD_SIZE > 1; only
rank 0 writes). Writes to `out_dir`: checkpoint.pt (plain state dicts + config, loads with
`torch.load(..., weights_only=True)`), metrics.json (evaluate.py), curves.png, train_log.json.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from ami_ros.config import TrainRunConfig, from_dict
from ami_ros.world_model.data import Episode, WindowDataset, check_episode, split_episodes, summarize
from ami_ros.world_model.evaluate import evaluate, kstep_ratios
from ami_ros.world_model.losses import jepa_losses
from ami_ros.world_model.model import WorldModel

log = logging.getLogger(__name__)
LOSS_TERMS = ("teacher", "rollout", "joints", "variance", "covariance")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` -> cuda (this process's local rank) if available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (checkpoint/JSON friendly)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def save_checkpoint(
    path: Path, cfg: TrainRunConfig, model: WorldModel, target: torch.nn.Module, **extra: Any
) -> None:
    """Plain state dicts + config dict; `encoder` is the online encoder (the one exported)."""
    torch.save(
        {
            "config": _plain(dataclasses.asdict(cfg)),
            "encoder": model.encoder.state_dict(),
            "target_encoder": target.state_dict(),
            "predictor": model.predictor.state_dict(),
            **_plain(extra),
        },
        path,
    )


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[WorldModel, TrainRunConfig, dict]:
    """Load a checkpoint as the exported `WorldModel` (online encoder + predictor, eval mode)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    cfg = from_dict(TrainRunConfig, ckpt["config"])
    model = WorldModel(cfg.model)
    model.encoder.load_state_dict(ckpt["encoder"])
    model.predictor.load_state_dict(ckpt["predictor"])
    return model.eval(), cfg, ckpt


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay from 1 to min_ratio."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, 1.0 - momentum)


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h["step"] for h in history]
    for term in (*LOSS_TERMS, "total"):
        axes[0].plot(steps, [h[term] for h in history], label=term)
    axes[0].set(xlabel="step", ylabel="loss", yscale="log", title="training losses")
    axes[0].legend()
    val = [h for h in history if "val_k1_ratio" in h]
    if val:
        axes[1].plot([h["step"] for h in val], [h["val_k1_ratio"] for h in val], "o-", label="k=1")
        axes[1].plot([h["step"] for h in val], [h["val_kH_ratio"] for h in val], "s-", label="k=H")
        axes[1].legend()
    axes[1].axhline(1.0, color="gray", ls="--", lw=0.8)
    axes[1].set(xlabel="step", ylabel="error / copy-last", title="held-out latent prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    cfg: TrainRunConfig,
    episodes: Sequence[Episode],
    out_dir: str | Path,
    command: str = "",
) -> dict[str, Any]:
    """Train on `episodes` (split by episode into train / held-out), evaluate, write to `out_dir`.

    Returns (on every rank) a summary: checkpoint path, metrics, data summary, wall time.
    """
    t_start = time.time()
    mc, tc = cfg.model, cfg.train
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(tc.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(tc.num_threads)
    out_dir = Path(out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)

    for ep in episodes:
        check_episode(ep, mc.image_size, len(mc.joint_names))
    train_eps, val_eps = split_episodes(episodes, tc.val_fraction, tc.seed)
    dataset = WindowDataset(train_eps, mc.history, mc.horizon)
    gen = torch.Generator().manual_seed(tc.seed)
    if world > 1:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=tc.seed)
    else:
        sampler = RandomSampler(
            dataset, replacement=True, num_samples=tc.steps * tc.batch_size, generator=gen
        )
    loader = DataLoader(
        dataset,
        batch_size=tc.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=tc.num_workers,
        pin_memory=device.type == "cuda",
        generator=gen,
    )

    torch.manual_seed(tc.seed)  # parameter init (same on every rank; DDP also broadcasts)
    model = WorldModel(mc).to(device)
    target = copy.deepcopy(model.encoder).requires_grad_(False)
    net = (
        torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )
        if world > 1
        else model
    )
    opt = _optimizer(model, tc.lr, tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, tc.warmup_steps, tc.steps, tc.lr_min_ratio)
    )
    weights = {
        "teacher": tc.w_teacher,
        "rollout": tc.w_rollout,
        "joints": tc.w_joints,
        "variance": tc.w_variance,
        "covariance": tc.w_covariance,
    }
    limits = model.encoder.limits
    history: list[dict[str, float]] = []
    log_every = max(1, tc.steps // 200)

    def batches():
        epoch = 0
        while True:
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    data_iter = batches()
    bar = tqdm(range(tc.steps), desc="train", disable=rank != 0, dynamic_ncols=True)
    for step in bar:
        batch = {k: v.to(device, non_blocking=True) for k, v in next(data_iter).items()}
        out = net(batch["frames"], batch["joints"], batch["actions"])
        if tc.ema_momentum_end == 0:  # target = online encoder, stop-gradient: no second pass needed
            tgt = out["latents"][:, mc.history - 1 :].detach()
        else:
            with torch.no_grad():
                future = batch["frames"][:, mc.history - 1 :]  # frames K-1..T-1
                tgt, _ = target(future.flatten(0, 1), batch["joints"][:, mc.history - 1 :].flatten(0, 1))
                tgt = tgt.view(*future.shape[:2], *tgt.shape[1:])
        terms = jepa_losses(out, tgt, batch["joints"], limits, mc.history)
        loss = sum(weights[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        progress = step / max(1, tc.steps - 1)
        momentum = tc.ema_momentum_end - (tc.ema_momentum_end - tc.ema_momentum) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
        ema_update(target, model.encoder, momentum)

        evaluate_now = rank == 0 and tc.eval_every and step > 0 and step % tc.eval_every == 0
        if step % log_every == 0 or step == tc.steps - 1 or evaluate_now:
            rec = {
                "step": step,
                "total": loss.item(),
                "lr": sched.get_last_lr()[0],
                **{k: v.item() for k, v in terms.items()},
            }
            if evaluate_now:
                ratios = kstep_ratios(_deploy(model, target), val_eps, max_windows=256)
                rec |= {"val_k1_ratio": ratios[0], "val_kH_ratio": ratios[-1]}
                model.train()
            history.append(rec)
            bar.set_postfix(
                loss=f"{rec['total']:.3f}", tf=f"{rec['teacher']:.3f}", ro=f"{rec['rollout']:.3f}"
            )
        if rank == 0 and tc.checkpoint_every and step > 0 and step % tc.checkpoint_every == 0:
            save_checkpoint(out_dir / "checkpoint.pt", cfg, model, target, step=step)

    data_summary = summarize(episodes) | {"train_episodes": len(train_eps), "val_episodes": len(val_eps)}
    result: dict[str, Any] = {"checkpoint": str(out_dir / "checkpoint.pt"), "data": data_summary}
    if rank == 0:
        deploy = _deploy(model, target)
        metrics = evaluate(deploy, train_eps, val_eps, seed=tc.seed)
        wall = time.time() - t_start
        save_checkpoint(
            out_dir / "checkpoint.pt",
            cfg,
            model,
            target,
            step=tc.steps,
            wall_time_s=wall,
            data=data_summary,
            command=command,
        )
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out_dir / "train_log.json").write_text(json.dumps(history))
        plot_curves(history, out_dir / "curves.png")
        result |= {"metrics": metrics, "wall_time_s": wall}
        log.info(
            "trained %d steps in %.0f s; k=1 error / copy-last %.3f",
            tc.steps,
            wall,
            metrics["kstep_ratio"][0],
        )
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def _deploy(model: WorldModel, target: torch.nn.Module) -> WorldModel:
    """The model as exported: online encoder + predictor, eval mode.

    As in BYOL, the online encoder is kept: the predictor was trained on its latents, while the
    EMA target encoder only provides stable regression targets (and lags the online one).
    """
    deploy = WorldModel(model.cfg)
    deploy.encoder.load_state_dict(model.encoder.state_dict())
    deploy.predictor.load_state_dict(model.predictor.state_dict())
    return deploy.to(next(model.parameters()).device).eval()
