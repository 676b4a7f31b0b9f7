"""Can a learned block model carry the push, given the block's true position? An experiment, not in
the package: a privileged reference that separates the model from the search and from perception.

The search is `scripts/slot_plan.py`'s (CEM over `--chunks` chunks of `--chunk` equal commands, the
first command executed each tick, the plan kept as the next tick's warm start; its cost is the
forecast block's distance to the goal's at the end of the plan), on the closed-loop episodes of
`ami_ros.eval.closed_loop` (push, approach-free: nothing places the arm behind the block). Its model:

- `--model sim`: the simulator itself (`ArmRollouts` from the true state): what the search does
  with a perfect model;
- `--model learned`: `--ensemble` MLPs from the block's true position and the wrist's and tip's
  path along the commands (forward kinematics of the URDF, relative to the block) to the block's
  displacement at the end of the plan. They are trained on the search's own kind of samples (random
  chunked commands, rolled out by the simulator) from `--states` start states of push episodes
  (seeds from 400,000), 70% of them after driving the tip towards a random point near the block;
  or, with `--recordings`, on every window of those recordings (`collect`'s episodes, probes too).
  `--gate` multiplies the displacement by a learned function of how near the path comes to the
  block; `--yaw` also gives the block's heading; `--width` and `--depth` size the MLPs; with an
  ensemble, the cost adds `--disagreement` x the members' spread (model-based RL's guard against a
  search that finds where the model is wrong). The samples are cached under `--cache`. `--noise`
  blurs the block position the learned model is given, each tick anew, to a perception's median
  error (one closed loop per value); the value `pixel` reads it from the camera instead, with
  `scripts/pixel_slot.py`'s slot (camera and joint states) through its homography to the table
  (fitted on the block's true positions: a calibration, for measuring only) from `--slot`.

Simulator ground truth is this experiment's input by design; no model of the project sees it.

Usage: python scripts/state_plan.py [--model learned|sim] [--states 1500] [--gate 1] [--yaw 1]
           [--ensemble 1] [--disagreement 0] [--width 256] [--depth 2] [--steps 6000]
           [--noise 0,0.01,pixel] [--slot runs/exp/pixel_slot] [--episodes 20] [--seed 300000]
           [--out runs/exp/state_plan/result.json]
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ami_ros.config import SimConfig, TrainRunConfig, load_yaml
from ami_ros.core.kinematics import Chain
from ami_ros.core.scene_slot import wrist_tip_path
from ami_ros.eval import closed_loop as cl
from ami_ros.sim import ArmRollouts, ArmSim
from ami_ros.world_model.scene_slot import apply_homography

sys.path.insert(0, str(Path(__file__).parent))
from pixel_slot import camera_slot, load_arm_layer
from slot_forecast import (
    add_search_arguments,
    chunked_cem,
    closed_loop_config,
    closed_loop_summary,
    random_plans,
)

p = argparse.ArgumentParser()
p.add_argument("--model", default="learned", choices=("learned", "sim"))
p.add_argument("--states", type=int, default=1500, help="start states of the learned model's samples")
p.add_argument("--per-state", type=int, default=64)
p.add_argument(
    "--recordings", default="", help="train on these recordings' windows instead (comma-separated)"
)
p.add_argument("--gate", type=int, default=0)
p.add_argument("--yaw", type=int, default=0, help="the model is also told the block's heading")
p.add_argument("--ensemble", type=int, default=1)
p.add_argument("--disagreement", type=float, default=0.0)
p.add_argument("--steps", type=int, default=6000)
p.add_argument("--width", type=int, default=256)
p.add_argument("--depth", type=int, default=2, help="hidden layers of the learned model")
add_search_arguments(p)
p.add_argument("--cache", default="runs/exp/state_plan")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--noise", default="0", help="comma-separated median errors (m) of the block position given")
p.add_argument("--slot", default="runs/exp/pixel_slot", help="pixel_slot.py's output (for --noise pixel)")
p.add_argument("--out", default="")
args = p.parse_args()
torch.set_num_threads(args.threads)

mc = load_yaml("config/train.yaml", TrainRunConfig).model
lim, alim = np.asarray(mc.joint_limits, np.float32), np.asarray(mc.action_limits, np.float32)
nj, hor = len(mc.joint_names), args.chunks * args.chunk
chain = Chain("sim/assets/tabletop_arm.urdf", "end_effector", mc.joint_names)
rng = np.random.default_rng(1)


def features(pose: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """The block's pose (7,) and the wrist's and tip's paths (n, hor+1, 2, 3) relative to it -> (n, F):
    its position, the paths, and with `--yaw` its heading (cos, sin of 4 x yaw: a square's symmetry)."""
    b, rel = pose[:2], tips.copy()
    rel[..., :2] -= b
    cols = [np.broadcast_to(b, (len(tips), 2)), rel.reshape(len(tips), -1)]
    if args.yaw:
        yaw = 2 * np.arctan2(pose[6], pose[3])  # MuJoCo's quaternion is (w, x, y, z)
        cols.append(np.broadcast_to([np.cos(4 * yaw), np.sin(4 * yaw)], (len(tips), 2)))
    return np.concatenate(cols, 1).astype(np.float32)


def recorded_samples() -> tuple[np.ndarray, np.ndarray]:
    """(features, block displacement) of every window of the recordings in `--recordings` (the
    commands recorded, the block's true position recorded beside them)."""
    from ami_ros.cli import read_training_episodes

    xs, ys = [], []
    for data in args.recordings.split(","):
        for ep in read_training_episodes(data, 8):
            b, q, a = ep["block_xy"], ep["joints"].astype(np.float32), ep["actions"].astype(np.float32)
            for t in range(len(b) - hor):
                tips = wrist_tip_path(chain, q[t][None], a[None, t : t + hor], hor, lim)
                pose = np.r_[b[t], 0.0, 1.0, 0.0, 0.0, 0.0]  # heading unknown: not used without --yaw
                xs.append(features(pose, tips))
                ys.append((b[t + hor] - b[t])[None].astype(np.float32))
    x, y = np.concatenate(xs), np.concatenate(ys)
    print(f"{len(x)} recorded windows; the block moves in {np.mean(np.linalg.norm(y, axis=1) > 0.01):.1%}")
    return x, y


def samples() -> tuple[np.ndarray, np.ndarray]:
    """(features, block displacement) of the search's kind of samples, cached."""
    if args.recordings:
        return recorded_samples()
    yaw = "_yaw" if args.yaw else ""
    path = Path(args.cache) / f"samples_{args.states}x{args.per_state}_{args.chunks}x{args.chunk}{yaw}.npz"
    if path.is_file():
        d = np.load(path)
        return d["x"], d["y"]
    roll, xs, ys, t0 = ArmRollouts(physics_dt=0.01, threads=1), [], [], time.time()
    with ArmSim(SimConfig(task="push")) as sim:
        for seed in range(400_000, 400_000 + args.states):
            sim.reset(seed, "push")
            if rng.random() < 0.7:  # drive the tip towards a point near the block first
                b, ang = sim.state().block_pose[:2], rng.uniform(0, 2 * np.pi)
                qt = sim.inverse_kinematics(
                    b + rng.uniform(0.03, 0.12) * np.array([np.cos(ang), np.sin(ang)]), rng=rng
                )
                if qt is not None:
                    for _ in range(int(rng.integers(3, 26))):
                        q = sim.state().qpos
                        sim.command(q + np.clip(qt - q, -alim, alim))
                        sim.advance(0.1)
            st = sim.state()
            plans = random_plans(
                rng, np.zeros((args.chunks, nj), np.float32), 0.5 * alim, args.per_state, alim
            )
            acts = np.repeat(plans, args.chunk, axis=1)
            tips = wrist_tip_path(chain, np.broadcast_to(st.qpos, (len(acts), nj)), acts, hor, lim)
            blocks, _ = roll.run(st.qpos, st.block_pose, acts, 0.1)
            xs.append(features(st.block_pose, tips))
            ys.append((blocks[:, -1, :2] - st.block_pose[:2]).astype(np.float32))
    x, y = np.concatenate(xs), np.concatenate(ys)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    moves = np.mean(np.linalg.norm(y, axis=1) > 0.01)
    print(f"{len(x)} samples in {time.time() - t0:.0f} s; the block moves in {moves:.1%}")
    return x, y


class BlockModel(nn.Module):
    def __init__(self, n: int, gate: bool):
        super().__init__()
        w, layers = args.width, [nn.Linear(n, args.width), nn.GELU()]
        for _ in range(args.depth - 1):
            layers += [nn.Linear(w, w), nn.GELU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(w, 2))
        self.gate = nn.Parameter(torch.tensor([0.06, 4.0])) if gate else None  # reach (m), log sharpness

    def forward(self, xn: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = self.mlp(xn)
        if self.gate is not None:
            near = (
                x[:, 2 : 2 + (hor + 1) * 6]
                .reshape(len(x), hor + 1, 2, 3)[..., :2]
                .norm(dim=-1)
                .flatten(1)
                .min(1)
                .values
            )
            out = out * torch.sigmoid(torch.exp(self.gate[1]) * (self.gate[0] - near))[:, None]
        return out


res: dict = {"args": vars(args)}
if args.model == "learned":
    x, y = samples()
    mu, sd, ysd = x.mean(0), x.std(0) + 1e-6, y.std(0) + 1e-6
    perm = rng.permutation(len(x))
    va, tr = perm[: len(x) // 10], perm[len(x) // 10 :]
    xr, xt, yt = torch.from_numpy(x), torch.from_numpy((x - mu) / sd), torch.from_numpy(y / ysd)
    models = []
    for m in range(args.ensemble):
        torch.manual_seed(m)
        net = BlockModel(x.shape[1], bool(args.gate))
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=args.steps)
        boot = tr[rng.integers(len(tr), size=len(tr))] if args.ensemble > 1 else tr  # bootstrap per member
        for _ in range(args.steps):
            i = torch.from_numpy(boot[rng.integers(len(boot), size=512)])
            loss = nn.functional.mse_loss(net(xt[i], xr[i]), yt[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        models.append(net.eval())

    @torch.no_grad()
    def predict(f: np.ndarray) -> np.ndarray:  # (n, F) -> (M, n, 2) block displacements
        a, b = torch.from_numpy((f - mu) / sd), torch.from_numpy(f)
        return np.stack([m(a, b).numpy() * ysd for m in models])

    err = np.linalg.norm(predict(x[va]).mean(0) - y[va], axis=1)
    moved = np.linalg.norm(y[va], axis=1) > 0.01
    res["heldout_error_cm"] = {
        "moved": round(100 * float(np.median(err[moved])), 2),
        "still": round(100 * float(np.median(err[~moved])), 2),
    }
    print("held-out error (median cm)", res["heldout_error_cm"], flush=True)
else:
    roll = ArmRollouts(physics_dt=0.01, threads=2)

ecfg = closed_loop_config(args)


def make(sim: ArmSim, seed: int) -> cl.Policy:
    r, goal = np.random.default_rng(seed), sim.goal.block_pose[:2].copy()
    state = {"mean": np.zeros((args.chunks, nj), np.float32)}

    def act(sim: ArmSim) -> np.ndarray:
        s = sim.state()
        if sigma > 0 or camera:  # the block as a perception sees it, each tick anew
            s = dataclasses.replace(s, block_pose=s.block_pose.copy())
            if camera:
                s.block_pose[:2] = apply_homography(camera[1], camera_slot(camera[0], sim.render(), s.qpos))
            else:
                s.block_pose[:2] += r.normal(0, sigma, 2)

        def cost(plans: np.ndarray) -> np.ndarray:
            acts = np.repeat(plans, args.chunk, axis=1)
            if args.model == "sim":
                blocks, _ = roll.run(s.qpos, s.block_pose, acts, ecfg.control_period)
                return np.linalg.norm(blocks[:, -1, :2] - goal, axis=1)
            tips = wrist_tip_path(chain, np.broadcast_to(s.qpos, (len(acts), nj)), acts, hor, lim)
            ends = s.block_pose[:2] + predict(features(s.block_pose, tips))  # (M, n, 2)
            c = np.linalg.norm(ends.mean(0) - goal, axis=1)
            if args.disagreement and len(ends) > 1:
                c = c + args.disagreement * np.linalg.norm(ends.std(0), axis=1)
            return c

        mean = chunked_cem(cost, state["mean"], alim, r, args.samples, args.iters, args.elites)
        state["mean"] = mean
        return mean[0]

    return cl._filtered(ecfg, act)


camera: tuple = ()
for noise in args.noise.split(","):
    if noise == "pixel":
        arm = load_arm_layer(Path(args.slot) / "renderer_64.pt", nj)
        camera, sigma = (arm, np.load(Path(args.slot) / "homography.npy")), 0.0
    else:
        camera, sigma = (), float(noise) / np.sqrt(2 * np.log(2))  # a 2-D Gaussian's median is 1.18 sigma
    run = closed_loop_summary(make, ecfg, "state plan")
    res[f"noise_{noise}"] = run
    print(f"block given with median error {noise} m:", json.dumps(run), flush=True)
if args.out:
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)
