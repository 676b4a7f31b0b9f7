"""Does a direct multi-horizon predictor forecast the block? An experiment, not in the package.

On a frozen encoder's cached latents (`world_model.latents.cached_latents`) it trains a predictor of
z_{t+k} from (z_{t-1}, z_t) and the first k of H commands (zero after the k-th: the arm holds), for
k = 1 .. H drawn at random, in one step rather than a rollout of k steps. Its options are the levers
of docs/history.md ("Direct forecasts and the tip's path"):

- `--gate`: each cell's update is multiplied by a sigmoid gate computed from the commanded joint
  path (closed at the start), `--gate-l1` penalises how far it opens;
- `--tip`: the wrist's and tip's positions along the commanded path (forward kinematics of the
  robot's URDF: joint states and commands only) are projected onto the token grid by a learned
  MLP and rendered as Gaussians, one map a step, into the trunk and the gate; `--points 7`
  renders the whole arm's skeleton instead of the wrist and tip;
- `--transport`: each cell may also take a learned mix of its 3 x 3 neighbours (gated);
- `--hyp M`: M hypotheses trained winner-takes-all, the forecast is the one a head picks;
- `--moved-weight`: samples weighted by how much their image tokens change.

Then, with simulator ground truth (for measuring only), it reads the block's position from the
predicted latent 5 and 20 frames ahead on held-out windows where the block moves >= 1 cm or stays
put (< 2 mm), against copy-last and the true latent, with two readers: the `TokenProbe` of
`evaluate.block_forecast`, and the same probe trained also on cell-wise mixtures of two frames of
one episode between which the block stays put (it cannot read the block from the arm's pose).
`--load` scores a saved predictor and prints where its gate opens.

Usage: python scripts/direct_forecast.py --ckpt runs/exp/vbj/checkpoint.pt --data runs/retrain2/data
           [--tip 1] [--points 2] [--transport 0] [--hyp 1] [--gate-l1 0] [--moved-weight 0]
           [--channels 48] [--steps 8000] [--out runs/exp/direct/result.json]
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from ami_ros.cli import read_training_episodes
from ami_ros.core.kinematics import Chain
from ami_ros.world_model.data import split_episodes
from ami_ros.world_model.evaluate import fit_token_probe
from ami_ros.world_model.latents import cached_latents
from ami_ros.world_model.losses import change_whitening
from ami_ros.world_model.model import FiLMBlock, proprio_embedding
from ami_ros.world_model.train import load_checkpoint

p = argparse.ArgumentParser()
p.add_argument("--ckpt", default="runs/exp/vbj/checkpoint.pt")
p.add_argument("--data", default="runs/retrain2/data")
p.add_argument("--H", type=int, default=20)
p.add_argument("--steps", type=int, default=8000)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=6e-4)
p.add_argument("--channels", type=int, default=48)
p.add_argument("--blocks", type=int, default=6)
p.add_argument("--whiten", type=float, default=0.01)
p.add_argument("--gate", type=int, default=1)
p.add_argument("--gate-l1", type=float, default=0.0)
p.add_argument("--moved-weight", type=float, default=0.0)
p.add_argument("--out", default="runs/exp/direct/result.json")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--load", default="")
p.add_argument("--tip", type=int, default=0)
p.add_argument("--urdf", default="sim/assets/tabletop_arm.urdf")
p.add_argument("--tip-link", default="end_effector")
p.add_argument("--points", type=int, default=2)
p.add_argument("--transport", type=int, default=0)
p.add_argument("--hyp", type=int, default=1)
p.add_argument("--wta-eps", type=float, default=0.05)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

model, cfg, _ = load_checkpoint(args.ckpt)
mc, tc = cfg.model, cfg.train
episodes = read_training_episodes(args.data, mc.image_size, cfg.data)
train_eps, val_eps = split_episodes(episodes, tc.val_fraction, tc.seed)
enc = model.encoder.eval()
lat_tr = cached_latents(enc, train_eps, tc.latent_cache)
lat_va = cached_latents(enc, val_eps, tc.latent_cache)
print("episodes", len(train_eps), len(val_eps), flush=True)

H, K = args.H, mc.history
chain = Chain(args.urdf, args.tip_link, mc.joint_names)
P = args.points  # skeleton points rendered, from the tip back (2: the wrist and the tip)
J, N, D, G = len(mc.joint_names), mc.grid**2, mc.latent_dim, mc.grid
limits = torch.tensor(mc.joint_limits, dtype=torch.float32)
alim = torch.tensor(mc.action_limits, dtype=torch.float32)


def starts(lats, k):
    return [(e, t) for e, z in enumerate(lats) for t in range(K - 1, len(z) - k)]


def window(lats, eps, e, t, k):
    """History (K, N+1, D) ending at t, the H commands from t (zero after the k-th), target z_{t+k}."""
    z, a = lats[e], eps[e]["actions"]
    acts = np.zeros((H, J), np.float32)
    acts[:k] = a[t : t + k]
    return z[t - K + 1 : t + 1], acts, z[t + k], eps[e]["joints"][t + k], tips(eps[e]["joints"][t], acts)


def tips(q, acts):
    """(H+1, P, 3): the last P skeleton points along the commanded joint path from q."""
    lim = limits.numpy()
    path = np.clip(q[None] + np.concatenate([np.zeros((1, J)), np.cumsum(acts, 0)]), -lim, lim)
    return chain.skeleton(path)[:, -P:].astype(np.float32)


class DirectPredictor(nn.Module):
    def __init__(self, c, blocks):
        super().__init__()
        cond_dim = 128
        pdim = (H + 1) * J + 1
        self.cond = nn.Sequential(nn.Linear(K * D + pdim, cond_dim), nn.GELU())
        self.inp = nn.Conv2d(K * D, c, 1)
        self.pos = nn.Parameter(torch.randn(1, c, G, G) * 0.02)
        self.arm = nn.Sequential(nn.Linear(pdim, 256), nn.GELU(), nn.Linear(256, c * N))
        self.blocks = nn.ModuleList(FiLMBlock(c, cond_dim, 2 ** (i % 3)) for i in range(blocks))
        self.gate = None
        if args.gate:
            self.gate = nn.Sequential(nn.Linear(pdim, 256), nn.GELU(), nn.Linear(256, N))
            nn.init.constant_(self.gate[-1].bias, -3.0)
        self.out = nn.Conv2d(c, args.hyp * D, 1)
        self.choose = nn.Linear(cond_dim + c, args.hyp)
        if args.tip:
            self.proj = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, 2))
            self.log_sigma = nn.Parameter(torch.tensor(-1.0))
            maps = (H + 1) * P
            self.tip_in = nn.Conv2d(maps, c, 3, padding=1)
            self.tip_gate = nn.Conv2d(maps, 1, 3, padding=1)
            nn.init.zeros_(self.tip_gate.weight)
        self.joint_out = nn.Linear(cond_dim + c, J)
        self.mix = nn.Conv2d(c, 9, 1) if args.transport else None
        self.c = c
        for layer in (self.out, self.joint_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if args.hyp > 1:  # hypotheses must differ from the start for winner-takes-all to split them
            nn.init.normal_(self.out.weight, std=0.01)

    def render(self, tip, k):  # tip (B, H+1, P, 3) -> (B, (H+1)*P, G, G) Gaussians, after k held
        b = tip.shape[0]
        steps = torch.arange(H + 1)
        idx = torch.minimum(steps[None], k[:, None])  # after the k-th command the arm holds
        tip = tip[torch.arange(b)[:, None], idx]
        uv = torch.tanh(self.proj(tip))  # (B, H+1, P, 2) in [-1, 1]
        grid = torch.linspace(-1, 1, G)
        gy, gx = torch.meshgrid(grid, grid, indexing="ij")
        d2 = (uv[..., 0, None, None] - gx) ** 2 + (uv[..., 1, None, None] - gy) ** 2
        return torch.exp(-d2 / (2 * torch.exp(self.log_sigma) ** 2)).flatten(1, 2)

    def forward(self, hist, acts, k, tip=None):  # hist (B, K, N+1, D), acts (B, H, J), k (B,)
        b = hist.shape[0]
        image = hist[:, :, :-1].permute(0, 1, 3, 2).reshape(b, K * D, G, G)
        proprio = hist[:, :, -1]
        q = proprio[:, -1, :J] * limits
        path = torch.cat([q[:, None], q[:, None] + acts.cumsum(1)], 1)
        path = torch.maximum(torch.minimum(path, limits), -limits)  # (B, H+1, J)
        ps = torch.cat([(path / limits).flatten(1), (k.float() / H)[:, None]], 1)
        cond = self.cond(torch.cat([proprio.flatten(1), ps], 1))
        h = self.inp(image) + self.pos + self.arm(ps).view(b, self.c, G, G)
        if args.tip:
            maps = self.render(tip, k)
            h = h + self.tip_in(maps)
        for blk in self.blocks:
            h = blk(h, cond)
        update = self.out(h).view(b, args.hyp, D, N).transpose(2, 3)  # (B, M, N, D)
        feat = torch.cat([cond, h.mean(dim=(2, 3))], 1)
        self.logits = self.choose(feat)
        if self.gate is not None:
            logit = self.gate(ps)
            if args.tip:
                logit = logit + self.tip_gate(maps).flatten(1)
            g = torch.sigmoid(logit)
            self.last_gate = g
            update = update * g[:, None, :, None]
        last = hist[:, -1, :-1]
        if self.mix is not None:  # each cell may take a learned mix of its 3x3 neighbours (transport)
            w = torch.softmax(self.mix(h) + 8.0 * (torch.arange(9) == 4).view(1, 9, 1, 1), 1)
            grid_last = last.transpose(1, 2).reshape(b, D, G, G)
            nbrs = nn.functional.unfold(grid_last, 3, padding=1).view(b, D, 9, N)
            moved = (nbrs * w.flatten(2)[:, None]).sum(2).transpose(1, 2)  # (B, N, D)
            update = update + (moved - last)[:, None] * (g[:, None, :, None] if self.gate is not None else 1)
        tokens = last[:, None] + update  # (B, M, N, D)
        self.hyps = tokens
        q_end = path[torch.arange(b), k]
        q_next = q_end + self.joint_out(feat) * alim
        best = tokens[torch.arange(b), self.logits.argmax(1)]  # the most likely hypothesis
        self.q_next = proprio_embedding(q_next, limits, D)
        return torch.cat([best, self.q_next[:, None]], 1)


net = DirectPredictor(args.channels, args.blocks)
if args.load:
    net.load_state_dict(torch.load(args.load))
    args.steps = 0
print("params", sum(p.numel() for p in net.parameters()), flush=True)
W = None
if args.whiten > 0:
    W = change_whitening(list(lat_tr), args.whiten)


idx = starts(lat_tr, 1)
rng = np.random.default_rng(0)
opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=0.05)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=max(1, args.steps), pct_start=0.03)
t0 = time.time()
for step in range(args.steps):
    ws, ks, wts = [], [], []
    while len(ws) < args.batch:
        e, t = idx[rng.integers(len(idx))]
        k = int(rng.integers(1, H + 1))
        if t + k >= len(lat_tr[e]):
            continue
        ws.append(window(lat_tr, train_eps, e, t, k))
        ks.append(k)
    hist = torch.from_numpy(np.stack([w[0] for w in ws]))
    acts = torch.from_numpy(np.stack([w[1] for w in ws]))
    tgt = torch.from_numpy(np.stack([w[2] for w in ws]))
    qf = torch.from_numpy(np.stack([w[3] for w in ws]).astype(np.float32))
    kk = torch.tensor(ks)
    pred = net(hist, acts, kk, torch.from_numpy(np.stack([w[4] for w in ws])))
    wt = None
    if args.moved_weight > 0:  # weight samples by how much the image tokens change beyond copy-last
        ch = (tgt[:, :-1] - hist[:, -1, :-1]).pow(2).mean((1, 2))
        wt = 1 + args.moved_weight * ch / ch.mean()
    lj = ((pred[:, -1, :J] - qf / limits) ** 2).mean()
    e = net.hyps - tgt[:, None, :-1]
    e = (e if W is None else e.flatten(-2) @ W).pow(2).flatten(2).mean(2)  # (B, M)
    win = e.argmin(1)
    wm = torch.full_like(e, args.wta_eps / max(1, args.hyp - 1))
    wm[torch.arange(len(e)), win] = 1.0
    per = (e * wm).sum(1)
    loss = (per if wt is None else per * wt).mean() + 2 * lj
    if args.hyp > 1:
        loss = loss + 0.1 * torch.nn.functional.cross_entropy(net.logits, win)
    if args.gate_l1 > 0:
        loss = loss + args.gate_l1 * net.last_gate.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    sched.step()
    if step % 500 == 0 or step == args.steps - 1:
        print(
            f"step {step} loss {loss.item():.4f} joints {lj.item():.5f} {time.time() - t0:.0f}s", flush=True
        )
train_s = time.time() - t0
net.eval()

read = fit_token_probe(
    np.concatenate([z[:, :-1] for z in lat_tr]), np.concatenate([ep["block_xy"] for ep in train_eps])
)


def fit_mix_probe(steps=3000, batch=256, seed=0):
    """A TokenProbe trained on true latents and on cell-wise mixtures of two frames of one episode
    between which the block stays put (< 2 mm): the arm differs, the block does not, so the probe
    cannot read the block from the arm's pose."""
    from ami_ros.world_model.evaluate import TokenProbe

    tok = np.concatenate([z[:, :-1] for z in lat_tr])
    xy = np.concatenate([ep["block_xy"] for ep in train_eps])
    off = np.cumsum([0] + [len(z) for z in lat_tr])
    pairs = []
    for e, ep in enumerate(train_eps):
        b = ep["block_xy"]
        for t1 in range(len(b)):
            for t2 in range(max(0, t1 - 20), min(len(b), t1 + 21)):
                if t2 != t1 and np.abs(b[min(t1, t2) : max(t1, t2) + 1] - b[t1]).max() < 0.002:
                    pairs.append((off[e] + t1, off[e] + t2))
    pairs = np.array(pairs)
    print("mix pairs", len(pairs), flush=True)
    torch.manual_seed(seed)
    probe = TokenProbe(D, G)
    mu, sd = tok.mean((0, 1)), tok.std((0, 1)) + 1e-6
    ym, ys = xy.mean(0), xy.std(0) + 1e-9
    x = torch.from_numpy(((tok - mu) / sd).astype(np.float32))
    y = torch.from_numpy(((xy - ym) / ys).astype(np.float32))
    gen = np.random.default_rng(seed)
    opt = torch.optim.AdamW(probe.parameters(), 1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    for _ in range(steps):
        i = gen.integers(len(x), size=batch // 2)
        pr = pairs[gen.integers(len(pairs), size=batch // 2)]
        m = torch.from_numpy(gen.random((batch // 2, N, 1)) < gen.random((batch // 2, 1, 1)))
        mixed = torch.where(m, x[pr[:, 0]], x[pr[:, 1]])
        xb = torch.cat([x[i], mixed])
        yb = torch.cat([y[i], y[pr[:, 0]]])
        loss = torch.nn.functional.mse_loss(probe(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    probe.eval()

    @torch.no_grad()
    def read(t):
        z = torch.from_numpy(((t - mu) / sd).astype(np.float32))
        return np.concatenate([probe(c).numpy() for c in z.split(2048)]) * ys + ym

    return read


read_mix = fit_mix_probe()
res = {"args": vars(args), "train_s": train_s}
for h in (5, 20):
    moved, still = [], []
    for e, t in starts(lat_va, h):
        xy = val_eps[e]["block_xy"]
        d = np.linalg.norm(xy[t + h] - xy[t])
        (moved if d >= 0.01 else still if d < 0.002 else []).append((e, t))
    out = {}
    for name, sel in (("moves", moved), ("still", still)):
        sel = [sel[i] for i in np.linspace(0, len(sel) - 1, min(512, len(sel))).astype(int)]
        ws = [window(lat_va, val_eps, e, t, h) for e, t in sel]
        hist = torch.from_numpy(np.stack([w[0] for w in ws]))
        acts = torch.from_numpy(np.stack([w[1] for w in ws]))
        fut = np.stack([w[2] for w in ws])
        with torch.no_grad():
            tip = torch.from_numpy(np.stack([w[4] for w in ws]))
            pred = net(hist, acts, torch.full((len(ws),), h), tip).numpy()
        truth = np.stack([val_eps[e]["block_xy"][t + h] for e, t in sel])

        def cm(tok, reader=read, truth=truth):
            return round(float(100 * np.median(np.linalg.norm(reader(tok) - truth, axis=1))), 2)

        cl = hist[:, -1, :-1].numpy()
        if args.load and args.gate:
            g = net.last_gate.numpy()
            order = np.argsort(-g, 1)
            for m in (2, 4, 8, 16, 32):
                sel_m = np.zeros_like(g, bool)
                np.put_along_axis(sel_m, order[:, :m], True, 1)
                there = sel_m[:, :, None]
                print(
                    f"{name} k={h}: copy-last + predicted in the {m} most open cells",
                    cm(np.where(there, pred[:, :-1], cl)),
                    "| + true there:",
                    cm(np.where(there, fut[:, :-1], cl)),
                    "| predicted, copy-last there:",
                    cm(np.where(there, cl, pred[:, :-1])),
                    flush=True,
                )
        out[name] = {
            "windows": len(sel),
            "gate_mean": float(net.last_gate.mean()) if args.gate else None,
            "token_mse_predicted": float(((pred[:, :-1] - fut[:, :-1]) ** 2).mean()),
            "token_mse_copy_last": float(((cl - fut[:, :-1]) ** 2).mean()),
            "predicted": cm(pred[:, :-1]),
            "copy_last": cm(cl),
            "true": cm(fut[:, :-1]),
            "mix_reader": {
                "predicted": cm(pred[:, :-1], read_mix),
                "copy_last": cm(cl, read_mix),
                "true": cm(fut[:, :-1], read_mix),
            },
        }
    res[f"k{h}"] = out
    print(h, json.dumps(out), flush=True)
with open(args.out, "w") as fh:
    json.dump(res, fh, indent=1)
torch.save(net.state_dict(), args.out.replace(".json", ".pt"))
