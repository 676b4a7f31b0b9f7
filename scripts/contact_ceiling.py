"""How well can the recordings teach where the block goes? An experiment, not in the package.

The ceiling of every block forecast learned from these recordings: a small MLP is told the block's
true position (simulator ground truth; for measuring only, no model of the project sees it), its
last step, and the tip's path along the commanded joints (forward kinematics of the robot's URDF),
and predicts the block's position k frames ahead. It is scored like the latent forecasts of
docs/history.md: median error on held-out windows where the block moves >= 1 cm or stays put
(< 2 mm), against copy-last. Variants: the block's position blurred by Gaussian noise whose median
is a latent probe's error (`--noise`), and a fraction of the training episodes (`--fraction`), to
see whether more recordings would help.

Usage: python scripts/contact_ceiling.py --data runs/retrain2/data [--noise 0.0265] [--fraction 1]
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from ami_ros.cli import read_training_episodes
from ami_ros.config import TrainRunConfig, load_yaml
from ami_ros.core.kinematics import Chain
from ami_ros.world_model.data import split_episodes

p = argparse.ArgumentParser()
p.add_argument("--data", default="runs/retrain2/data")
p.add_argument("--config", default="config/train.yaml")
p.add_argument("--urdf", default="sim/assets/tabletop_arm.urdf")
p.add_argument("--ks", default="5,20")
p.add_argument("--noise", type=float, default=0.0, help="median error (m) of the block position given")
p.add_argument("--fraction", type=float, default=1.0, help="fraction of the training episodes used")
p.add_argument("--steps", type=int, default=6000)
p.add_argument("--out", default="")
p.add_argument("--save", default="", help="save each k's MLP and its normalisation here (torch)")
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)

cfg = load_yaml(args.config, TrainRunConfig)
mc = cfg.model
eps = read_training_episodes(args.data, 8, cfg.data)  # the frames are not used
train_eps, val_eps = split_episodes(eps, cfg.train.val_fraction, cfg.train.seed)
train_eps = train_eps[: max(1, round(args.fraction * len(train_eps)))]
chain = Chain(args.urdf, "end_effector", mc.joint_names)
lim = np.asarray(mc.joint_limits)
sigma = args.noise / np.sqrt(2 * np.log(2))  # a 2-D Gaussian's median norm is 1.177 sigma
rng = np.random.default_rng(0)


def windows(episodes, k, noisy):
    """Features (block, its last step, the tip's path relative to the block) and targets (the
    block's displacement k frames ahead) of every window; the true displacement for scoring."""
    xs, ys, keep = [], [], []
    for ep in episodes:
        b, q, a = ep["block_xy"], ep["joints"], ep["actions"]
        for t in range(1, len(b) - k):
            path = np.clip(
                q[t] + np.concatenate([np.zeros((1, len(lim))), np.cumsum(a[t : t + k], 0)]), -lim, lim
            )
            pts = chain.skeleton(path)[:, -2:]  # wrist and tip, (k+1, 2, 3)
            seen = b[t] + (rng.normal(0, sigma, 2) if noisy and sigma > 0 else 0)
            rel = pts.copy()
            rel[..., :2] -= seen
            xs.append(np.concatenate([seen, b[t] - b[t - 1], rel.ravel()]))
            ys.append(b[t + k] - seen)
            keep.append((seen, b[t], b[t + k]))
    return np.asarray(xs, np.float32), np.asarray(ys, np.float32), keep


saved = {}
res = {"args": vars(args), "train_episodes": len(train_eps), "val_episodes": len(val_eps)}
for k in map(int, args.ks.split(",")):
    t0 = time.time()
    x, y, _ = windows(train_eps, k, True)
    xv, _, keep = windows(val_eps, k, True)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    ys = y.std(0) + 1e-6
    net = nn.Sequential(
        nn.Linear(x.shape[1], 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 2)
    )
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.steps)
    xt, yt = torch.from_numpy((x - mu) / sd), torch.from_numpy(y / ys)
    for _ in range(args.steps):
        i = torch.from_numpy(rng.integers(len(xt), size=512))
        loss = nn.functional.mse_loss(net(xt[i]), yt[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pred = net(torch.from_numpy((xv - mu) / sd)).numpy() * ys
    seen, now, fut = (np.stack(c) for c in zip(*keep, strict=True))
    moved = np.linalg.norm(fut - now, axis=1)
    err = np.linalg.norm(seen + pred - fut, axis=1)
    copy = np.linalg.norm(seen - fut, axis=1)
    row = {"train_windows": len(x), "s": round(time.time() - t0, 1)}
    for name, m in (("moves", moved >= 0.01), ("still", moved < 0.002)):
        row[name] = {
            "windows": int(m.sum()),
            "predicted_cm": round(100 * float(np.median(err[m])), 2),
            "copy_last_cm": round(100 * float(np.median(copy[m])), 2),
        }
    res[f"k{k}"] = row
    saved[k] = {"state": net.state_dict(), "mu": mu, "sd": sd, "ys": ys}
    print(k, json.dumps(row), flush=True)
if args.save:
    torch.save(saved, args.save)
if args.out:
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)
