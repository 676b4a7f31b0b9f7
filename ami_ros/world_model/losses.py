"""JEPA losses: latent prediction error, VICReg anti-collapse, joint supervision.

Latent errors are plain MSEs against the EMA target encoder's latents; their scale is set by
VICReg's variance hinge, which holds every token dimension at std >= 1 across frames at each
grid position. Joints are normalised by the joint limits.

Dividing the latent errors by the copy-last error instead (scale-free, 1.0 = copy-last) was
measured worse: most tokens barely change between frames, so that ratio's gradients are huge and
drown the anti-collapse and joint terms; the tokens collapsed to ~0.2 std and the predictor did
no better than copy-last (k=1 ratio 0.97-1.2 after 400-500 steps, against 0.84 with plain MSE).

With a frozen encoder the predictor's latent errors can be measured in a whitened frame space
(`change_whitening`): the arm's motion moves the latent along a few directions that hold most of
its change, and a plain MSE spends the predictor on them while the block's small directions go
unscored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class ArmHead(torch.nn.Module):
    """MLP from limit-normalised joint positions (M, J) to image tokens (M, N, D): the part of the
    latent the arm explains (`TrainConfig.variance_beyond_joints`). It trains with its own optimiser
    (`fit`) on detached tokens, a few steps per batch, so that it keeps up with the encoder."""

    def __init__(self, joints: int, tokens: int, dim: int, lr: float, width: int = 256) -> None:
        super().__init__()
        self.shape = (tokens, dim)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(joints, width),
            torch.nn.GELU(),
            torch.nn.Linear(width, width),
            torch.nn.GELU(),
            torch.nn.Linear(width, tokens * dim),
        )
        self.optimizer = torch.optim.AdamW(self.parameters(), lr, weight_decay=0.0)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.net(q).view(len(q), *self.shape)

    def fit(self, q: torch.Tensor, tokens: torch.Tensor, steps: int = 2) -> torch.Tensor:
        """`steps` optimiser steps of MSE(head(q), tokens) (tokens detached); returns the last MSE."""
        for _ in range(steps):
            error = (self(q) - tokens.detach()).pow(2).mean()
            self.optimizer.zero_grad(set_to_none=True)
            error.backward()
            self.optimizer.step()
        return error.detach()


def vicreg(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Variance hinge and off-diagonal covariance of (M, N, D) spatial embeddings (VICReg).

    Statistics are taken across the M frames at each of the N token positions: pooled over
    positions, the position embedding alone would satisfy the variance hinge while the tokens
    ignore the image content (a collapse the hinge would not see).
    """
    x = tokens - tokens.mean(dim=0)  # (M, N, D)
    std = torch.sqrt(x.var(dim=0) + 1e-4)  # (N, D)
    variance = torch.relu(1.0 - std).mean()
    flat = x.reshape(-1, x.shape[-1])
    d = flat.shape[1]
    cov = (flat.T @ flat) / (flat.shape[0] - 1)
    covariance = (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d
    return variance, covariance


def change_whitening(latents: Sequence[np.ndarray], ridge: float) -> torch.Tensor:
    """(N*D, N*D) matrix W that whitens the one-frame change of the image tokens over `latents`
    (episodes of (T, N+1, D)): W = (C + ridge I)^(-1/2), C the covariance of z[t+1] - z[t], scaled
    so that copying the last latent costs what it costs in plain MSE. An error e (..., N, D) then
    costs mean((e.flatten(-2) @ W)^2): errors along directions the latent seldom moves in (a still
    block) weigh more, those along the arm's motion less.
    """
    change = np.concatenate([np.diff(z[:, :-1], axis=0).reshape(len(z) - 1, -1) for z in latents])
    change = change.astype(np.float64)
    centred = change - change.mean(0)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / len(centred))
    w = (eigvec / np.sqrt(np.maximum(eigval, 0.0) + ridge)) @ eigvec.T
    scale = np.sqrt((change**2).mean() / ((change @ w) ** 2).mean())
    return torch.from_numpy((w * scale).astype(np.float32))


def prediction_losses(
    out: dict[str, torch.Tensor],
    future_latents: torch.Tensor,
    future_joints: torch.Tensor,
    limits: torch.Tensor,
    whitening: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The predictor's loss terms, shared by end-to-end and frozen-encoder training.

    Args:
        out: `Predictor.windows` outputs: teacher, rollout (B, H, N+1, D).
        future_latents: (B, H, N+1, D) target latents of frames K..T-1 (no gradient).
        future_joints: (B, H, J) recorded joint positions of the same frames, rad.
        limits: (J,) joint limits, rad.
        whitening: `change_whitening` matrix; None: plain MSE.
    Returns:
        teacher, rollout (image-token MSE), joints (predicted joints, limit-normalised MSE).
    """
    tgt = future_latents[:, :, :-1]
    q = future_joints / limits
    nj = limits.shape[0]

    def error(pred: torch.Tensor) -> torch.Tensor:
        e = pred[:, :, :-1] - tgt
        return (e if whitening is None else e.flatten(-2) @ whitening).pow(2).mean()

    return {
        "teacher": error(out["teacher"]),
        "rollout": error(out["rollout"]),
        "joints": (out["teacher"][:, :, -1, :nj] - q).pow(2).mean() / 2
        + (out["rollout"][:, :, -1, :nj] - q).pow(2).mean() / 2,
    }


def jepa_losses(
    out: dict[str, torch.Tensor],
    target_latents: torch.Tensor,
    joints: torch.Tensor,
    limits: torch.Tensor,
    history: int,
    arm_head: ArmHead | None = None,
) -> dict[str, torch.Tensor]:
    """Loss terms of one batch of windows.

    Args:
        out: `WorldModel.forward` outputs (latents, joints_est, joints_tokens, teacher, rollout).
        target_latents: (B, H + 1, N+1, D) EMA-encoder latents of frames K-1..T-1 (no gradient).
        joints: (B, T, J) recorded joint positions, rad.
        limits: (J,) joint limits, rad.
        history: K.
        arm_head: with it, VICReg's variance hinge holds what the head, given the joints, does not
            predict of the image tokens (the head first fits them, `ArmHead.fit`; its error is the
            term `arm_head`, for the log), so the tokens must vary with the scene beyond the arm;
            without, the tokens themselves.
    Returns:
        teacher, rollout (image-token MSE), joints (image joint head + predicted
        joints, limit-normalised MSE), variance, covariance (VICReg on online image tokens),
        arm_head (with `arm_head`: its MSE, no gradient).
    """
    terms = prediction_losses(out, target_latents[:, 1:], joints[:, history:], limits)
    joint_head = (out["joints_tokens"] / limits - joints / limits).pow(2).mean()
    if out["joints_est"] is not out["joints_tokens"]:  # a pose network: supervised the same way
        joint_head = joint_head + (out["joints_est"] / limits - joints / limits).pow(2).mean()
    terms["joints"] = terms["joints"] + joint_head
    tokens = out["latents"][:, :, :-1].flatten(0, 1)
    variance, covariance = vicreg(tokens)
    if arm_head is not None:
        q = (joints / limits).flatten(0, 1)
        terms["arm_head"] = arm_head.fit(q, tokens)
        with torch.no_grad():
            arm = arm_head(q)
        variance, _ = vicreg(tokens - arm)
    return terms | {"variance": variance, "covariance": covariance}
