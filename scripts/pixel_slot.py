"""Does the camera place the block to a centimetre, beyond what the joints explain? An experiment;
its arm layer, slot and homography are now the package's (`world_model.scene_slot`,
`core.scene_slot`, shipped by `ami-ros train-slot`), its per-k forecasts are not.

From the recordings' frames and joint states only, it learns what the arm looks like: a static
background (a learned image) and, over it, an arm layer (colour and opacity) rendered from the
joint states by a small decoder. What the joints explain is that composite; the rest of the frame
is the scene. Its **pixel slot** is where that remainder is strongest (outside the arm layer): the
centroid of the squared residual above its floor around the peak, in pixels. Nothing here is
told what the block looks like, where the table is, or that there is one object.

Then, like `contact_ceiling.py` but from the slot instead of the block's true position: an MLP
from the slot, its last step and the wrist's and tip's path along the commanded joints (forward
kinematics of the robot's URDF; a learned map takes the slot towards the robot's frame so that the
path can be given relative to it) forecasts the slot k frames ahead.

Simulator ground truth is used for measuring only: a homography from the slot to the block's true
position, fitted on the training frames, reads the slot (and the forecast slot) in metres; the
forecast is scored like the other block forecasts (median error on held-out windows where the block
moves >= 1 cm or stays put, < 2 mm), against copy-last of the slot and against copy-last of the
block's true position.

`--data` takes several recordings (each split into training and held-out episodes alike, each
scored on its own; `collect --probe-fraction` ones among them); `--renderer` reuses an arm layer;
`--gate 1` multiplies the forecast move by a learned function of how near the path comes to the
slot. The arm layer, the slots, the homography and each forecast are saved under `--out`.

Usage: python scripts/pixel_slot.py --data runs/retrain2/data[,runs/exp/probe/data] [--size 64]
           [--renderer-steps 3000] [--renderer PATH] [--ks 5,20] [--width 256] [--gate 0]
           [--steps 6000] [--out runs/exp/pixel_slot]
"""

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ami_ros.cli import read_training_episodes
from ami_ros.config import SlotTrainConfig, TrainRunConfig, load_yaml
from ami_ros.core.kinematics import Chain
from ami_ros.core.preprocess import resize_frame
from ami_ros.core.scene_slot import peak_centroid, wrist_tip_path
from ami_ros.world_model.data import split_episodes
from ami_ros.world_model.scene_slot import (
    ArmLayer,
    apply_homography,
    episode_slots,
    homography,
    train_arm_layer,
)


def load_arm_layer(path: str | Path, joints: int, size: int = 64) -> ArmLayer:
    """A trained arm layer (`renderer_SIZE.pt`), in evaluation mode."""
    arm = ArmLayer(joints, size)
    arm.load_state_dict(torch.load(path, weights_only=True))
    return arm.eval()


@torch.no_grad()
def camera_slot(arm: ArmLayer, rgb: np.ndarray, q: np.ndarray, window: int = 2) -> np.ndarray:
    """(2,) the pixel slot of one camera frame (any size) with the arm at q."""
    frame = torch.from_numpy(resize_frame(rgb, arm.background.shape[-1])[None])
    return peak_centroid(arm(frame, torch.from_numpy(np.asarray(q, np.float32)[None])).numpy(), window)[0]


class SlotDynamics(nn.Module):
    """The slot's move from the slot, its last step and the path given relative to the slot; with
    `gate`, times a learned function of how near the path comes to the slot (a learned reach)."""

    def __init__(self, k: int, width: int, gate: bool = False) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.tensor([0.5, 2.0])) if gate else None  # reach, log sharpness
        self.plane = nn.Sequential(nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 2))
        n = 4 + 2 + (k + 1) * 2 * 3 + (k + 1) * 2 * 2
        self.net = nn.Sequential(
            nn.Linear(n, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
            nn.Linear(width, width), nn.GELU(), nn.Linear(width, 2),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
        at = self.plane(x[:, :2])
        rel = path[..., :2] - at[:, None, None, :]
        out = self.net(torch.cat([x, at, path.flatten(1), rel.flatten(1)], -1))
        if self.gate is not None:
            near = rel.norm(dim=-1).flatten(1).min(1).values
            out = out * torch.sigmoid(torch.exp(self.gate[1]) * (self.gate[0] - near))[:, None]
        return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="runs/retrain2/data", help="comma-separated recordings, each split")
    p.add_argument("--renderer", default="", help="a trained arm layer (default: OUT/renderer_SIZE.pt)")
    p.add_argument("--config", default="config/train.yaml")
    p.add_argument("--urdf", default="sim/assets/tabletop_arm.urdf")
    p.add_argument("--size", type=int, default=64, help="frame size the slot is read at (px)")
    p.add_argument("--renderer-steps", type=int, default=3000)
    p.add_argument("--window", type=int, default=2, help="half-width of the centroid window (px)")
    p.add_argument("--ks", default="5,20")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--gate", type=int, default=0, help="1: the move gated by the path's nearness")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/exp/pixel_slot")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    cfg = load_yaml(args.config, TrainRunConfig)
    mc = cfg.model
    t0 = time.time()
    eps, train_eps, held_out = [], [], {}
    for data in args.data.split(","):
        some = read_training_episodes(data, args.size, cfg.data)
        train, held_out[data] = split_episodes(some, cfg.train.val_fraction, cfg.train.seed)
        eps, train_eps = eps + some, train_eps + train
    val_eps = [e for v in held_out.values() for e in v]
    print(f"{len(train_eps)} training / {len(val_eps)} held-out episodes read in {time.time() - t0:.0f} s")
    chain = Chain(args.urdf, "end_effector", mc.joint_names)
    lim = np.asarray(mc.joint_limits)

    renderer_path = Path(args.renderer or out / f"renderer_{args.size}.pt")
    renderer_trained = not renderer_path.exists()
    if not renderer_trained:
        arm = load_arm_layer(renderer_path, len(mc.joint_names), args.size)
        print(f"renderer loaded from {renderer_path}")
    else:
        slot_cfg = SlotTrainConfig(image_size=args.size, renderer_steps=args.renderer_steps)
        arm = train_arm_layer(train_eps, slot_cfg, rng)
        torch.save(arm.state_dict(), renderer_path)

    key = hashlib.sha1(f"{args.data} {renderer_path}".encode()).hexdigest()[:8]
    t0, cache = time.time(), out / f"slots_{args.size}_w{args.window}_{key}.npz"
    if cache.exists() and not renderer_trained:
        for ep, s in zip(eps, np.load(cache)["slots"], strict=True):
            ep["slot"] = s[: len(ep["joints"])]
    else:
        for ep in eps:
            ep["slot"] = episode_slots(arm, ep, args.window)
        longest = max(len(e["slot"]) for e in eps)
        padded = np.zeros((len(eps), longest, 2), np.float32)
        for i, ep in enumerate(eps):
            padded[i, : len(ep["slot"])] = ep["slot"]
        np.savez(cache, slots=padded)
    print(f"slots of {sum(len(e['slot']) for e in eps)} frames in {time.time() - t0:.0f} s")

    # Measuring only: the block's true position against the slot.
    tr_slot = np.concatenate([e["slot"] for e in train_eps])
    tr_block = np.concatenate([e["block_xy"] for e in train_eps])
    hmap = homography(tr_slot, tr_block)
    for reach in (0.03, 0.01):  # refit without the misses
        inl = np.linalg.norm(apply_homography(hmap, tr_slot) - tr_block, axis=1) < reach
        hmap = homography(tr_slot[inl], tr_block[inl])
    np.save(out / "homography.npy", hmap)
    res: dict = {"args": vars(args)}
    for data, val in held_out.items():
        va_slot = np.concatenate([e["slot"] for e in val])
        va_block = np.concatenate([e["block_xy"] for e in val])
        place = np.linalg.norm(apply_homography(hmap, va_slot) - va_block, axis=1)
        res[data] = {
            "slot_places_block_cm": {
                "median": round(100 * float(np.median(place)), 2),
                "p90": round(100 * float(np.percentile(place, 90)), 2),
                "over_3cm": round(float((place > 0.03).mean()), 4),
            }
        }
        print(f"{data}: slot places the block (held-out frames):", json.dumps(res[data]), flush=True)

    def windows(episodes: list[dict], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
        """Slot features, the path (k+1, 2, 3) of wrist and tip, the slot's move k frames ahead; and the
        true block now / k ahead with the slot, for scoring."""
        xs, paths, ys, keep = [], [], [], []
        for ep in episodes:
            s, b, q, a = ep["slot"], ep["block_xy"], ep["joints"], ep["actions"]
            for t in range(1, len(s) - k):
                paths.append(wrist_tip_path(chain, q[t], a[t : t + k], k, lim))
                xs.append(np.concatenate([s[t], s[t] - s[t - 1]]))
                ys.append(s[t + k] - s[t])
                keep.append((s[t], b[t], b[t + k]))
        return np.asarray(xs, np.float32), np.asarray(paths, np.float32), np.asarray(ys, np.float32), keep

    for k in [int(k) for k in args.ks.split(",") if k]:
        t0 = time.time()
        x, path, y, _ = windows(train_eps, k)
        mu, sd = x.mean(0), x.std(0) + 1e-6
        pmu, psd = path.mean((0, 1, 2)), path.std((0, 1, 2)) + 1e-6
        ys = y.std(0) + 1e-6
        net = SlotDynamics(k, args.width, bool(args.gate))
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.steps)
        xt, pt, yt = (
            torch.from_numpy((x - mu) / sd),
            torch.from_numpy((path - pmu) / psd),
            torch.from_numpy(y / ys),
        )
        for _ in range(args.steps):
            i = torch.from_numpy(rng.integers(len(xt), size=512))
            loss = nn.functional.mse_loss(net(xt[i], pt[i]), yt[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        for data, val in held_out.items():
            xv, pathv, _, keep = windows(val, k)
            with torch.no_grad():
                pred = net(torch.from_numpy((xv - mu) / sd), torch.from_numpy((pathv - pmu) / psd)).numpy()
            slot_now, now, fut = (np.stack(c) for c in zip(*keep, strict=True))
            moved = np.linalg.norm(fut - now, axis=1)
            err = np.linalg.norm(apply_homography(hmap, slot_now + pred * ys) - fut, axis=1)
            copy = np.linalg.norm(apply_homography(hmap, slot_now) - fut, axis=1)
            true_copy = np.linalg.norm(now - fut, axis=1)
            row: dict = {"train_windows": len(x), "s": round(time.time() - t0, 1)}
            for name, m in (("moves", moved >= 0.01), ("still", moved < 0.002)):
                row[name] = {
                    "windows": int(m.sum()),
                    "forecast_cm": round(100 * float(np.median(err[m])), 2),
                    "copy_last_slot_cm": round(100 * float(np.median(copy[m])), 2),
                    "copy_last_true_cm": round(100 * float(np.median(true_copy[m])), 2),
                }
            res[data][f"k{k}"] = row
            print(data, k, json.dumps(row), flush=True)
        torch.save(
            {
                "state": net.state_dict(),
                "width": args.width,
                "gate": bool(args.gate),
                "mu": mu,
                "sd": sd,
                "pmu": pmu,
                "psd": psd,
                "ys": ys,
            },
            out / f"dyn_k{k}.pt",
        )
    (out / "result.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
