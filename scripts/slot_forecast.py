"""Does a forecast through a learned object slot carry the block? An experiment, not in the package.

On a frozen encoder's cached latents (`world_model.latents.cached_latents`) it learns, from the
latents, joint states and commands only:

- a **slot**: a soft-argmax over the 8 x 8 token grid (where in the grid the scene is, beyond what
  the joints explain: the `variance_beyond_joints` encoder leaves the arm out of the image tokens)
  and a few features of the tokens it attends to;
- a **renderer** from the slot to the image tokens;
- **slot dynamics**: an MLP from the slot, its last step and the tip's path along the first k of H
  commanded joints (forward kinematics of the robot's URDF, also projected into the grid by a
  learned map and given relative to the slot) to the slot k frames ahead.

The forecast of the image tokens k frames ahead is z_t + R(s_t+k) - R(s_t): the last latent, with
the scene's change rendered from the slot's move. Losses: the forecast against z_t+k (whitened
change, as the other predictors), the slot forecast against the slot of z_t+k (stop-gradient), and
the renderer's reconstruction of z_t (`--w-recon`). Options: `--features` beside the slot's grid
position; `--encoder cnn` reads the slot with a CNN bottleneck instead of the soft-argmax;
`--contact-gate 1` lets the slot move only where the tip's projected path comes near it (a learned
reach); `--hyp M` trains M slot forecasts winner-takes-all with a head that picks one.

Then, with simulator ground truth (for measuring only), the block's position read from the forecast
5 and 20 frames ahead on held-out windows where it moves >= 1 cm or stays put (< 2 mm), against
copy-last and the true latent (the `TokenProbe` of `evaluate.block_forecast`), and how well a linear
map of the slot places the block (does the slot find the block?). The encoder of `--ckpt` is one
trained with `train.variance_beyond_joints` (docs/history.md).

Usage: python scripts/slot_forecast.py --ckpt runs/exp/vbj/checkpoint.pt --data runs/retrain2/data
           [--features 4] [--w-recon 0.1] [--encoder argmax] [--contact-gate 0] [--hyp 1]
           [--steps 6000] [--threads 2] [--out runs/exp/slot/result.json]
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from ami_ros.cli import read_training_episodes
from ami_ros.config import ControllerConfig, EvalConfig, from_params, load_ros_params
from ami_ros.core.kinematics import Chain
from ami_ros.core.scene_slot import wrist_tip_path
from ami_ros.eval import closed_loop as cl
from ami_ros.world_model.data import split_episodes
from ami_ros.world_model.evaluate import fit_token_probe
from ami_ros.world_model.latents import cached_latents
from ami_ros.world_model.losses import change_whitening
from ami_ros.world_model.train import load_checkpoint


def random_plans(
    rng: np.random.Generator, mean: np.ndarray, std: np.ndarray, n: int, limit: np.ndarray
) -> np.ndarray:
    """n plans (n, chunks, J) drawn around `mean` with `std`, clipped to the action bounds `limit`."""
    return np.clip(mean + std * rng.standard_normal((n, *mean.shape)), -limit, limit).astype(np.float32)


def chunked_cem(
    cost,
    mean: np.ndarray,
    limit: np.ndarray,
    rng: np.random.Generator,
    samples: int,
    iterations: int,
    elites: int,
    std: float = 0.5,
) -> np.ndarray:
    """The slot and state planners' search: CEM over plans of chunks of equal commands (chunks, J),
    the incumbent and standing still always among the samples; `cost` maps (n, chunks, J) plans to
    (n,) costs. Returns the refitted mean: its first row is the command, the whole the next warm start."""
    spread = np.broadcast_to(std * limit, mean.shape).copy()
    for _ in range(iterations):
        plans = random_plans(rng, mean, spread, samples, limit)
        plans[0], plans[1] = mean, 0.0
        best = plans[np.argsort(cost(plans))[:elites]]
        mean, spread = best.mean(0), np.maximum(best.std(0), 0.05 * limit)
    return mean


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """The closed loops' episodes and chunked search (slot_plan, state_plan, pixel_plan)."""
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=300_000)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--elites", type=int, default=12)
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--chunk", type=int, default=5)


def closed_loop_config(
    args: argparse.Namespace, robot: str = "config/robots/tabletop_arm.yaml", task: str = "push"
) -> EvalConfig:
    """The closed-loop episodes of `args` (--episodes, --seed) with the robot config's controller."""
    controller = from_params(ControllerConfig, load_ros_params(robot, "planner_node"))
    return EvalConfig(task=task, episodes=args.episodes, seed=args.seed, controller=controller)


def closed_loop_summary(make, ecfg: EvalConfig, desc: str) -> dict:
    """Run the closed loop of the policies `make` builds; its success, distances, tick and wall time."""
    t0 = time.time()
    report = cl.evaluate_policy(make, ecfg, desc=desc)
    keys = ("success_rate", "success_rate_any_step", "mean_start_distance_m", "mean_final_distance_m")
    return {k: report[k] for k in (*keys, "tick_ms_p50")} | {"wall_s": round(time.time() - t0, 1)}


class SlotForecast(nn.Module):
    """Slot, renderer and slot dynamics over (N, D) image tokens on a G x G grid (normalised)."""

    def __init__(
        self,
        grid: int,
        dim: int,
        joints: int,
        horizon: int,
        limits,
        features: int,
        hyp: int,
        encoder: str = "argmax",
        contact_gate: bool = False,
    ):
        super().__init__()
        self.cnn = None
        if encoder == "cnn":  # a free bottleneck: a CNN over the token grid, no soft-argmax
            self.cnn = nn.Sequential(
                nn.Conv2d(dim, 64, 3, padding=1), nn.GELU(), nn.Conv2d(64, 64, 3, padding=1), nn.GELU(),
                nn.Flatten(), nn.Linear(64 * grid * grid, 256), nn.GELU(), nn.Linear(256, 2 + features),
            )  # fmt: skip
        g = torch.linspace(-1, 1, grid)
        gy, gx = torch.meshgrid(g, g, indexing="ij")
        self.register_buffer("coords", torch.stack([gx.flatten(), gy.flatten()], 1))  # (N, 2)
        self.register_buffer("limits", torch.as_tensor(limits, dtype=torch.float32))
        n, s = grid * grid, 2 + features
        self.score = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, 1))
        self.feat = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, features))
        self.render = nn.Sequential(
            nn.Linear(s, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, n * dim)
        )
        self.proj = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, 2))
        x = 2 * s + (horizon + 1) * 2 * 5 + joints + 1
        self.dyn = nn.Sequential(
            nn.Linear(x, 384), nn.GELU(), nn.Linear(384, 384), nn.GELU(), nn.Linear(384, hyp * s)
        )
        self.choose = nn.Sequential(nn.Linear(x, 128), nn.GELU(), nn.Linear(128, hyp))
        nn.init.zeros_(self.dyn[-1].weight)
        nn.init.zeros_(self.dyn[-1].bias)
        if hyp > 1:
            nn.init.normal_(self.dyn[-1].weight, std=0.01)
        self.n, self.d, self.s, self.hyp, self.horizon = n, dim, s, hyp, horizon
        self.gate = None
        if contact_gate:  # the slot moves only where the tip's path comes near it (learned reach, sharpness)
            self.gate = nn.Parameter(torch.tensor([0.3, 3.0]))

    def slot(self, z):  # (B, N, D) -> (B, 2 + f): attended grid position and features
        if self.cnn is not None:
            g = int(self.n**0.5)
            return self.cnn(z.transpose(1, 2).reshape(len(z), self.d, g, g))
        a = torch.softmax(self.score(z).squeeze(-1), 1)
        return torch.cat([a @ self.coords, self.feat((a[..., None] * z).sum(1))], 1)

    def step(self, s0, s1, k, tip, q):
        """From the slots of the last two frames, slot hypotheses (B, M, s) k frames ahead and
        their scores (B, M)."""
        uv = self.proj(tip)  # (B, H+1, 2, 2) in the grid's frame
        rel = torch.cat([tip, uv - s1[:, None, None, :2]], -1).flatten(1)
        x = torch.cat([s1, s1 - s0, rel, q / self.limits, (k.float() / self.horizon)[:, None]], 1)
        move = self.dyn(x).view(-1, self.hyp, self.s)
        if self.gate is not None:
            near = (uv - s1[:, None, None, :2]).norm(dim=-1).flatten(1).min(1).values
            move = move * torch.sigmoid(torch.exp(self.gate[1]) * (self.gate[0] - near))[:, None, None]
        return s1[:, None] + move, self.choose(x)

    def tokens(self, z1, s1, s_next):  # the last latent with the slot's move rendered
        return z1 + (self.render(s_next) - self.render(s1)).view(-1, self.n, self.d)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default="runs/exp/vbj/checkpoint.pt")
    p.add_argument("--data", default="runs/retrain2/data")
    p.add_argument("--urdf", default="sim/assets/tabletop_arm.urdf")
    p.add_argument("--hor", type=int, default=20)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--features", type=int, default=4, help="slot features beside its grid position")
    p.add_argument("--hyp", type=int, default=1)
    p.add_argument("--contact-gate", type=int, default=0, help="the slot moves only near the tip's path")
    p.add_argument("--encoder", default="argmax", choices=("argmax", "cnn"), help="how the slot is read")
    p.add_argument("--whiten", type=float, default=0.01)
    p.add_argument("--w-state", type=float, default=1.0)
    p.add_argument("--w-recon", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/exp/slot/result.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, cfg, _ = load_checkpoint(args.ckpt)
    mc, tc = cfg.model, cfg.train
    episodes = read_training_episodes(args.data, mc.image_size, cfg.data)
    train_eps, val_eps = split_episodes(episodes, tc.val_fraction, tc.seed)
    enc = model.encoder.eval()
    lat_tr = [z[:, :-1] for z in cached_latents(enc, train_eps, tc.latent_cache)]
    lat_va = [z[:, :-1] for z in cached_latents(enc, val_eps, tc.latent_cache)]
    hor, nj, nt, dim = args.hor, len(mc.joint_names), mc.grid**2, mc.latent_dim
    chain = Chain(args.urdf, "end_effector", mc.joint_names)
    lim = np.asarray(mc.joint_limits, np.float32)
    print("episodes", len(train_eps), len(val_eps), flush=True)

    def batch_of(lats, eps, sel):
        """(z_t-1, z_t, z_t+k, k, tip path, q_t) for windows sel = [(e, t, k)]."""
        cols = [[], [], [], [], [], []]
        for e, t, k in sel:
            z, ep = lats[e], eps[e]
            acts = np.zeros((hor, nj), np.float32)
            acts[:k] = ep["actions"][t : t + k]
            vals = (
                z[t - 1],
                z[t],
                z[t + k],
                k,
                wrist_tip_path(chain, ep["joints"][t], acts, k, lim),
                ep["joints"][t],
            )
            for c, v in zip(cols, vals, strict=True):
                c.append(v)
        return [
            torch.from_numpy(np.asarray(c, np.int64 if i == 3 else np.float32)) for i, c in enumerate(cols)
        ]

    mu = np.concatenate(lat_tr).mean((0, 1)).astype(np.float32)
    sd = (np.concatenate(lat_tr).std((0, 1)) + 1e-6).astype(np.float32)
    norm_tr = [(z - mu) / sd for z in lat_tr]
    norm_va = [(z - mu) / sd for z in lat_va]
    white = change_whitening([np.concatenate([z, z[:, :1]], 1) for z in norm_tr], args.whiten)

    def werr(e):  # (..., nt, dim) -> (...,) whitened squared error
        return (e.flatten(-2) @ white).pow(2).mean(-1)

    net = SlotForecast(
        mc.grid, dim, nj, hor, lim, args.features, args.hyp, args.encoder, bool(args.contact_gate)
    )
    print("params", sum(x.numel() for x in net.parameters()), flush=True)
    idx = [(e, t) for e, z in enumerate(norm_tr) for t in range(1, len(z) - 1)]
    rng = np.random.default_rng(0)
    opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.05)
    t0 = time.time()
    for step in range(args.steps):
        sel = []
        while len(sel) < args.batch:
            e, t = idx[rng.integers(len(idx))]
            k = int(rng.integers(1, hor + 1))
            if t + k < len(norm_tr[e]):
                sel.append((e, t, k))
        z0, z1, zk, k, tip, q = batch_of(norm_tr, train_eps, sel)
        s0, s1 = net.slot(z0), net.slot(z1)
        hyps, logits = net.step(s0, s1, k, tip, q)
        target_s = net.slot(zk).detach()
        err = torch.stack([werr(net.tokens(z1, s1, hyps[:, m]) - zk) for m in range(args.hyp)], 1)  # (B, M)
        err = err + args.w_state * (hyps - target_s[:, None]).pow(2).mean(-1)
        win = err.argmin(1)
        wm = torch.full_like(err, 0.05 / max(1, args.hyp - 1))
        wm[torch.arange(len(err)), win] = 1.0
        recon = werr(net.render(s1).view(-1, nt, dim) - z1).mean()
        loss = (err * wm).sum(1).mean() + args.w_recon * recon
        if args.hyp > 1:
            loss = loss + 0.1 * nn.functional.cross_entropy(logits, win)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 500 == 0 or step == args.steps - 1:
            print(
                f"step {step} loss {loss.item():.4f} recon {recon.item():.4f} {time.time() - t0:.0f}s",
                flush=True,
            )
    train_s = time.time() - t0
    net.eval()

    read = fit_token_probe(np.concatenate(lat_tr), np.concatenate([ep["block_xy"] for ep in train_eps]))
    res = {"args": vars(args), "train_s": train_s}
    with torch.no_grad():  # does the slot find the block? a linear map from the slot to the block (m)
        s_tr = net.slot(torch.from_numpy(np.concatenate(norm_tr[:200]))).numpy()
        s_va = net.slot(torch.from_numpy(np.concatenate(norm_va))).numpy()
    xy_tr = np.concatenate([ep["block_xy"] for ep in train_eps[:200]])
    fit = np.linalg.lstsq(np.c_[s_tr, np.ones(len(s_tr))], xy_tr, rcond=None)[0]
    xy_va = np.concatenate([ep["block_xy"] for ep in val_eps])
    lin = np.linalg.norm(np.c_[s_va, np.ones(len(s_va))] @ fit - xy_va, axis=1)
    res["slot_linear_block_cm"] = round(100 * float(np.median(lin)), 2)
    print("slot -> block, linear, held-out median cm", res["slot_linear_block_cm"], flush=True)
    for h in (5, 20):
        moved, still = [], []
        for e, z in enumerate(lat_va):
            xy = val_eps[e]["block_xy"]
            for t in range(1, len(z) - h):
                d = np.linalg.norm(xy[t + h] - xy[t])
                (moved if d >= 0.01 else still if d < 0.002 else []).append((e, t, h))
        out = {}
        for name, sel in (("moves", moved), ("still", still)):
            sel = [sel[i] for i in np.linspace(0, len(sel) - 1, min(512, len(sel))).astype(int)]
            z0, z1, zk, k, tip, q = batch_of(norm_va, val_eps, sel)
            with torch.no_grad():
                s1 = net.slot(z1)
                hyps, logits = net.step(net.slot(z0), s1, k, tip, q)
                best = hyps[torch.arange(len(sel)), logits.argmax(1)]
                pred = net.tokens(z1, s1, best).numpy() * sd + mu
            truth = np.stack([val_eps[e]["block_xy"][t + h] for e, t, _ in sel])

            def cm(tok, truth=truth):
                return round(float(100 * np.median(np.linalg.norm(read(tok) - truth, axis=1))), 2)

            out[name] = {
                "windows": len(sel),
                "predicted": cm(pred),
                "copy_last": cm(z1.numpy() * sd + mu),
                "true": cm(zk.numpy() * sd + mu),
            }
        res[f"k{h}"] = out
        print(h, json.dumps(out), flush=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)
    torch.save(
        {"state": net.state_dict(), "mu": mu, "sd": sd, "args": vars(args)}, args.out.replace(".json", ".pt")
    )


if __name__ == "__main__":
    main()
