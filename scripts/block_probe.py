"""Where is the block's position lost: in the camera's pixels or in the encoder?

A diagnostic for the retrain (simulator ground truth, never used by the product). It renders
push-task resets of the embedded robot (random block, random arm clear of it), then trains the
same small convolutional probe to read the block's (x, y) from each input and prints its error on
held-out frames:

- the scene camera's frame at the encoder's 64 px (what the shipped model sees), and at 128 px;
- a crop of the scene camera's frame to the workspace (the square around every block position the
  push task can place), at 64 px;
- the top camera's frame at 64 px;
- the shipped encoder's latent of the 64 px scene frame (its 8 x 8 grid of image tokens).

Usage: python scripts/block_probe.py [--frames 6000] [--epochs 15] [--token-epochs 150]
                                     [--model models/tabletop_arm]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from ami_ros.config import SimConfig
from ami_ros.core.preprocess import resize_frame
from ami_ros.runtime import load_model
from ami_ros.sim import ArmSim

RENDER = 256  # px: every input is resized from this render (cv2.INTER_AREA, as the encoder's input)


def frames(camera: str, seeds: range) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Renders (N, 256, 256, 3) of push resets, with the block's (N, 2) position, the arm's (N, 4)
    joints and the block's (N, 2) pixel in the render."""
    images, blocks, joints, pixels = [], [], [], []
    with ArmSim(SimConfig(task="push", camera=camera, image_width=RENDER, image_height=RENDER)) as sim:
        fx, fy, cx, cy = sim.camera_intrinsics()
        cam = sim.model.camera(camera).id
        for seed in seeds:
            state = sim.reset(seed, "push")
            images.append(sim.render())
            blocks.append(state.block_pose[:2])
            joints.append(state.qpos)
            # the block's centre in the camera frame (MuJoCo cameras look along -z, y up)
            rel = sim.data.cam_xmat[cam].reshape(3, 3).T @ (state.block_pose[:3] - sim.data.cam_xpos[cam])
            pixels.append([cx + fx * rel[0] / -rel[2], cy - fy * rel[1] / -rel[2]])
    return np.stack(images), np.array(blocks, np.float32), np.array(joints, np.float32), np.array(pixels)


def crop_box(pixels: np.ndarray, margin: float = 16.0) -> tuple[int, int, int]:
    """The square (top, left, side) around every block pixel of the training frames, plus a margin."""
    lo, hi = pixels.min(0) - margin, pixels.max(0) + margin
    side = int(min(max(hi - lo), RENDER))
    centre = (lo + hi) / 2
    left, top = (int(np.clip(c - side / 2, 0, RENDER - side)) for c in centre)
    return top, left, side


def resized(images: np.ndarray, size: int, box: tuple[int, int, int] | None = None) -> np.ndarray:
    if box is not None:
        top, left, side = box
        images = images[:, top : top + side, left : left + side]
    return np.stack([resize_frame(im, size) for im in images])


def probe(x: np.ndarray, y: np.ndarray, n_train: int, epochs: int, seed: int = 0) -> np.ndarray:
    """Trains a small CNN on x[:n_train] (N, H, W, C) -> y (N, 2) metres; returns the held-out
    frames' errors (m)."""
    torch.manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32).permute(0, 3, 1, 2)
    if x.dtype == np.uint8:
        xt = (xt / 255.0 - 0.5) / 0.25
    else:
        xt = (xt - xt[:n_train].mean((0, 2, 3), keepdim=True)) / xt[:n_train].std((0, 2, 3), keepdim=True)
    mean, std = y[:n_train].mean(0), y[:n_train].std(0)
    yt = torch.as_tensor((y - mean) / std)
    stem = 1 if x.shape[1] <= 64 else 2  # a 128 px frame's first conv strides: the same cost
    layers = [nn.Conv2d(x.shape[-1], 16, 2 + stem, stem, 1), nn.GELU()]
    channels, size = 16, x.shape[1] // stem
    while size > 4:  # stride-2 convs down to a 4 x 4 grid
        layers += [nn.Conv2d(channels, 64, 3, 2, 1), nn.GELU()]
        channels, size = 64, size // 2
    head = [nn.Flatten(), nn.Linear(channels * size * size, 256), nn.GELU(), nn.Linear(256, 2)]
    net = nn.Sequential(*layers, *head)
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * ((n_train + 63) // 64))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(n_train, generator=gen).split(64):
            loss = nn.functional.mse_loss(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        pred = net(xt[n_train:]).numpy() * std + mean
    return np.linalg.norm(pred - y[n_train:], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=15, help="probe epochs on frames")
    parser.add_argument("--token-epochs", type=int, default=150, help="probe epochs on tokens (cheap)")
    parser.add_argument("--model", default="models/tabletop_arm")
    args = parser.parse_args()
    torch.set_num_threads(2)
    seeds, n_train = range(500_000, 500_000 + args.frames), args.frames - args.test
    t0 = time.time()
    scene, blocks, joints, pixels = frames("scene", seeds)
    top, _, _, _ = frames("top", seeds)
    box = crop_box(pixels[:n_train])
    print(f"rendered {2 * args.frames} frames in {time.time() - t0:.0f} s; workspace crop {box}", flush=True)
    runtime = load_model(args.model, graphs=("encoder.onnx",))
    scene64 = resized(scene, runtime.image_size)
    batches = [(scene64[b : b + 256], joints[b : b + 256]) for b in range(0, len(joints), 256)]
    latent = np.concatenate([runtime.encode_batch(*batch)[0] for batch in batches])
    image_tokens = latent[:, :-1]  # the last token is the joints' (proprio) token
    grid = int(np.sqrt(image_tokens.shape[1]))
    tokens = image_tokens.reshape(-1, grid, grid, latent.shape[-1])
    inputs = {
        "scene camera, 64 px (the shipped model's input)": scene64,
        "scene camera, 128 px": resized(scene, 128),
        "scene camera cropped to the workspace, 64 px": resized(scene, 64, box),
        "top camera, 64 px": resized(top, 64),
        "the shipped encoder's 8 x 8 image tokens (of the 64 px scene frame)": tokens,
    }
    mean_guess = np.linalg.norm(blocks[n_train:] - blocks[:n_train].mean(0), axis=1)
    print(f"{args.test} held-out frames; guessing the mean: median {100 * np.median(mean_guess):.1f} cm")
    for name, x in inputs.items():
        t0 = time.time()
        err = probe(x, blocks, n_train, args.epochs if x.dtype == np.uint8 else args.token_epochs)
        cm = 100 * np.array([np.median(err), err.mean(), np.percentile(err, 90)])
        took = time.time() - t0
        print(f"{name}: median {cm[0]:.2f} cm, mean {cm[1]:.2f} cm, p90 {cm[2]:.2f} cm ({took:.0f} s)")


if __name__ == "__main__":
    main()
