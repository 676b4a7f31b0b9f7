"""A goal-conditioned proposal for the planner, learned from recordings (`ami-ros train-policy`).

A 5-step horizon cannot see that pushing a block starts by going round behind it: every cost of
the predicted latents ranks "arm at the goal pose, block unmoved" above "arm behind the block".
The proposal network supplies that long-horizon structure: from the latent now, the measured
joints, the goal image's latent and its joint estimate it proposes an action chunk
`(horizon, J)`; the planner samples around the proposal and scores every candidate with the world
model (see `ami_ros.core.controller`).

Training is behaviour cloning with hindsight goals on the recordings the world model was trained
on (camera, joint states, commands; nothing else): for a recorded step t, a later frame of the
same episode is the goal and the recorded actions t .. t + H - 1 are the target. Latents come
from the model directory's own `encoder.onnx`, the graph the robot runs, so the proposal fits any
exported model; the result is `policy.onnx` beside it, listed in its manifest.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from ami_ros.config import PolicyTrainConfig
from ami_ros.world_model.data import Episode, split_episodes

log = logging.getLogger(__name__)
GRAPH = "policy.onnx"


class ProposalNet(nn.Module):
    """(latent, joints, goal latent, goal joints) -> action chunk within the action limits.

    Image tokens of now and of the goal and their difference are stacked as channels of the
    token grid; the joints (normalised by their limits) are broadcast over it and fed to the head.
    """

    def __init__(
        self,
        grid: int,
        latent_dim: int,
        joint_limits: Sequence[float],
        action_limits: Sequence[float],
        horizon: int,
        channels: int = 64,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        j = len(joint_limits)
        self.grid, self.horizon = grid, horizon
        self.register_buffer("limits", torch.tensor(joint_limits, dtype=torch.float32))
        self.register_buffer("action_limits", torch.tensor(action_limits, dtype=torch.float32))
        self.conv = nn.Sequential(
            nn.Conv2d(3 * latent_dim + 2 * j, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.GELU(),
        )
        cells = ((grid + 1) // 2) ** 2
        self.head = nn.Sequential(
            nn.Linear(channels * cells + 2 * j, hidden), nn.GELU(), nn.Linear(hidden, horizon * j)
        )

    def forward(
        self, latent: torch.Tensor, joints: torch.Tensor, goal_latent: torch.Tensor, goal_joints: torch.Tensor
    ) -> torch.Tensor:
        """latent, goal_latent (B, L, D); joints, goal_joints (B, J) rad -> actions (B, H, J) rad."""
        b, g = latent.shape[0], self.grid
        tok, goal = latent[:, : g * g], goal_latent[:, : g * g]  # (B, G*G, D) image tokens
        grid = torch.cat([tok, goal, tok - goal], -1).transpose(1, 2).reshape(b, -1, g, g)
        q = torch.cat([joints / self.limits, goal_joints / self.limits], -1)  # (B, 2J)
        x = torch.cat([grid, q[:, :, None, None].expand(-1, -1, g, g)], 1)
        out = self.head(torch.cat([self.conv(x).flatten(1), q], -1))
        return torch.tanh(out).view(b, self.horizon, -1) * self.action_limits


def encode_episodes(
    runtime: Any, episodes: Sequence[Episode], batch: int = 256
) -> list[dict[str, np.ndarray]]:
    """Each episode's latents (T, L, D) from the model's encoder (measured joints) and the pose
    network's joint estimate (T, J) — what a goal image gives the planner."""
    out = []
    for ep in episodes:
        lat, est = [], []
        for s in range(0, len(ep["frames"]), batch):
            z, q = runtime.encode_batch(ep["frames"][s : s + batch], ep["joints"][s : s + batch])
            lat.append(z)
            est.append(q)
        out.append(
            {
                "latents": np.concatenate(lat),
                "joints_est": np.concatenate(est),
                "joints": ep["joints"].astype(np.float32),
                "actions": ep["actions"].astype(np.float32),
            }
        )
    return out


class HindsightSampler:
    """Batches of (latent_t, joints_t, goal latent_g, goal joints_g, actions t..t+H-1): g drawn
    uniformly from the `max_goal_steps` frames after t in the same episode; for a `stay_fraction`
    of the batch g = t and the target is to keep still (zero actions)."""

    def __init__(
        self,
        episodes: Sequence[dict[str, np.ndarray]],
        horizon: int,
        max_goal_steps: int,
        stay_fraction: float,
        rng: np.random.Generator,
    ) -> None:
        self.horizon, self.max_goal_steps, self.stay, self.rng = horizon, max_goal_steps, stay_fraction, rng
        cat = {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}
        self.latents, self.joints_est = cat["latents"], cat["joints_est"]
        self.joints, self.actions = cat["joints"], cat["actions"]
        ends = np.cumsum([len(e["actions"]) for e in episodes]) - 1
        self.end = np.repeat(ends, [len(e["actions"]) for e in episodes])  # last index of each step's episode
        self.starts = np.flatnonzero(np.arange(len(self.end)) + horizon <= self.end)

    def __call__(self, batch: int) -> tuple[torch.Tensor, ...]:
        t = self.rng.choice(self.starts, batch)
        span = np.minimum(self.end[t] - t, self.max_goal_steps)  # >= horizon
        g = t + 1 + (self.rng.random(batch) * span).astype(int)
        a = self.actions[t[:, None] + np.arange(self.horizon)]
        stay = self.rng.random(batch) < self.stay
        g[stay], a[stay] = t[stay], 0.0
        return tuple(
            torch.from_numpy(x)
            for x in (self.latents[t], self.joints[t], self.latents[g], self.joints_est[g], a)
        )


def train_policy(
    model_dir: str | Path,
    episodes: Sequence[Episode],
    out_dir: str | Path,
    cfg: PolicyTrainConfig,
    command: str = "",
) -> dict[str, Any]:
    """Train the proposal on `model_dir`'s latents and write `out_dir` = the model + policy.onnx.

    `out_dir` may be `model_dir` (the model is extended in place). Returns the training metrics,
    also recorded in the manifest's `policy` section.
    """
    from ami_ros.runtime import load_model

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.num_threads)
    rng = np.random.default_rng(cfg.seed)
    runtime = load_model(model_dir, graphs=("encoder.onnx",), intra_op_threads=cfg.num_threads)
    m = runtime.manifest
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    h, k, stay = runtime.horizon, cfg.max_goal_steps, cfg.stay_fraction
    train_set = HindsightSampler(encode_episodes(runtime, train_eps), h, k, stay, rng)
    val_set = HindsightSampler(encode_episodes(runtime, val_eps), h, k, stay, np.random.default_rng(1))
    val = val_set(2048)
    encode_s = time.time() - t0
    net = ProposalNet(
        m["latent"]["grid"][0], runtime.latent_shape[1], runtime.joint_limits.tolist(),
        runtime.action_limits.tolist(), runtime.horizon, cfg.channels, cfg.hidden,
    )  # fmt: skip
    alim = net.action_limits
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    history = []

    def val_loss() -> float:
        net.eval()
        with torch.no_grad():
            loss = (((net(*val[:4]) - val[4]) / alim) ** 2).mean()
        net.train()
        return float(loss)

    for step in range(1, cfg.steps + 1):
        x = train_set(cfg.batch_size)
        loss = (((net(*x[:4]) - x[4]) / alim) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            history.append(
                {"step": step, "train": loss.item(), "val": val_loss(), "wall_s": time.time() - t0}
            )
            log.info(
                "step %d/%d: train %.4f, held-out %.4f", step, cfg.steps, loss.item(), history[-1]["val"]
            )
    net.eval()
    zero = float(((val[4] / alim) ** 2).mean())
    record = {
        "command": command,
        "wall_time_s": round(time.time() - t0, 1),
        "encode_time_s": round(encode_s, 1),
        "data": {
            "episodes": len(episodes),
            "train_episodes": len(train_eps),
            "val_episodes": len(val_eps),
            "transitions": int(sum(len(e["actions"]) for e in episodes)),
            "goals": f"hindsight: a frame 1 .. {k} steps later in the same episode, uniform; "
            f"{stay:.0%} the frame itself (keep still)",
        },
        "config": dataclasses.asdict(cfg),
        "metrics": {"val_action_mse": history[-1]["val"], "val_action_mse_zero_baseline": zero},
    }
    write_policy(net, model_dir, out_dir, val[:4], record)
    return record["metrics"] | {"history": history}


def write_policy(
    net: ProposalNet,
    model_dir: str | Path,
    out_dir: str | Path,
    example: tuple[torch.Tensor, ...],
    record: dict,
) -> None:
    """Write `out_dir` = `model_dir` + policy.onnx, listed (sha256, shapes) in its manifest, whose
    `policy` section gets `record` (command, data, config, metrics) and the export parity."""
    from ami_ros.runtime.world_model import sha256

    out = Path(out_dir)
    if out.resolve() != Path(model_dir).resolve():
        shutil.copytree(model_dir, out, dirs_exist_ok=True)
    manifest = yaml.safe_load((out / "manifest.yaml").read_text())
    spec = policy_spec(net, manifest["latent"]["shape"])
    parity = export_policy(net, out / GRAPH, example, spec)
    manifest["files"][GRAPH] = {"sha256": sha256(out / GRAPH), "bytes": (out / GRAPH).stat().st_size, **spec}
    weights = record.get("config", {}).get("cost_weights")
    if weights:
        n = len(manifest["rollout_cost"]["default_weights"])
        if len(weights) != n:
            raise ValueError(f"cost_weights {weights}: the model's rollout cost takes {n} weights")
        manifest["rollout_cost"]["default_weights"] = [float(w) for w in weights]
        manifest["rollout_cost"]["default_weights_from"] = "ami-ros train-policy (cost_weights)"
    metrics = record.get("metrics", {}) | {"parity_max_abs": parity}
    manifest["policy"] = {
        "what": "goal-conditioned proposal: (latent, joints, goal latent, goal joint estimate) -> "
        "actions (horizon, J); the planner samples around it and scores with the world model",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "architecture": {"channels": net.conv[0].out_channels, "hidden": net.head[0].out_features},
        **record,
        "metrics": metrics,
    }
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def policy_spec(net: ProposalNet, latent_shape: Sequence[int]) -> dict[str, dict[str, list]]:
    """policy.onnx input/output shapes as the manifest lists them ("batch": the dynamic dimension)."""
    (l, d), j = latent_shape, len(net.limits)  # noqa: E741
    return {
        "inputs": {
            "latent": ["batch", l, d],
            "joints": ["batch", j],
            "goal_latent": ["batch", l, d],
            "goal_joints": ["batch", j],
        },
        "outputs": {"actions": ["batch", net.horizon, j]},
    }


def export_policy(net: ProposalNet, path: Path, example: tuple[torch.Tensor, ...], spec: dict) -> float:
    """Export to ONNX (batch-dynamic) and return max |onnxruntime - torch| on `example`."""
    from ami_ros.world_model.export import export_checked

    return export_checked(net, tuple(x[:8].float() for x in example), path, spec)
