"""Latents of a frozen encoder, encoded once per (encoder weights, episodes) and cached on disk.

Frozen-encoder training (`train.freeze_encoder`) and the held-out metrics run on these: a predictor,
cost or critic experiment then costs predictor time only, not ~60 encoder passes per frame.
The cache file is named by a hash of the encoder's weights and of every episode's frames and joints,
so a changed encoder or data set never reads stale latents; a missing cache is rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ami_ros.world_model.data import Episode
from ami_ros.world_model.model import Encoder

log = logging.getLogger(__name__)


def fingerprint(encoder: Encoder, episodes: Sequence[Episode]) -> str:
    """Hash of the encoder's weights and of the episodes' frames and joints (what a latent depends on)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(encoder.state_dict().items()):
        if not name.startswith("pose_net."):  # the pose network does not touch the latent
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for ep in episodes:
        h.update(np.ascontiguousarray(ep["frames"]).data)
        h.update(np.ascontiguousarray(ep["joints"], dtype=np.float32).data)
    return h.hexdigest()


@torch.no_grad()
def encode_episodes(encoder: Encoder, episodes: Sequence[Episode], batch: int = 512) -> list[np.ndarray]:
    """Latents (T, N+1, D) float32 of every episode, in eval mode on the encoder's device."""
    was_training, dev = encoder.training, next(encoder.parameters()).device
    encoder.eval()
    out = []
    for ep in episodes:
        parts = [
            encoder.latent(
                torch.from_numpy(np.ascontiguousarray(ep["frames"][s : s + batch])).to(dev),
                torch.from_numpy(np.asarray(ep["joints"][s : s + batch], np.float32)).to(dev),
            )
            .cpu()
            .numpy()
            for s in range(0, len(ep["frames"]), batch)
        ]
        out.append(np.concatenate(parts))
    encoder.train(was_training)
    return out


def cached_latents(encoder: Encoder, episodes: Sequence[Episode], cache_dir: str | Path) -> list[np.ndarray]:
    """`encode_episodes`, read from `cache_dir` when this encoder has encoded these episodes before."""
    path = Path(cache_dir) / f"latents-{fingerprint(encoder, episodes)}.npy"
    lengths = [len(ep["frames"]) for ep in episodes]
    if path.is_file():
        flat = np.load(path)
        if len(flat) == sum(lengths):
            log.info("latents of %d frames read from %s", len(flat), path)
            return np.split(flat, np.cumsum(lengths)[:-1])
        log.warning("%s holds %d latents, not %d: encoding again", path, len(flat), sum(lengths))
    latents = encode_episodes(encoder, episodes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.concatenate(latents))
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache
    log.info("latents of %d frames cached in %s", sum(lengths), path)
    return latents
