"""Held-out evaluation of a world model, printed and saved with it (metrics.json, manifest).

- k-step latent prediction error / copy-the-last-latent error, k = 1..H (image tokens);
- linear probes (closed-form ridge, fitted on training episodes, tested on held-out ones) of joint
  positions and block xy from the image tokens, beside the mean-guess baseline;
- the encoder's own joint estimate (image tokens -> joints) error;
- how much of the image tokens the joints explain (`fit_joint_map`): the share of held-out token
  variance an MLP from joint positions predicts, i.e. how much of the latent is the arm;
- the block forecast (`block_forecast`): the block read from predicted latents, against copy-last
  and against a forecast from the arm's recorded motion alone;
- planning signal: rank of the true action among N random ones by predicted-latent distance to
  the true next latent (1 = best);
- collapse diagnostics: per-dimension std and effective rank of the embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ami_ros.world_model.data import Episode
from ami_ros.world_model.losses import ArmHead
from ami_ros.world_model.model import WorldModel


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_episode(model: WorldModel, ep: Episode, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Returns latents (T, N+1, D) and image-only joint estimates (T, J) of one episode."""
    dev, zs, qs = _device(model), [], []
    for s in range(0, len(ep["frames"]), batch):
        z, q = model.encoder(
            torch.from_numpy(ep["frames"][s : s + batch]).to(dev),
            torch.from_numpy(ep["joints"][s : s + batch]).to(dev),
        )
        zs.append(z.cpu().numpy())
        qs.append(q.cpu().numpy())
    return np.concatenate(zs), np.concatenate(qs)


def _window_starts(
    latents: Sequence[np.ndarray],
    k: int,
    h: int,
    max_windows: int,
    keep: Callable[[int, int], bool] | None = None,
) -> list[tuple[int, int]]:
    """(episode, start) of up to `max_windows` evenly spaced windows of K + H latents (of those `keep`
    accepts)."""
    idx = [
        (e, s) for e, z in enumerate(latents) for s in range(len(z) - k - h + 1) if keep is None or keep(e, s)
    ]
    return [idx[i] for i in np.linspace(0, len(idx) - 1, min(max_windows, len(idx))).astype(int)]


def _windows(
    latents: Sequence[np.ndarray],
    eps: Sequence[Episode],
    k: int,
    h: int,
    max_windows: int,
    starts: list[tuple[int, int]] | None = None,
):
    """(history (M,K,N+1,D), actions (M,H,J), future (M,H,N+1,D)) over evenly spaced windows
    (`starts`: the windows' (episode, start), default `_window_starts`)."""
    idx = starts if starts is not None else _window_starts(latents, k, h, max_windows)
    hist = np.stack([latents[e][s : s + k] for e, s in idx])
    acts = np.stack([eps[e]["actions"][s + k - 1 : s + k - 1 + h] for e, s in idx]).astype(np.float32)
    fut = np.stack([latents[e][s + k : s + k + h] for e, s in idx])
    return hist, acts, fut


@torch.no_grad()
def _rollout(model: WorldModel, hist: np.ndarray, acts: np.ndarray, batch: int = 512) -> np.ndarray:
    dev, out = _device(model), []
    for s in range(0, len(hist), batch):
        out.append(
            model.predictor.rollout(
                torch.from_numpy(hist[s : s + batch]).to(dev), torch.from_numpy(acts[s : s + batch]).to(dev)
            )
            .cpu()
            .numpy()
        )
    return np.concatenate(out)


def kstep_ratios(
    model: WorldModel,
    eps: Sequence[Episode],
    max_windows: int = 1024,
    latents: Sequence[np.ndarray] | None = None,
) -> list[float]:
    """Mean squared image-token error of k-step predictions / of copying the last latent, k = 1..H.

    `latents`: the episodes' latents when already encoded (else encoded here).
    """
    k, h = model.cfg.history, model.cfg.horizon
    latents = list(latents) if latents is not None else [encode_episode(model, ep)[0] for ep in eps]
    hist, acts, fut = _windows(latents, eps, k, h, max_windows)
    pred = _rollout(model, hist, acts)
    err = ((pred - fut)[:, :, :-1] ** 2).mean(axis=(0, 2, 3))
    base = ((hist[:, -1:, :-1] - fut[:, :, :-1]) ** 2).mean(axis=(0, 2, 3))
    return [float(e / max(b, 1e-12)) for e, b in zip(err, base, strict=True)]


def _ridge(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, alpha: float) -> np.ndarray:
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    ym = y_tr.mean(0)
    w = np.linalg.solve(a.T @ a + alpha * len(a) * np.eye(a.shape[1]), a.T @ (y_tr - ym))
    return b @ w + ym


def ridge_probe(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> np.ndarray:
    """Closed-form ridge regression on standardised features; the penalty is chosen on the last 20%
    of the training rows (rows are in episode order, so this is nearly an episode split)."""
    cut = int(0.8 * len(x_tr))
    alphas = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
    errs = [((_ridge(x_tr[:cut], y_tr[:cut], x_tr[cut:], a) - y_tr[cut:]) ** 2).mean() for a in alphas]
    return _ridge(x_tr, y_tr, x_te, alphas[int(np.argmin(errs))])


class TokenProbe(torch.nn.Module):
    """A small conv net on the 8x8 grid of image tokens -> block (x, y), normalised."""

    def __init__(self, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(dim, 64, 3, padding=1),
            torch.nn.GELU(),
            torch.nn.Conv2d(64, 64, 3, stride=2, padding=1),
            torch.nn.GELU(),
            torch.nn.Flatten(),
            torch.nn.Linear(64 * ((grid + 1) // 2) ** 2, 256),
            torch.nn.GELU(),
            torch.nn.Linear(256, 2),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) image tokens -> (B, 2)."""
        b, _, d = tokens.shape
        return self.net(tokens.transpose(1, 2).reshape(b, d, self.grid, self.grid))


def _fit(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, seed: int, max_lr: float
) -> None:
    """Fit `net(x)` to `y` by MSE on random batches (drawn from `seed`; AdamW on a one-cycle schedule
    peaking at `max_lr`), then put it in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), max_lr / 2, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, total_steps=steps)
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()


def fit_token_probe(
    tokens: np.ndarray, xy: np.ndarray, steps: int = 1500, batch: int = 256, seed: int = 0
) -> Callable[[np.ndarray], np.ndarray]:
    """Train a `TokenProbe` on (M, N, D) image tokens -> (M, 2) positions (m); returns the probe as a
    function of (M', N, D) tokens -> (M', 2) positions."""
    with torch.random.fork_rng():  # the probe's initialisation leaves the caller's RNG as it was
        torch.manual_seed(seed)
        probe = TokenProbe(tokens.shape[-1], round(tokens.shape[1] ** 0.5))
    mu, sd = tokens.mean((0, 1)), tokens.std((0, 1)) + 1e-6
    ym, ys = xy.mean(0), xy.std(0) + 1e-9
    x = torch.from_numpy(((tokens - mu) / sd).astype(np.float32))
    y = torch.from_numpy(((xy - ym) / ys).astype(np.float32))
    _fit(probe, x, y, steps, batch, seed, max_lr=2e-3)

    @torch.no_grad()
    def read(t: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(((t - mu) / sd).astype(np.float32))
        return np.concatenate([probe(c).numpy() for c in z.split(2048)]) * ys + ym

    return read


def fit_joint_map(
    latents: Sequence[np.ndarray],
    eps: Sequence[Episode],
    limits: Sequence[float],
    steps: int = 1500,
    batch: int = 256,
    seed: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """Fit an MLP from joint positions (M, J) to image tokens (M, N, D) on the episodes' frames (the
    network of `losses.ArmHead`); returns it as a function of (M', J) joints -> (M', N, D) tokens: the
    part of the latent the arm explains."""
    lim = np.asarray(limits, np.float32)
    q = torch.from_numpy(np.concatenate([ep["joints"] for ep in eps]).astype(np.float32) / lim)
    z = torch.from_numpy(np.concatenate([x[:, :-1] for x in latents]).astype(np.float32))
    mean = z.mean(0)
    with torch.random.fork_rng():  # leaves the caller's RNG as it was
        torch.manual_seed(seed)
        net = ArmHead(len(lim), *z.shape[1:], lr=0.0)  # trained by `_fit`, not by its own optimiser
    _fit(net, q, z - mean, steps, batch, seed, max_lr=4e-3)

    @torch.no_grad()
    def tokens(joints: np.ndarray) -> np.ndarray:
        return (net(torch.from_numpy(np.asarray(joints, np.float32) / lim)) + mean).numpy()

    return tokens


def joint_explained_fraction(
    joint_map: Callable[[np.ndarray], np.ndarray], latents: Sequence[np.ndarray], eps: Sequence[Episode]
) -> float:
    """Share of the image tokens' variance over these episodes' frames that `joint_map` predicts."""
    z = np.concatenate([x[:, :-1] for x in latents])
    q = np.concatenate([ep["joints"] for ep in eps])
    return float(1.0 - ((joint_map(q) - z) ** 2).mean() / z.var(axis=0).mean())


def block_forecast(
    model: WorldModel,
    train_latents: Sequence[np.ndarray],
    train_eps: Sequence[Episode],
    val_latents: Sequence[np.ndarray],
    val_eps: Sequence[Episode],
    horizons: Sequence[int] = (5, 20),
    moved: float = 0.01,
    still: float = 0.002,
    max_windows: int = 512,
    seed: int = 0,
    joint_map: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict:
    """Does the predictor forecast the block? Ground truth measures it; the model never sees it.

    A probe (`TokenProbe`, trained on the training episodes' true latents) reads the block's (x, y)
    from latents. On held-out windows whose block moves >= `moved` m within k steps, the block is
    read k steps ahead from: the predictor's rollout of the recorded actions (`predicted`); the last
    observed latent (`copy_last`: the block stays where it is); the true latent (`true_latent`: the
    probe's floor). Median errors in cm; `copy_last_over_predicted` > 1 means the forecast beats
    copy-last. The same on windows whose block moves < `still` m (`still_predicted_cm`,
    `still_copy_last_cm`): a forecast that loses a block nothing touches fails there first.
    With `joint_map` (`fit_joint_map`), also `arm_only_cm` / `still_arm_only_cm`: the last latent
    moved by the arm alone, z_t + map(q_t+k) - map(q_t) with the recorded joints, a forecast with no
    scene dynamics that a predictor has to beat as well.
    """
    k = model.cfg.history

    def shift(e: int, s: int, h: int) -> float:
        xy = val_eps[e]["block_xy"]
        return float(np.linalg.norm(xy[s + k - 1 + h] - xy[s + k - 1]))

    windows = {}
    for h in horizons:
        starts = _window_starts(
            val_latents, k, h, max_windows, keep=lambda e, s, h=h: shift(e, s, h) >= moved
        )
        if starts:
            windows[h] = (
                starts,
                _window_starts(val_latents, k, h, max_windows, keep=lambda e, s, h=h: shift(e, s, h) < still),
            )
    out: dict[str, Any] = {"moved_cm": 100 * moved, "still_cm": 100 * still, "horizons": {}}
    if not windows:
        return out
    read = fit_token_probe(
        np.concatenate([z[:, :-1] for z in train_latents]),
        np.concatenate([ep["block_xy"] for ep in train_eps]),
        seed=seed,
    )

    def errors(h: int, idx: list[tuple[int, int]]) -> dict[str, float]:
        hist, acts, fut = _windows(val_latents, val_eps, k, h, max_windows, idx)
        truth = np.stack([val_eps[e]["block_xy"][s + k - 1 + h] for e, s in idx])

        def err(tokens: np.ndarray) -> float:
            return float(100 * np.median(np.linalg.norm(read(tokens) - truth, axis=1)))

        res = {
            "predicted_cm": err(_rollout(model, hist, acts)[:, -1, :-1]),
            "copy_last_cm": err(hist[:, -1, :-1]),
            "true_latent_cm": err(fut[:, -1, :-1]),
        }
        if joint_map is not None:
            q0, q1 = (np.stack([val_eps[e]["joints"][s + k - 1 + i] for e, s in idx]) for i in (0, h))
            res["arm_only_cm"] = err(hist[:, -1, :-1] + joint_map(q1) - joint_map(q0))
        return res

    for h, (idx, idx_still) in windows.items():
        f: dict[str, Any] = {"windows": len(idx), **errors(h, idx)}
        f["copy_last_over_predicted"] = f["copy_last_cm"] / max(f["predicted_cm"], 1e-9)
        if idx_still:
            e_still = errors(h, idx_still)
            f["still_windows"] = len(idx_still)
            f |= {
                f"still_{name}": e_still[name]
                for name in ("predicted_cm", "copy_last_cm", "arm_only_cm")
                if name in e_still
            }
        out["horizons"][str(h)] = f
    return out


def effective_rank(x: np.ndarray) -> float:
    """exp(entropy of the normalised singular values) of centred (M, F) embeddings."""
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    p = s / max(s.sum(), 1e-12)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


@torch.no_grad()
def action_ranks(
    model: WorldModel,
    latents: list[np.ndarray],
    eps: Sequence[Episode],
    n_actions: int,
    n_trans: int,
    seed: int,
) -> np.ndarray:
    """Rank (1 = best) of the true action among n_actions by predicted image-token distance."""
    k, dev = model.cfg.history, _device(model)
    lim = np.array(model.cfg.action_limits, np.float32)
    rng = np.random.default_rng(seed)
    hist, acts, fut = _windows(latents, eps, k, 1, n_trans)
    ranks = []
    for i in range(len(hist)):
        cand = rng.uniform(-lim, lim, (n_actions, len(lim))).astype(np.float32)
        cand[0] = acts[i, 0]
        h = torch.from_numpy(np.repeat(hist[i : i + 1], n_actions, axis=0)).to(dev)
        pred = model.predictor(h, torch.from_numpy(cand).to(dev)).cpu().numpy()
        dist = ((pred[:, :-1] - fut[i, 0, :-1]) ** 2).mean(axis=(1, 2))
        ranks.append(1 + int((dist[1:] < dist[0]).sum()))
    return np.array(ranks)


def evaluate(
    model: WorldModel,
    train_eps: Sequence[Episode],
    val_eps: Sequence[Episode],
    n_actions: int = 100,
    n_transitions: int = 200,
    max_probe_frames: int = 5000,
    seed: int = 0,
    latents: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
) -> dict:
    """All held-out metrics as a JSON-ready dict (see module docstring).

    `latents`: (train, held-out) episodes' latents when already encoded (`latents.cached_latents`).
    """
    model.eval()
    enc_val = [encode_episode(model, ep) for ep in val_eps]
    lat_val = [z for z, _ in enc_val] if latents is None else list(latents[1])
    ratios = kstep_ratios(model, val_eps, latents=lat_val)
    ranks = action_ranks(model, lat_val, val_eps, n_actions, n_transitions, seed)

    rng = np.random.default_rng(seed)
    tr = [encode_episode(model, ep)[0] for ep in train_eps] if latents is None else list(latents[0])
    x_tr = np.concatenate([z[:, :-1].reshape(len(z), -1) for z in tr])
    keep = np.sort(rng.permutation(len(x_tr))[:max_probe_frames])
    x_te = np.concatenate([z[:, :-1].reshape(len(z), -1) for z in lat_val])
    probes: dict[str, float] = {}
    q_tr = np.concatenate([ep["joints"] for ep in train_eps])[keep]
    q_te = np.concatenate([ep["joints"] for ep in val_eps])
    probes["joints_mae_rad"] = float(np.abs(ridge_probe(x_tr[keep], q_tr, x_te) - q_te).mean())
    probes["joints_mean_guess_mae_rad"] = float(np.abs(q_tr.mean(0) - q_te).mean())
    q_est = np.concatenate([q for _, q in enc_val])
    probes["joint_head_mae_rad"] = float(np.abs(q_est - q_te).mean())
    if all("block_xy" in ep for ep in (*train_eps, *val_eps)):
        b_tr = np.concatenate([ep["block_xy"] for ep in train_eps])[keep]
        b_te = np.concatenate([ep["block_xy"] for ep in val_eps])
        probes["block_xy_error_cm"] = float(
            100 * np.linalg.norm(ridge_probe(x_tr[keep], b_tr, x_te) - b_te, axis=1).mean()
        )
        probes["block_xy_mean_guess_error_cm"] = float(
            100 * np.linalg.norm(b_tr.mean(0) - b_te, axis=1).mean()
        )

    joint_map = fit_joint_map(tr, train_eps, model.cfg.joint_limits, seed=seed)
    probes["joint_explained_token_variance"] = joint_explained_fraction(joint_map, lat_val, val_eps)
    forecast = None
    if "block_xy_error_cm" in probes:
        forecast = block_forecast(model, tr, train_eps, lat_val, val_eps, seed=seed, joint_map=joint_map)

    tokens = np.concatenate([z[:, :-1] for z in lat_val])  # (M, N, D)
    flat_tok = tokens.reshape(-1, tokens.shape[-1])
    sample = flat_tok[rng.permutation(len(flat_tok))[:20000]]
    std = tokens.reshape(-1, tokens.shape[-1]).std(0)
    return {
        "kstep_ratio": ratios,
        "action_rank_mean": float(ranks.mean()),
        "action_rank_top5": float((ranks <= 5).mean()),
        "action_rank_n_actions": n_actions,
        "action_rank_transitions": len(ranks),
        "probes": probes,
        "collapse": {
            "token_dim_std": [float(s) for s in std],
            "token_dim_std_min": float(std.min()),
            "token_effective_rank": effective_rank(sample),
            "token_effective_rank_max": int(tokens.shape[-1]),
            "frame_effective_rank": effective_rank(tokens.reshape(len(tokens), -1)[:2000]),
        },
        "heldout_frames": len(tokens),
        **({"block_forecast": forecast} if forecast else {}),
    }


def format_metrics(m: dict) -> str:
    """Human-readable summary of `evaluate` output."""
    p, c = m["probes"], m["collapse"]
    lines = [
        "k-step error / copy-last: "
        + ", ".join(f"k={i + 1}: {r:.3f}" for i, r in enumerate(m["kstep_ratio"])),
        f"true action rank among {m['action_rank_n_actions']}: mean {m['action_rank_mean']:.1f}, "
        f"top-5 {100 * m['action_rank_top5']:.0f}%",
        f"joint probe {p['joints_mae_rad']:.3f} rad (mean guess {p['joints_mean_guess_mae_rad']:.3f}); "
        f"joint head {p['joint_head_mae_rad']:.3f} rad; joints explain "
        f"{100 * p['joint_explained_token_variance']:.1f}% of the image tokens' variance",
    ]
    if "block_xy_error_cm" in p:
        lines.append(
            f"block probe {p['block_xy_error_cm']:.1f} cm "
            f"(mean guess {p['block_xy_mean_guess_error_cm']:.1f} cm)"
        )
    bf = m.get("block_forecast") or {}
    for k, f in bf.get("horizons", {}).items():
        arm = f" arm only {f['arm_only_cm']:.2f}," if "arm_only_cm" in f else ""
        lines.append(
            f"block forecast k={k}, {f['windows']} held-out windows where it moves >= "
            f"{bf['moved_cm']:.0f} cm: predicted {f['predicted_cm']:.2f} cm, "
            f"copy-last {f['copy_last_cm']:.2f} ({f['copy_last_over_predicted']:.2f}x),{arm} "
            f"true latent {f['true_latent_cm']:.2f}"
        )
        if "still_windows" in f:
            arm = f", arm only {f['still_arm_only_cm']:.2f}" if "still_arm_only_cm" in f else ""
            lines.append(
                f"  {f['still_windows']} where it stays (< {bf['still_cm']:.1f} cm): predicted "
                f"{f['still_predicted_cm']:.2f} cm, copy-last {f['still_copy_last_cm']:.2f}{arm}"
            )
    lines.append(
        f"collapse: min dim std {c['token_dim_std_min']:.3f}, token eff. rank {c['token_effective_rank']:.1f}"
        f"/{c['token_effective_rank_max']}, frame eff. rank {c['frame_effective_rank']:.1f}"
    )
    return "\n".join(lines)
