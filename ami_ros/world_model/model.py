"""The JEPA world model: a ViT encoder with a spatial latent and a FiLM-conv latent predictor.

Latent of one frame (`WorldModelConfig`, defaults in brackets):
    latent (B, N + 1, D): N = grid**2 image patch tokens [64], row-major over the grid [8x8], then
    one proprio token, a fixed Fourier embedding of the joint positions whose first J [4] entries
    are `joints / joint_limits` (so joints decode exactly from a latent). D = latent_dim [16].
The encoder also returns `joints_est (B, J)`, the joint positions read from the image alone: a goal
image has no joint state, yet yields a joint estimate for a dense reach cost. With
`pose_channels` set it comes from a convolutional pose network on the pixels (`PoseNet`), else
from an MLP on the image tokens; the token MLP is always trained as an auxiliary loss.

The predictor maps a history of K latents and one action to the next latent; `rollout` repeats it,
feeding its own predictions back. Image tokens are updated as residuals on the 8x8 grid by 3x3 convs
whose features are FiLM-modulated by (action, proprio history); the joints are predicted as
`clip(q + action, limits) + learned correction`, since an action is a joint-position delta.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ami_ros.config import WorldModelConfig


def proprio_embedding(joints: torch.Tensor, limits: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed embedding of joint positions: [q/limit, sin q, cos q, sin 2q, cos 2q, ...][:dim].

    Args:
        joints: (..., J) joint positions, rad.
        limits: (J,) joint limits, rad.
        dim: output width (>= J).
    Returns:
        (..., dim) embedding; its first J entries are joints / limits.
    """
    feats, k = [joints / limits], 1
    while sum(f.shape[-1] for f in feats) < dim:
        feats += [torch.sin(k * joints), torch.cos(k * joints)]
        k += 1
    return torch.cat(feats, dim=-1)[..., :dim]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // self.heads), dim=-1)  # (B, h, N, N)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block (nanoGPT)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def conv_stem(width: int, patch_size: int) -> nn.Sequential:
    """log2(patch_size) stride-2 3x3 convolutions: (B, 3, S, S) -> (B, width, S/p, S/p).

    A convolutional stem instead of one linear patch projection (Xiao et al. 2021, "Early
    convolutions help transformers see better"): at 64 px the arm's links are ~2 px wide and the
    block ~3 px, so a patch embedding that sees each 8x8 patch once, linearly, loses them.
    """
    n = int(math.log2(patch_size))
    if 2**n != patch_size:
        raise ValueError(f"patch_size must be a power of two, got {patch_size}")
    chans = [3] + [max(16, width >> (n - 1 - i)) for i in range(n)]
    chans[-1] = width
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1)]
        if i < n - 1:
            layers += [nn.GELU()]
    return nn.Sequential(*layers)


class PoseNet(nn.Module):
    """Pixels -> joint positions: stride-2 conv pairs, then an MLP (a supervised pose regressor).

    The JEPA tokens are too coarse for the distal joints (a token MLP reads joint 3 and 4 at
    0.8-1.0 rad error, no better than a mean guess); a small CNN on the same 64 px frame resolves
    them, which a goal image needs for the joint term of the planner's cost.
    """

    def __init__(self, image_size: int, channels: tuple[int, ...], n_joints: int) -> None:
        super().__init__()
        chans, layers = [3, *channels], []
        for a, b in itertools.pairwise(chans):
            layers += [
                nn.Conv2d(a, b, 3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(b, b, 3, padding=1),
                nn.GELU(),
            ]
        self.features = nn.Sequential(*layers)
        side = image_size >> len(channels)
        self.head = nn.Sequential(
            nn.Linear(chans[-1] * side * side, 256), nn.GELU(), nn.Linear(256, n_joints)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, J) joints / limits."""
        return self.head(self.features(x).flatten(1))


class Encoder(nn.Module):
    """uint8 RGB frames + joint positions -> latent (B, N+1, D) and image-only joint estimate (B, J).

    A hybrid ViT: a convolutional stem makes the grid of patch tokens, transformer blocks mix them.
    Normalisation is inside: pixels are scaled to [0, 1], then (x - 0.5) / 0.25.
    """

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, dim = cfg.grid**2, cfg.encoder_dim
        self.register_buffer("limits", torch.tensor(cfg.joint_limits, dtype=torch.float32))
        self.patch = conv_stem(dim, cfg.patch_size)
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, cfg.encoder_heads) for _ in range(cfg.encoder_depth))
        self.ln = nn.LayerNorm(dim)
        self.to_latent = nn.Linear(dim, cfg.latent_dim)
        self.joint_head = nn.Sequential(
            nn.Linear(n * cfg.latent_dim, 128), nn.GELU(), nn.Linear(128, len(cfg.joint_names))
        )
        self.pose_net = (
            PoseNet(cfg.image_size, cfg.pose_channels, len(cfg.joint_names)) if cfg.pose_channels else None
        )

    @staticmethod
    def normalise(images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float, (pixel / 255 - 0.5) / 0.25."""
        return (images.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25

    def pose(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, J) joint positions from the pose network, rad."""
        assert self.pose_net is not None, "pose_channels is empty: no pose network"
        return self.pose_net(self.normalise(images)) * self.limits

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, N, D) image tokens."""
        x = self.patch(self.normalise(images)).flatten(2).transpose(1, 2) + self.pos  # (B, N, dim)
        for block in self.blocks:
            x = block(x)
        return self.to_latent(self.ln(x))

    def joints_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) image tokens -> (B, J) joint positions, rad."""
        return self.joint_head(tokens.flatten(1)) * self.limits

    def forward(self, images: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: images (B, H, W, 3) uint8 RGB; joints (B, J) rad.

        Returns: latent (B, N+1, D), joints_est (B, J).
        """
        latent = self.latent(images, joints)
        q_est = self.pose(images) if self.pose_net is not None else self.joints_from_tokens(latent[:, :-1])
        return latent, q_est

    def latent(self, images: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB, (B, J) rad -> latent (B, N+1, D), without the joint estimate."""
        proprio = proprio_embedding(joints, self.limits, self.cfg.latent_dim)
        return torch.cat([self.image_tokens(images), proprio[:, None]], dim=1)


class FiLMBlock(nn.Module):
    """h + conv3x3(gelu(h * (1 + gamma) + beta)), gamma/beta from the conditioning vector.

    No normalisation layer: GroupNorm doubled the predictor's onnxruntime CPU time at batch 256.
    """

    def __init__(self, channels: int, cond_dim: int, dilation: int) -> None:
        super().__init__()
        self.film = nn.Linear(cond_dim, 2 * channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(cond)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return h + self.conv(F.gelu(h * (1 + gamma) + beta))


class Predictor(nn.Module):
    """(history (B, K, N+1, D), action (B, J)) -> next latent (B, N+1, D)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k, d, c, g, j = cfg.history, cfg.latent_dim, cfg.predictor_channels, cfg.grid, len(cfg.joint_names)
        self.register_buffer("limits", torch.tensor(cfg.joint_limits, dtype=torch.float32))
        self.register_buffer("action_limits", torch.tensor(cfg.action_limits, dtype=torch.float32))
        self.cond = nn.Sequential(nn.Linear(k * d + j, cfg.predictor_cond_dim), nn.GELU())
        self.inp = nn.Conv2d(k * d, c, 1)
        self.pos = nn.Parameter(torch.randn(1, c, g, g) * 0.02)
        self.blocks = nn.ModuleList(
            FiLMBlock(c, cfg.predictor_cond_dim, 2 ** (i % 3)) for i in range(cfg.predictor_blocks)
        )
        self.out = nn.Conv2d(c, d, 1)
        self.joint_out = nn.Linear(cfg.predictor_cond_dim + c, j)
        for layer in (self.out, self.joint_out):  # start as copy-last / q + action
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, history: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        b, k, _, d = history.shape
        g, nj = self.cfg.grid, len(self.cfg.joint_names)
        image = history[:, :, :-1].permute(0, 1, 3, 2).reshape(b, k * d, g, g)  # (B, K*D, g, g)
        proprio = history[:, :, -1]  # (B, K, D)
        cond = self.cond(torch.cat([proprio.flatten(1), action / self.action_limits], dim=1))
        h = self.inp(image) + self.pos
        for block in self.blocks:
            h = block(h, cond)
        tokens = history[:, -1, :-1] + self.out(h).flatten(2).transpose(1, 2)  # (B, N, D)
        q = proprio[:, -1, :nj] * self.limits
        q_next = torch.maximum(torch.minimum(q + action, self.limits), -self.limits)
        q_next = q_next + self.joint_out(torch.cat([cond, h.mean(dim=(2, 3))], dim=1)) * self.action_limits
        proprio_next = proprio_embedding(q_next, self.limits, d)
        return torch.cat([tokens, proprio_next[:, None]], dim=1)

    def rollout(self, history: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Args: history (B, K, N+1, D); actions (B, H, J). Returns predicted latents (B, H, N+1, D)."""
        preds = []
        for t in range(actions.shape[1]):
            nxt = self(history, actions[:, t])
            preds.append(nxt)
            history = torch.cat([history[:, 1:], nxt[:, None]], dim=1)
        return torch.stack(preds, dim=1)

    def windows(self, latents: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """The predictions training scores, over windows of T = K + H latents.

        Args:
            latents: (B, T, N+1, D); actions: (B, T - 1, J), actions[:, t] leads from t to t + 1.
        Returns:
            teacher (B, H, N+1, D): one-step predictions of latents K..T-1 from the true history;
            rollout (B, H, N+1, D): the same latents predicted from the first K, autoregressively.
        """
        b, t = latents.shape[:2]
        k = self.cfg.history
        hist = torch.stack([latents[:, i : i + k] for i in range(t - k)], dim=1)  # (B, H, K, N+1, D)
        teacher = self(hist.flatten(0, 1), actions[:, k - 1 :].flatten(0, 1))
        return {
            "teacher": teacher.view(b, t - k, *latents.shape[2:]),
            "rollout": self.rollout(latents[:, :k], actions[:, k - 1 :]),
        }


def latent_joints(latent: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """(..., N+1, D) latent -> (..., J) joint positions decoded from its proprio token."""
    return latent[..., -1, : limits.shape[0]] * limits


class WorldModel(nn.Module):
    """Encoder + predictor; `forward` is the training pass (one module, so DDP syncs both)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.predictor = Predictor(cfg)

    def forward(
        self, frames: torch.Tensor, joints: torch.Tensor, actions: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Training pass over windows of T = K + H frames.

        Args:
            frames: (B, T, H, W, 3) uint8.
            joints: (B, T, J) rad.
            actions: (B, T - 1, J); actions[:, t] leads from frame t to frame t + 1.
        Returns:
            latents (B, T, N+1, D) online encodings; joints_est (B, T, J) the encoder's joint
            estimate; joints_tokens (B, T, J) the token joint head's (the same without a pose net);
            teacher (B, H, N+1, D) one-step predictions of frames K..T-1 from true history;
            rollout (B, H, N+1, D) predictions of the same frames from the first K, autoregressive.
        """
        b, t = frames.shape[:2]
        z, q_est = self.encoder(frames.flatten(0, 1), joints.flatten(0, 1))
        z, q_est = z.view(b, t, *z.shape[1:]), q_est.view(b, t, -1)
        q_tok = q_est
        if self.encoder.pose_net is not None:  # the token joint head, trained as an auxiliary
            q_tok = self.encoder.joints_from_tokens(z[:, :, :-1].flatten(0, 1)).view(b, t, -1)
        out = {"latents": z, "joints_est": q_est, "joints_tokens": q_tok}
        return out | self.predictor.windows(z, actions)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
