"""Does "the encoder's tokens minus what the arm explains" rank the block's state, where the plain
token MSE ranks the arm's?

A diagnostic for the cost (simulator ground truth only to stage the states, never used by the
product). A map from the joint states to the shipped encoder's image tokens (an MLP on sin/cos of
the joints, fitted on 3,600 push resets, checked on 400) stands for what the arm explains: camera
and joint states only, as a robot's recordings have. On 50 held-out push seeds it stages the start
S, the goal G, A (arm at the goal pose, block where it started) and B (arm where it started, block
at its goal), and counts how often each energy to G ranks B below A: a cost that sees the block
should.

Usage: python scripts/arm_residual.py [--model models/tabletop_arm]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

from ami_ros.config import SimConfig
from ami_ros.core.preprocess import encode_frame
from ami_ros.runtime import load_model
from ami_ros.sim import ArmSim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/tabletop_arm")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    runtime = load_model(args.model, graphs=("encoder.onnx",))

    def tokens(sim: ArmSim) -> np.ndarray:
        """The image tokens of the rendered frame, flattened (the last token is the joints')."""
        return encode_frame(runtime, sim.render(), sim.state().qpos)[0][:-1].ravel()

    def features(q: np.ndarray) -> torch.Tensor:
        q = torch.as_tensor(np.asarray(q, np.float32))
        return torch.cat([torch.sin(q), torch.cos(q)], -1)

    with ArmSim(SimConfig(task="push")) as sim:
        joints, toks = [], []
        for seed in range(600_000, 604_000):
            joints.append(sim.reset(seed, "push").qpos)
            toks.append(tokens(sim))
        q, t = np.array(joints, np.float32), np.array(toks, np.float32)
        mean, std = t.mean(0), t.std(0) + 1e-6
        arm = nn.Sequential(
            nn.Linear(8, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, t.shape[1])
        )
        x, y = features(q[:3600]), torch.as_tensor((t[:3600] - mean) / std)
        opt = torch.optim.Adam(arm.parameters(), 1e-3)
        for _ in range(300):
            for idx in torch.randperm(3600).split(128):
                loss = nn.functional.mse_loss(arm(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        arm.requires_grad_(False)
        held_out = nn.functional.mse_loss(arm(features(q[3600:])), torch.as_tensor((t[3600:] - mean) / std))
        print(f"arm map: held-out MSE of the standardized tokens {held_out.item():.3f} (1 = the mean's)")

        energies: dict[str, list[dict[str, float]]] = {"plain token MSE": [], "arm-explained residual": []}
        for seed in range(100_000, 100_050):
            start = sim.reset(seed, "push")
            goal = sim.goal
            staged = {
                "S": (start.qpos.copy(), start.block_pose.copy()),
                "A": (goal.arm_qpos, start.block_pose.copy()),
                "B": (start.qpos.copy(), goal.block_pose),
                "G": (goal.arm_qpos, goal.block_pose),
            }
            plain, residual = {}, {}
            for name, (qpos, block) in staged.items():
                sim.set_state(qpos, block)
                plain[name] = (tokens(sim) - mean) / std
                residual[name] = plain[name] - arm(features(qpos[None]))[0].numpy()
            for kind, z in (("plain token MSE", plain), ("arm-explained residual", residual)):
                energies[kind].append({k: float(np.mean((z[k] - z["G"]) ** 2)) for k in "SAB"})
    for kind, rows in energies.items():
        count = {pair: sum(r[pair[0]] < r[pair[1]] for r in rows) for pair in ("BA", "BS", "AS")}
        median = {k: np.median([r[k] for r in rows]) for k in "SAB"}
        print(
            f"{kind}: B below A in {count['BA']}/{len(rows)}, B below S in {count['BS']}, A below S in "
            f"{count['AS']}; median energy S {median['S']:.3f}, A {median['A']:.3f}, B {median['B']:.3f}"
        )


if __name__ == "__main__":
    main()
