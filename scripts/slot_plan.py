"""Does a plan through the learned slot push the block? An experiment, not in the package.

Closed loop on the embedded robot (`ami_ros.eval.closed_loop`'s episodes, seeds and safety filter):
each tick the camera frame is encoded (the frozen encoder of `--ckpt`), the slot of
`scripts/slot_forecast.py` (`--slot`, trained on that encoder's latents) is read from it and from
the goal image, and a CEM searches command sequences of `--chunks` chunks of `--chunk` equal
commands; each is scored by the slot dynamics' forecast at the end of every chunk: the summed
distance of the forecast slot's grid position to the goal image's. Camera, joint states and
commands only; nothing is told the task beyond the goal image. The first command is executed, the
plan kept as the next tick's warm start.

Usage: python scripts/slot_plan.py --ckpt runs/exp/vbj/checkpoint.pt --slot runs/exp/slot/result.pt
           [--episodes 20] [--seed 300000] [--samples 128] [--iters 3]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ami_ros.core.kinematics import Chain
from ami_ros.core.preprocess import resize_frame
from ami_ros.core.scene_slot import wrist_tip_path
from ami_ros.eval import closed_loop as cl
from ami_ros.world_model.train import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from slot_forecast import SlotForecast, add_search_arguments, chunked_cem, closed_loop_config

p = argparse.ArgumentParser()
p.add_argument("--ckpt", default="runs/exp/vbj/checkpoint.pt")
p.add_argument("--slot", default="runs/exp/slot/result.pt")
p.add_argument("--robot", default="config/robots/tabletop_arm.yaml")
p.add_argument("--urdf", default="sim/assets/tabletop_arm.urdf")
p.add_argument("--task", default="push")
add_search_arguments(p)
p.add_argument("--std", type=float, default=0.5)
p.add_argument("--w-feat", type=float, default=0.0, help="weight of the slot's features in the cost")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--out", default="")
args = p.parse_args()
torch.set_num_threads(args.threads)

model, cfg, _ = load_checkpoint(args.ckpt)
mc = cfg.model
enc = model.encoder.eval()
saved = torch.load(args.slot, weights_only=False)
sa = saved["args"]
hor, nj = sa["hor"], len(mc.joint_names)
lim = np.asarray(mc.joint_limits, np.float32)
net = SlotForecast(
    mc.grid,
    mc.latent_dim,
    nj,
    hor,
    lim,
    sa["features"],
    sa["hyp"],
    sa.get("encoder", "argmax"),
    bool(sa.get("contact_gate", 0)),
)
net.load_state_dict(saved["state"])
net.eval()
mu, sd = torch.from_numpy(saved["mu"]), torch.from_numpy(saved["sd"])
chain = Chain(args.urdf, "end_effector", mc.joint_names)
alim = np.asarray(mc.action_limits, np.float32)
assert args.chunks * args.chunk == hor, "chunks x chunk must be the slot dynamics' horizon"
ks = [args.chunk * (i + 1) for i in range(args.chunks)]
ecfg = closed_loop_config(args, args.robot, args.task)


@torch.no_grad()
def slot_of(frame: np.ndarray) -> torch.Tensor:
    tokens = enc.image_tokens(torch.from_numpy(resize_frame(frame, mc.image_size)[None]))
    return net.slot((tokens - mu) / sd)[0]


def make(sim, seed):
    rng = np.random.default_rng(seed)
    goal = slot_of(sim.render_goal())
    state = {"prev": None, "mean": np.zeros((args.chunks, nj), np.float32)}

    @torch.no_grad()
    def act(sim) -> np.ndarray:
        s1 = slot_of(sim.render())
        s0 = s1 if state["prev"] is None else state["prev"]
        state["prev"] = s1
        q = sim.state().qpos.astype(np.float32)
        n = args.samples

        def cost(plans: np.ndarray) -> np.ndarray:
            acts = np.repeat(plans, args.chunk, axis=1)  # (n, hor, J)
            tips = np.concatenate(
                [wrist_tip_path(chain, np.broadcast_to(q, (n, nj)), acts, k, lim) for k in ks]
            )
            m = len(ks) * n
            hyps, logits = net.step(
                s0.expand(m, -1), s1.expand(m, -1), torch.tensor(np.repeat(ks, n)), torch.from_numpy(tips),
                torch.from_numpy(np.broadcast_to(q, (m, nj)).copy()),
            )  # fmt: skip
            best = hyps[torch.arange(m), logits.argmax(1)].view(len(ks), n, -1)
            c = (best[..., :2] - goal[:2]).norm(dim=-1).sum(0)
            if args.w_feat:
                c = c + args.w_feat * (best[..., 2:] - goal[2:]).norm(dim=-1).sum(0)
            return c.numpy()

        mean = chunked_cem(cost, state["mean"], alim, rng, n, args.iters, args.elites, args.std)
        state["mean"] = mean
        return mean[0]

    return cl._filtered(ecfg, act)


t0 = time.time()
report = cl.evaluate_policy(make, ecfg, desc="slot plan")
report["wall_s"] = round(time.time() - t0, 1)
report["args"] = vars(args)
print(json.dumps({k: v for k, v in report.items() if k != "per_episode"}, indent=1))
if args.out:
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
