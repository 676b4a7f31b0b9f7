"""The scene slot and its forecast, learned from recordings beside an exported model
(`ami-ros train-slot`; the slot itself: `ami_ros.core.scene_slot`).

The JEPA latent carries the block but no predictor of it forecasts the block better than copying
the last frame (docs/history.md). The scene slot reads the block from the camera frame directly,
beyond what the joint states explain, and forecasts it from where the commands take the arm:

1. **Arm layer.** A learned background image and, over it, a layer (colour, opacity) that a small
   decoder renders from the joint states, fitted to the recorded frames (MSE). What it cannot
   explain is the scene; `arm_layer.onnx` returns that squared residual outside the arm.
2. **Slot.** The residual's peak, refined to a centroid (`core.scene_slot.peak_centroid`).
3. **Forecast.** An MLP maps the slot, its last step, the number of frames k ahead, and the wrist's
   and tip's path along the commanded joints (forward kinematics of the robot's URDF; given also
   relative to the slot through a learned map of the slot towards the robot's frame) to the slot's
   move k frames ahead (`slot_forecast.onnx`), trained on the recordings' windows for k = 1 ..
   horizon.

Only camera, joint states and commands are used. Where the recordings carry the simulator's block
position (the embedded robot's), it measures only (`slot_diagnostic`): a homography from the slot
to the table, fitted on the training frames, reads slot and forecast in metres on held-out episodes.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from ami_ros.config import SlotTrainConfig
from ami_ros.core.kinematics import Chain
from ami_ros.core.scene_slot import held_path, peak_centroid, wrist_tip_path
from ami_ros.world_model.data import Episode, split_episodes

log = logging.getLogger(__name__)
ARM_GRAPH, FORECAST_GRAPH = "arm_layer.onnx", "slot_forecast.onnx"
MOVES_M, STILL_M = 0.01, 0.002  # the diagnostic's windows: the block moves >= 1 cm / stays < 2 mm


def _chw(frames: np.ndarray) -> np.ndarray:
    return frames if frames.shape[1] == 3 else frames.transpose(0, 3, 1, 2)


class ArmLayer(nn.Module):
    """What the joints explain: a learned background with an arm layer rendered from the joints."""

    def __init__(self, joints: int, size: int, background: torch.Tensor | None = None) -> None:
        super().__init__()
        self.background = nn.Parameter(
            background.clone() if background is not None else torch.zeros(3, size, size)
        )
        self.fc = nn.Sequential(nn.Linear(2 * joints, 256), nn.GELU(), nn.Linear(256, 64 * 8 * 8), nn.GELU())
        layers: list[nn.Module] = []
        ch, s = 64, 8
        while s < size:
            nxt = max(16, ch // 2)
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(ch, nxt, 3, padding=1), nn.GELU()]
            ch, s = nxt, s * 2
        self.up = nn.Sequential(*layers, nn.Conv2d(ch, 4, 3, padding=1))

    def render(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) the composite in [0, 1] and (B, 1, S, S) the arm's opacity at joints q (B, J)."""
        h = self.up(self.fc(torch.cat([torch.sin(q), torch.cos(q)], -1)).view(-1, 64, 8, 8))
        alpha = torch.sigmoid(h[:, :1])
        return self.background * (1 - alpha) + alpha * torch.sigmoid(h[:, 1:]), alpha

    def forward(self, image: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """(B, S, S) the squared residual of frames (B, S, S, 3) uint8 RGB outside the arm."""
        img = image.permute(0, 3, 1, 2).float() / 255
        pred, alpha = self.render(joints)
        return ((img - pred) ** 2).sum(1) * (1 - alpha[:, 0]) ** 2


class SlotForecast(nn.Module):
    """The slot k frames ahead (B, 2) px from the slot (B, 2), its last step (B, 2), the wrist and tip
    path (B, H+1, 2, 3) held after the k-th command, and k (B,); normalisation inside."""

    def __init__(self, horizon: int, width: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.plane = nn.Sequential(nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 2))
        n = 4 + 2 + 1 + (horizon + 1) * 2 * 3 + (horizon + 1) * 2 * 2
        self.net = nn.Sequential(
            nn.Linear(n, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
            nn.Linear(width, width), nn.GELU(), nn.Linear(width, 2),
        )  # fmt: skip
        for name in ("x_mean", "x_std", "p_mean", "p_std", "y_std"):
            self.register_buffer(name, torch.ones(4 if name[0] == "x" else 3 if name[0] == "p" else 2))

    def forward(
        self, slot: torch.Tensor, last: torch.Tensor, path: torch.Tensor, k: torch.Tensor
    ) -> torch.Tensor:
        x = (torch.cat([slot, last], -1) - self.x_mean) / self.x_std
        p = (path - self.p_mean) / self.p_std
        at = self.plane(x[:, :2])
        rel = p[..., :2] - at[:, None, None, :]
        kk = k.float()[:, None] / self.horizon
        return slot + self.net(torch.cat([x, at, kk, p.flatten(1), rel.flatten(1)], -1)) * self.y_std


def _fit(params, lr: float, steps: int, loss_at: Callable[[], torch.Tensor], label: str, every: int) -> None:
    """`steps` AdamW steps on the loss `loss_at()` draws (one-cycle schedule peaking at `lr`),
    logging it every `every` steps."""
    opt = torch.optim.AdamW(params, lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    t0 = time.time()
    for step in range(steps):
        loss = loss_at()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % every == 0 or step == steps - 1:
            log.info("%s step %d loss %.5f (%.0f s)", label, step, loss.item(), time.time() - t0)


def train_arm_layer(episodes: list[Episode], cfg: SlotTrainConfig, rng: np.random.Generator) -> ArmLayer:
    """Fit the background and the arm layer to the episodes' frames from their joint states (MSE)."""
    frames = np.concatenate([_chw(e["frames"]) for e in episodes])
    joints = np.concatenate([e["joints"] for e in episodes]).astype(np.float32)
    background = np.median(frames[:: max(1, len(frames) // 4000)], 0).astype(np.float32) / 255
    arm = ArmLayer(joints.shape[1], cfg.image_size, torch.from_numpy(background))

    def loss_at() -> torch.Tensor:  # MSE of a random batch of frames
        i = rng.integers(len(frames), size=cfg.renderer_batch)
        pred, _ = arm.render(torch.from_numpy(joints[i]))
        return nn.functional.mse_loss(pred, torch.from_numpy(frames[i]).float() / 255)

    _fit(arm.parameters(), cfg.lr, cfg.renderer_steps, loss_at, "arm layer", 500)
    return arm.eval()


@torch.no_grad()
def episode_slots(arm: ArmLayer, ep: Episode, window: int, batch: int = 1024) -> np.ndarray:
    """(T, 2) the scene slot of each frame of an episode."""
    frames = ep["frames"] if ep["frames"].shape[-1] == 3 else ep["frames"].transpose(0, 2, 3, 1)
    res = [
        arm(
            torch.from_numpy(np.ascontiguousarray(frames[i : i + batch])),
            torch.from_numpy(ep["joints"][i : i + batch]).float(),
        ).numpy()
        for i in range(0, len(frames), batch)
    ]
    return peak_centroid(np.concatenate(res), window)


class _Windows:
    """Every window (slot now, its last step, the path of the next `horizon` recorded commands, the
    slot after each of them) of a set of episodes."""

    def __init__(
        self, episodes: list[Episode], slots: list[np.ndarray], chain: Chain, limits: np.ndarray, h: int
    ):
        empty = (np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, h + 1, 2, 3)), np.zeros((0, h, 2)))
        cols: list[list[np.ndarray]] = [[e] for e in (*empty, np.zeros((0, h + 1, 2)))]
        for ep, s in zip(episodes, slots, strict=True):
            t = np.arange(1, len(s) - h)
            if not len(t):
                continue
            acts = np.stack([ep["actions"][i : i + h] for i in t])
            cols[0].append(s[t])
            cols[1].append(s[t] - s[t - 1])
            cols[2].append(wrist_tip_path(chain, ep["joints"][t], acts, h, limits))
            cols[3].append(np.stack([s[i + 1 : i + h + 1] for i in t]))  # (n, H, 2): k = 1 .. H
            block = ep.get("block_xy")
            cols[4].append(
                np.stack([block[i : i + h + 1] for i in t])
                if block is not None
                else np.zeros((len(t), h + 1, 2))
            )
        self.slot, self.last, self.path, self.ahead, self.block = (
            np.concatenate(c).astype(np.float32) for c in cols
        )

    def __len__(self) -> int:
        return len(self.slot)


def train_forecast(w: _Windows, cfg: SlotTrainConfig, rng: np.random.Generator) -> SlotForecast:
    """Fit the forecast on windows w, k drawn uniformly from 1 .. horizon each step."""
    h = cfg.horizon
    net = SlotForecast(h, cfg.width)
    net.x_mean.copy_(torch.from_numpy(np.c_[w.slot, w.last].mean(0)))
    net.x_std.copy_(torch.from_numpy(np.c_[w.slot, w.last].std(0) + 0.01))  # px
    net.p_mean.copy_(torch.from_numpy(w.path.mean((0, 1, 2))))
    net.p_std.copy_(torch.from_numpy(w.path.std((0, 1, 2)) + 1e-3))  # m
    net.y_std.copy_(torch.from_numpy((w.ahead[:, -1] - w.slot).std(0) + 0.01))

    def loss_at() -> torch.Tensor:  # a random batch of windows, each at a random k
        i = rng.integers(len(w), size=cfg.batch_size)
        k = rng.integers(1, h + 1, size=cfg.batch_size)
        pred = net(*map(torch.from_numpy, (w.slot[i], w.last[i], held_path(w.path[i], k), k)))
        return (((pred - torch.from_numpy(w.ahead[i, k - 1])) / net.y_std) ** 2).mean()

    _fit(net.parameters(), cfg.lr, cfg.steps, loss_at, "slot forecast", 1000)
    return net.eval()


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares (DLT, on normalised points) 3 x 3 map from pixel points to plane points."""

    def normaliser(pts: np.ndarray) -> np.ndarray:
        c, s = pts.mean(0), np.sqrt(2) / (np.linalg.norm(pts - pts.mean(0), axis=1).mean() + 1e-12)
        return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])

    ts, td = normaliser(src), normaliser(dst)
    x, y = (np.c_[src, np.ones(len(src))] @ ts.T)[:, :2].T
    u, v = (np.c_[dst, np.ones(len(dst))] @ td.T)[:, :2].T
    o, z = np.ones_like(x), np.zeros_like(x)
    rows = np.concatenate(
        [
            np.stack([x, y, o, z, z, z, -u * x, -u * y, -u], 1),
            np.stack([z, z, z, x, y, o, -v * x, -v * y, -v], 1),
        ]
    )
    h = np.linalg.svd(rows, full_matrices=False)[2][-1].reshape(3, 3)
    return np.linalg.inv(td) @ h @ ts


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (..., 2) through the 3 x 3 map h."""
    ph = np.concatenate([pts, np.ones((*pts.shape[:-1], 1))], -1) @ h.T
    return ph[..., :2] / ph[..., 2:]


@torch.no_grad()
def slot_diagnostic(net: SlotForecast, train: _Windows, held_out: _Windows) -> dict:
    """How well the slot places the block and the forecast forecasts it 5 and 20 frames ahead (or
    as far as it looks), in cm, on held-out windows (median; simulator ground truth measures only):
    where the block moves >= 1 cm in k frames, and where it stays (< 2 mm), against copying the last
    slot and the block's true last position."""
    hmap = homography(train.slot, train.block[:, 0])
    for reach in (0.03, 0.01):  # refit without the frames where the slot misses the block
        inl = np.linalg.norm(apply_homography(hmap, train.slot) - train.block[:, 0], axis=1) < reach
        hmap = homography(train.slot[inl], train.block[inl, 0])
    place = np.linalg.norm(apply_homography(hmap, held_out.slot) - held_out.block[:, 0], axis=1)
    out: dict = {
        "slot_places_block_cm": {
            "median": round(100 * float(np.median(place)), 2),
            "p90": round(100 * float(np.percentile(place, 90)), 2),
        },
        "horizons": {},
    }
    for k in sorted({k for k in (5, 20) if k <= net.horizon} | {net.horizon}):
        kk = np.full(len(held_out), k)
        pred = net(
            *map(torch.from_numpy, (held_out.slot, held_out.last, held_path(held_out.path, k), kk))
        ).numpy()
        now, fut = held_out.block[:, 0], held_out.block[:, k]
        moved = np.linalg.norm(fut - now, axis=1)
        err = np.linalg.norm(apply_homography(hmap, pred) - fut, axis=1)
        copy = np.linalg.norm(apply_homography(hmap, held_out.slot) - fut, axis=1)
        row = {}
        for name, m in (("moves", moved >= MOVES_M), ("still", moved < STILL_M)):
            if m.any():
                row[name] = {
                    "windows": int(m.sum()),
                    "forecast_cm": round(100 * float(np.median(err[m])), 2),
                    "copy_last_cm": round(100 * float(np.median(copy[m])), 2),
                    "copy_last_true_cm": round(100 * float(np.median(moved[m])), 2),
                }
        if "moves" in row:
            row["copy_last_over_forecast"] = round(
                row["moves"]["copy_last_cm"] / max(row["moves"]["forecast_cm"], 1e-6), 2
            )
        out["horizons"][str(k)] = row
    return out


def train_slot(
    model_dir: str | Path,
    episodes: list[Episode],
    out_dir: str | Path,
    cfg: SlotTrainConfig,
    joint_limits: np.ndarray,
    joint_names: list[str],
    work_dir: str | Path | None = None,
    command: str = "",
) -> dict:
    """Train the arm layer and the slot forecast on `episodes` and write `out_dir` = `model_dir` +
    arm_layer.onnx + slot_forecast.onnx, listed in its manifest with a `scene_slot` section (command,
    config, wall time, the diagnostic where the recordings carry the block's position).

    `work_dir` keeps the trained arm layer (a run killed after it resumes at the slots) and, at the
    end, `record` as metrics.json."""
    t_start = time.time()
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    chain = Chain(cfg.urdf, cfg.tip_link, joint_names)
    limits = np.asarray(joint_limits, np.float32)
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    arm_ckpt = Path(work_dir) / "arm_layer.pt" if work_dir else None
    if arm_ckpt is not None and arm_ckpt.exists():
        arm = ArmLayer(len(joint_names), cfg.image_size)
        arm.load_state_dict(torch.load(arm_ckpt, weights_only=True))
        arm.eval()
        log.info("arm layer resumed from %s", arm_ckpt)
    else:
        arm = train_arm_layer(train_eps, cfg, rng)
        if arm_ckpt is not None:
            arm_ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save(arm.state_dict(), arm_ckpt)
    t_arm = time.time() - t_start
    t0 = time.time()
    train_w, val_w = (
        _Windows(eps, [episode_slots(arm, ep, cfg.window) for ep in eps], chain, limits, cfg.horizon)
        for eps in (train_eps, val_eps)
    )
    t_slots = time.time() - t0
    if not len(train_w):
        raise ValueError(f"no training episode is longer than horizon + 1 = {cfg.horizon + 1} frames")
    t0 = time.time()
    net = train_forecast(train_w, cfg, rng)
    t_forecast = time.time() - t0
    metrics: dict = {
        "train_windows": len(train_w),
        "held_out_windows": len(val_w),
        "seconds": {
            "arm_layer": round(t_arm, 1),
            "slots_and_windows": round(t_slots, 1),
            "forecast": round(t_forecast, 1),
        },
    }
    if all("block_xy" in e for e in episodes) and len(val_w):
        metrics["slot_forecast"] = slot_diagnostic(net, train_w, val_w)
    record = {
        "command": command,
        "data": {"episodes": len(episodes), "held_out_episodes": len(val_eps)},
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "metrics": metrics,
    }
    n = min(8, len(train_w))
    frames = np.concatenate([e["frames"] for e in train_eps[:2]])[:n]
    examples = (
        (torch.from_numpy(frames if frames.shape[-1] == 3 else frames.transpose(0, 2, 3, 1)).contiguous(),
         torch.from_numpy(np.concatenate([e["joints"] for e in train_eps[:2]])[:n]).float()),
        (*map(torch.from_numpy, (train_w.slot[:n], train_w.last[:n], train_w.path[:n])),
         torch.from_numpy(1 + np.arange(n) % cfg.horizon)),
    )  # fmt: skip
    write_slot_graphs(arm, net, model_dir, out_dir, record, examples, t_start)
    if work_dir:
        (Path(work_dir) / "metrics.json").write_text(json.dumps(record, indent=2))
    return record


def write_slot_graphs(
    arm: ArmLayer,
    net: SlotForecast,
    model_dir: str | Path,
    out_dir: str | Path,
    record: dict,
    examples: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]],
    t_start: float,
) -> None:
    """Export both graphs into `out_dir` (a copy of `model_dir` unless the same), check their parity
    with torch on `examples` (recorded frames and windows: the arm layer's, the forecast's inputs)
    and list them (sha256, shapes) and `record` in its manifest."""
    from ami_ros.runtime.world_model import sha256
    from ami_ros.world_model.export import export_checked

    out = Path(out_dir)
    if out.resolve() != Path(model_dir).resolve():
        shutil.copytree(model_dir, out, dirs_exist_ok=True)
    manifest = yaml.safe_load((out / "manifest.yaml").read_text())
    s, j, h = arm.background.shape[-1], arm.fc[0].in_features // 2, net.horizon
    specs = {
        ARM_GRAPH: {
            "inputs": {"image": ["batch", s, s, 3], "joints": ["batch", j]},
            "outputs": {"residual": ["batch", s, s]},
        },
        FORECAST_GRAPH: {
            "inputs": {
                "slot": ["batch", 2],
                "last": ["batch", 2],
                "path": ["batch", h + 1, 2, 3],
                "k": ["batch"],
            },
            "outputs": {"slot_ahead": ["batch", 2]},
        },
    }
    parity = {}
    for name, module, args in ((ARM_GRAPH, arm, examples[0]), (FORECAST_GRAPH, net, examples[1])):
        parity[name] = export_checked(module, args, out / name, specs[name])
        manifest["files"][name] = {
            "sha256": sha256(out / name),
            "bytes": (out / name).stat().st_size,
            **specs[name],
        }
    manifest["scene_slot"] = {
        "what": "the camera frame beyond what the joints explain: arm_layer.onnx (frame, joints -> squared "
        "residual outside the arm; the slot is its peak's centroid, core.scene_slot) and slot_forecast.onnx "
        "(slot, its last step, the wrist and tip path along commands, k -> the slot k frames ahead, px)",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **record,
        "parity_max_abs": parity,
        "wall_time_s": round(time.time() - t_start, 1),
    }
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
