"""JEPA losses: latent prediction error, VICReg anti-collapse, joint supervision.

Latent errors are plain MSEs against the EMA target encoder's latents; their scale is set by
VICReg's variance hinge, which holds every token dimension at std >= 1 across frames at each
grid position. Joints are normalised by the joint limits.

Dividing the latent errors by the copy-last error instead (scale-free, 1.0 = copy-last) was
measured worse: most tokens barely change between frames, so that ratio's gradients are huge and
drown the anti-collapse and joint terms; the tokens collapsed to ~0.2 std and the predictor did
no better than copy-last (k=1 ratio 0.97-1.2 after 400-500 steps, against 0.84 with plain MSE).
"""

from __future__ import annotations

import torch


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


def prediction_losses(
    out: dict[str, torch.Tensor],
    future_latents: torch.Tensor,
    future_joints: torch.Tensor,
    limits: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The predictor's loss terms, shared by end-to-end and frozen-encoder training.

    Args:
        out: `Predictor.windows` outputs: teacher, rollout (B, H, N+1, D).
        future_latents: (B, H, N+1, D) target latents of frames K..T-1 (no gradient).
        future_joints: (B, H, J) recorded joint positions of the same frames, rad.
        limits: (J,) joint limits, rad.
    Returns:
        teacher, rollout (image-token MSE), joints (predicted joints, limit-normalised MSE).
    """
    tgt = future_latents[:, :, :-1]
    q = future_joints / limits
    nj = limits.shape[0]
    return {
        "teacher": (out["teacher"][:, :, :-1] - tgt).pow(2).mean(),
        "rollout": (out["rollout"][:, :, :-1] - tgt).pow(2).mean(),
        "joints": (out["teacher"][:, :, -1, :nj] - q).pow(2).mean() / 2
        + (out["rollout"][:, :, -1, :nj] - q).pow(2).mean() / 2,
    }


def jepa_losses(
    out: dict[str, torch.Tensor],
    target_latents: torch.Tensor,
    joints: torch.Tensor,
    limits: torch.Tensor,
    history: int,
) -> dict[str, torch.Tensor]:
    """Loss terms of one batch of windows.

    Args:
        out: `WorldModel.forward` outputs (latents, joints_est, joints_tokens, teacher, rollout).
        target_latents: (B, H + 1, N+1, D) EMA-encoder latents of frames K-1..T-1 (no gradient).
        joints: (B, T, J) recorded joint positions, rad.
        limits: (J,) joint limits, rad.
        history: K.
    Returns:
        teacher, rollout (image-token MSE), joints (image joint head + predicted
        joints, limit-normalised MSE), variance, covariance (VICReg on online image tokens).
    """
    terms = prediction_losses(out, target_latents[:, 1:], joints[:, history:], limits)
    joint_head = (out["joints_tokens"] / limits - joints / limits).pow(2).mean()
    if out["joints_est"] is not out["joints_tokens"]:  # a pose network: supervised the same way
        joint_head = joint_head + (out["joints_est"] / limits - joints / limits).pow(2).mean()
    terms["joints"] = terms["joints"] + joint_head
    variance, covariance = vicreg(out["latents"][:, :, :-1].flatten(0, 1))
    return terms | {"variance": variance, "covariance": covariance}
