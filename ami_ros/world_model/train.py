"""Train the JEPA world model: `train(config, episodes, out_dir)`, used by `ami-ros train`.

Two modes, one loop:
- end to end (default): encoder + predictor from frames, EMA target + VICReg + joint supervision;
- frozen encoder (`train.freeze_encoder`): the encoder of `train.init_checkpoint` is kept as it is,
  every frame is encoded once (cached on disk, `latents.py`), and only the predictor trains, on
  latent windows: minutes, not an hour.

CPU, one GPU (`train.device`), or several processes under `torchrun` (DDP when WORLD_SIZE > 1:
NCCL on GPUs, gloo on CPU; `batch_size` is split across them, so N processes take the same steps
as one; only rank 0 writes). Batches are drawn per step from a generator seeded by (seed, step),
so a run resumed from its checkpoint (`resume=True`: model, EMA target, optimiser, schedule, RNG,
log) continues exactly as the uninterrupted run would have.

Writes to `out_dir`: checkpoint.pt (plain state dicts + config, loads with
`torch.load(..., weights_only=True)`), metrics.json (evaluate.py), curves.png, train_log.json.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from ami_ros.config import ConfigError, TrainRunConfig, from_dict
from ami_ros.world_model.data import Episode, WindowDataset, check_episode, split_episodes, summarize
from ami_ros.world_model.evaluate import evaluate, kstep_ratios
from ami_ros.world_model.latents import cached_latents
from ami_ros.world_model.losses import ArmHead, change_whitening, jepa_losses, prediction_losses
from ami_ros.world_model.model import Predictor, WorldModel

log = logging.getLogger(__name__)
LOSS_TERMS = ("teacher", "rollout", "joints", "variance", "covariance")
ENCODER_FIELDS = (
    "image_size",
    "patch_size",
    "encoder_dim",
    "encoder_depth",
    "encoder_heads",
    "latent_dim",
    "joint_names",
    "joint_limits",
    "pose_channels",
)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` -> cuda (this process's local rank) if available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> `bf16` where `device` computes bfloat16 natively (a GPU that supports it, a CPU
    with AVX512-BF16 or AMX), else `fp32`; `fp32` and `bf16` as they are."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a training forward pass runs in: bfloat16 autocast for `bf16`, else none."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (checkpoint/JSON friendly)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def save_checkpoint(
    path: Path,
    cfg: TrainRunConfig,
    model: WorldModel,
    target: torch.nn.Module,
    resume: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Plain state dicts + config dict; `encoder` is the online encoder (the one exported).

    `resume`: optimiser, schedule and RNG states and the log, stored as they are (`extra` is made
    plain: tuples become lists). Written to a temporary file, then renamed: a run killed while saving
    keeps its last checkpoint.
    """
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "config": _plain(dataclasses.asdict(cfg)),
            "encoder": model.encoder.state_dict(),
            "target_encoder": target.state_dict(),
            "predictor": model.predictor.state_dict(),
            **(resume or {}),
            **_plain(extra),
        },
        tmp,
    )
    os.replace(tmp, path)


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


def _optimizer(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, 1.0 - momentum)


class StepBatches(Sampler[list[int]]):
    """Each step's batch of window indices, drawn (with replacement) from a generator seeded by
    (seed, step); under DDP each rank takes its contiguous share of the same draw.

    A batch depends only on the step, so a resumed run sees exactly the batches the uninterrupted run
    would have, and N processes together see the batches one process would.
    """

    def __init__(self, n: int, batch: int, seed: int, steps: range, rank: int = 0, world: int = 1) -> None:
        if batch % world:
            raise ConfigError(f"train.batch_size {batch} must be a multiple of the {world} DDP processes")
        self.n, self.batch, self.seed, self.steps = n, batch, seed, steps
        self.share = slice(rank * batch // world, (rank + 1) * batch // world)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.steps:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            yield torch.randint(self.n, (self.batch,), generator=gen)[self.share].tolist()


class _PredictorWindows(torch.nn.Module):
    """`Predictor.windows` as a module's forward, so DDP can wrap frozen-encoder training."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, latents: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.predictor.windows(latents, actions)


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h["step"] for h in history]
    for term in (*LOSS_TERMS, "total"):
        if all(term in h for h in history):
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


def _start_from(cfg: TrainRunConfig) -> tuple[TrainRunConfig, dict | None]:
    """The `init_checkpoint` (None without one) and the run's config with its encoder fields: the
    encoder is that checkpoint's."""
    tc = cfg.train
    if not tc.init_checkpoint:
        if tc.freeze_encoder:
            raise ConfigError("train.freeze_encoder needs train.init_checkpoint (the encoder to keep)")
        return cfg, None
    ckpt = torch.load(tc.init_checkpoint, map_location="cpu", weights_only=True)
    init_model = from_dict(TrainRunConfig, ckpt["config"]).model
    fields = {f: getattr(init_model, f) for f in ENCODER_FIELDS}
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **fields)), ckpt


def train(
    cfg: TrainRunConfig,
    episodes: Sequence[Episode],
    out_dir: str | Path,
    command: str = "",
    resume: bool = False,
) -> dict[str, Any]:
    """Train on `episodes` (split by episode into train / held-out), evaluate, write to `out_dir`.

    With `resume`, continue from `out_dir/checkpoint.pt` when it holds an unfinished run of the same
    configuration (else start afresh).

    Returns (on every rank) a summary: checkpoint path, metrics, data summary, wall time.
    """
    t_start = time.time()
    tc = cfg.train
    cfg, init = _start_from(cfg)
    mc = cfg.model
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
    horizon = tc.rollout_horizon or mc.horizon

    torch.manual_seed(tc.seed)  # parameter init (same on every rank; DDP also broadcasts)
    model = WorldModel(mc)
    latents: tuple[list, list] | None = None
    if init is not None:
        model.encoder.load_state_dict(init["encoder"])
        if tc.init_predictor:
            model.predictor.load_state_dict(init["predictor"])
    if tc.freeze_encoder:
        model.encoder.requires_grad_(False)
        t0 = time.time()
        latents = (
            cached_latents(model.encoder, train_eps, tc.latent_cache),
            cached_latents(model.encoder, val_eps, tc.latent_cache),
        )
        log.info("latents ready in %.1f s", time.time() - t0)
    dataset = WindowDataset(train_eps, mc.history, horizon, latents[0] if latents else None)
    model = model.to(device)
    target = copy.deepcopy(model.encoder).requires_grad_(False)
    trained = model.predictor if tc.freeze_encoder else model
    module: torch.nn.Module = _PredictorWindows(model.predictor) if tc.freeze_encoder else model
    net = (
        torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device] if device.type == "cuda" else None
        )
        if world > 1
        else module
    )
    opt = _optimizer(list(trained.parameters()), tc.lr, tc.weight_decay)
    arm_head = None
    if tc.variance_beyond_joints:
        arm_head = ArmHead(len(mc.joint_names), mc.grid**2, mc.latent_dim, lr=5 * tc.lr).to(device)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, tc.warmup_steps, tc.steps, tc.lr_min_ratio)
    )
    history: list[dict[str, float]] = []
    start = 0
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if from_dict(TrainRunConfig, state["config"]) != cfg:
            raise ConfigError(f"{ckpt_path} was written by another configuration: cannot resume from it")
        if "optimizer_state" in state:
            model.encoder.load_state_dict(state["encoder"])
            model.predictor.load_state_dict(state["predictor"])
            target.load_state_dict(state["target_encoder"])
            opt.load_state_dict(state["optimizer_state"])
            sched.load_state_dict(state["scheduler_state"])
            torch.set_rng_state(state["rng_state"]["torch"])
            if arm_head is not None:
                arm_head.load_state_dict(state["arm_head"])
                arm_head.optimizer.load_state_dict(state["arm_head_optimizer"])
            history, start = state["log"], state["step"]  # steps completed
            log.info("resumed from %s at step %d of %d", ckpt_path, start, tc.steps)
    weights = {
        "teacher": tc.w_teacher,
        "rollout": tc.w_rollout,
        "joints": tc.w_joints,
        "variance": tc.w_variance,
        "covariance": tc.w_covariance,
        "arm_head": 0.0,  # logged only: the head trains with its own optimiser
    }
    limits = model.encoder.limits
    whitening = None
    if latents is not None and tc.latent_whitening > 0:
        whitening = change_whitening(latents[0], tc.latent_whitening).to(device)
    log_every = max(1, tc.steps // 200)
    sampler = StepBatches(len(dataset), tc.batch_size, tc.seed, range(start, tc.steps), rank, world)
    loader = DataLoader(
        dataset, batch_sampler=sampler, num_workers=tc.num_workers, pin_memory=device.type == "cuda"
    )

    precision = resolve_precision(tc.precision, device)

    def forward(*inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's outputs, computed at `train.precision`, returned in fp32: the losses (VICReg's
        covariance above all) need fp32 to see the latent's small directions."""
        with autocast(precision, device):
            out = net(*inputs)
        return {k: v.float() for k, v in out.items()}

    def losses(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if tc.freeze_encoder:
            out = forward(batch["latents"], batch["actions"])
            k = mc.history
            return prediction_losses(out, batch["latents"][:, k:], batch["joints"][:, k:], limits, whitening)
        out = forward(batch["frames"], batch["joints"], batch["actions"])
        if tc.ema_momentum_end == 0:  # target = online encoder, stop-gradient: no second pass needed
            tgt = out["latents"][:, mc.history - 1 :].detach()
        else:
            with torch.no_grad():
                future = batch["frames"][:, mc.history - 1 :]  # frames K-1..T-1
                tgt, _ = target(future.flatten(0, 1), batch["joints"][:, mc.history - 1 :].flatten(0, 1))
                tgt = tgt.view(*future.shape[:2], *tgt.shape[1:])
        return jepa_losses(out, tgt, batch["joints"], limits, mc.history, arm_head)

    def deploy() -> WorldModel:
        return _deploy(model)

    def resume_state() -> dict[str, Any]:
        return {
            "log": history,
            "optimizer_state": opt.state_dict(),
            "scheduler_state": sched.state_dict(),
            "rng_state": {"torch": torch.get_rng_state()},
            **(
                {"arm_head": arm_head.state_dict(), "arm_head_optimizer": arm_head.optimizer.state_dict()}
                if arm_head is not None
                else {}
            ),
        }

    model.train()
    bar = tqdm(total=tc.steps, initial=start, desc="train", disable=rank != 0, dynamic_ncols=True)
    log.info("precision %s", precision)
    for step, batch in zip(range(start, tc.steps), loader, strict=True):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        terms = losses(batch)
        loss = sum(weights[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trained.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        if not tc.freeze_encoder:
            progress = step / max(1, tc.steps - 1)
            momentum = tc.ema_momentum_end - (tc.ema_momentum_end - tc.ema_momentum) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
            ema_update(target, model.encoder, momentum)
        bar.update(1)

        evaluate_now = rank == 0 and tc.eval_every and step > 0 and step % tc.eval_every == 0
        if step % log_every == 0 or step == tc.steps - 1 or evaluate_now:
            rec = {
                "step": step,
                "total": loss.item(),
                "lr": sched.get_last_lr()[0],
                **{k: v.item() for k, v in terms.items()},
            }
            if evaluate_now:
                val_latents = latents[1] if latents else None
                ratios = kstep_ratios(deploy(), val_eps, max_windows=256, latents=val_latents)
                rec |= {"val_k1_ratio": ratios[0], "val_kH_ratio": ratios[-1]}
                model.train()
            history.append(rec)
            bar.set_postfix(loss=f"{rec['total']:.3f}", ro=f"{rec['rollout']:.3f}")
        if rank == 0 and tc.checkpoint_every and step > 0 and step % tc.checkpoint_every == 0:
            save_checkpoint(ckpt_path, cfg, model, target, resume_state(), step=step + 1)
    bar.close()

    data_summary = summarize(episodes) | {"train_episodes": len(train_eps), "val_episodes": len(val_eps)}
    result: dict[str, Any] = {"checkpoint": str(ckpt_path), "data": data_summary}
    if rank == 0:
        final = deploy()
        if latents is None:
            latents = (
                cached_latents(final.encoder, train_eps, tc.latent_cache),
                cached_latents(final.encoder, val_eps, tc.latent_cache),
            )
        metrics = evaluate(final, train_eps, val_eps, seed=tc.seed, latents=latents)
        wall = time.time() - t_start
        save_checkpoint(
            ckpt_path,
            cfg,
            model,
            target,
            resume_state(),
            step=tc.steps,
            wall_time_s=float(init.get("wall_time_s") or 0.0) + wall if init else wall,
            data=data_summary,
            command=" && ".join(filter(None, [init.get("command", "") if init else "", command])),
            **({"pose_training": init["pose_training"]} if init and "pose_training" in init else {}),
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


def _deploy(model: WorldModel) -> WorldModel:
    """The model as exported: online encoder + predictor, eval mode.

    As in BYOL, the online encoder is kept: the predictor was trained on its latents, while the
    EMA target encoder only provides stable regression targets (and lags the online one).
    """
    deploy = WorldModel(model.cfg)
    deploy.encoder.load_state_dict(model.encoder.state_dict())
    deploy.predictor.load_state_dict(model.predictor.state_dict())
    return deploy.to(next(model.parameters()).device).eval()
