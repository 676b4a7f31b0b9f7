"""Does the pixel slot's forecast carry an approach-free push? An experiment, not in the package.

The closed loop of `scripts/state_plan.py` (CEM over `--chunks` chunks of `--chunk` equal commands,
the first command executed each tick; push, approach-free) with camera, joint states and commands
only: each tick the pixel slot of `scripts/pixel_slot.py` (its arm layer, from `--slot`) is read
from the camera frame, the goal's slot from the goal image (with the goal's arm pose for the arm
layer), and the cost of a plan is the pixel distance between the goal's slot and the slot that
pixel_slot's forecast (trained on the recordings, k = chunks x chunk) gives at the plan's end.
Simulator ground truth only scores the episodes.

`--model DIR` plans through a model directory's exported scene slot instead (`ami-ros
train-slot`: arm_layer.onnx and slot_forecast.onnx in onnxruntime, the slot by
`core.scene_slot.peak_centroid`), the graphs the package ships, with the goal's arm pose read
from the goal image by the model's pose network rather than given; `--stage-ks 5,10,15,20` then
makes the cost the mean distance of the slot forecast after each of those many commands;
`--ensemble DIR` forecasts with the members `scripts/slot_ensemble.py` trained instead of
slot_forecast.onnx, the cost their mean distance plus `--beta` times its spread over members.

Usage: python scripts/pixel_plan.py [--slot runs/exp/pixel_slot] [--renderer PATH] [--model DIR]
           [--episodes 20] [--seed 300000] [--out runs/exp/pixel_plan/result.json]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ami_ros.config import TrainRunConfig, load_yaml
from ami_ros.core.kinematics import Chain
from ami_ros.core.preprocess import encode_frame, resize_frame
from ami_ros.core.scene_slot import held_path, peak_centroid, wrist_tip_path
from ami_ros.eval import closed_loop as cl
from ami_ros.runtime import load_model
from ami_ros.sim import ArmSim
from ami_ros.world_model.scene_slot import ARM_GRAPH, FORECAST_GRAPH, SlotForecast

sys.path.insert(0, str(Path(__file__).parent))
from pixel_slot import SlotDynamics, camera_slot, load_arm_layer
from slot_forecast import (
    add_search_arguments,
    chunked_cem,
    closed_loop_config,
    closed_loop_summary,
)

p = argparse.ArgumentParser()
p.add_argument("--slot", default="runs/exp/pixel_slot", help="the arm layer and the forecast")
p.add_argument("--renderer", default="", help="the arm layer (default: SLOT/renderer_64.pt)")
p.add_argument("--model", default="", help="plan through this model directory's scene slot graphs")
p.add_argument("--stage-ks", default="", help="with --model: the cost's mean over these forecast steps")
p.add_argument("--ensemble", default="", help="with --model: forecast with these members (slot_ensemble.py)")
p.add_argument("--beta", type=float, default=1.0, help="with --ensemble: weight of the members' spread")
add_search_arguments(p)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--out", default="")
args = p.parse_args()
torch.set_num_threads(args.threads)

mc = load_yaml("config/train.yaml", TrainRunConfig).model
lim, alim = np.asarray(mc.joint_limits, np.float32), np.asarray(mc.action_limits, np.float32)
nj, hor = len(mc.joint_names), args.chunks * args.chunk
chain = Chain("sim/assets/tabletop_arm.urdf", "end_effector", mc.joint_names)
SLOT_GRAPHS = (ARM_GRAPH, FORECAST_GRAPH)
ecfg = closed_loop_config(args)
if args.model:
    runtime = load_model(args.model, mc.joint_names, graphs=("encoder.onnx", *SLOT_GRAPHS))
    size = runtime.manifest["scene_slot"]["config"]["image_size"]
    window = runtime.manifest["scene_slot"]["config"]["window"]

    def read_slot(rgb: np.ndarray, q: np.ndarray) -> np.ndarray:
        feed = {"image": resize_frame(rgb, size)[None], "joints": np.asarray(q, np.float32)[None]}
        return peak_centroid(runtime.sessions[SLOT_GRAPHS[0]].run(None, feed)[0], window)[0]

    def goal_slot(sim: ArmSim) -> np.ndarray:
        rgb = sim.render_goal()
        return read_slot(rgb, encode_frame(runtime, rgb, np.zeros(nj, np.float32))[1])

    ks = [int(k) for k in args.stage_ks.split(",") if k] or [hor]

    def forecast(slot: np.ndarray, last: np.ndarray, paths: np.ndarray) -> np.ndarray:
        """(len(ks), n, 2) the slot after each of `ks` commands of the paths (n, hor+1, 2, 3)."""
        n = len(paths)
        feed = {
            "slot": np.broadcast_to(slot, (n * len(ks), 2)).astype(np.float32),
            "last": np.broadcast_to(last, (n * len(ks), 2)).astype(np.float32),
            "path": np.concatenate([held_path(paths, k) for k in ks]).astype(np.float32),
            "k": np.repeat(np.asarray(ks, np.int64), n),
        }
        if not members:
            return runtime.sessions[SLOT_GRAPHS[1]].run(None, feed)[0].reshape(len(ks), n, 2)
        with torch.no_grad():
            got = [m(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feed.values())) for m in members]
        return torch.stack(got).numpy().reshape(len(members), len(ks), n, 2)

    members = []
    for path in sorted(Path(args.ensemble).glob("member*.pt")) if args.ensemble else []:
        cfg = runtime.manifest["scene_slot"]["config"]
        members.append(SlotForecast(cfg["horizon"], cfg["width"]))
        members[-1].load_state_dict(torch.load(path, weights_only=True))
        members[-1].eval()
else:
    arm = load_arm_layer(args.renderer or Path(args.slot) / "renderer_64.pt", nj)
    ck = torch.load(Path(args.slot) / f"dyn_k{hor}.pt", weights_only=False)
    net = SlotDynamics(hor, ck.get("width", 256), ck.get("gate", False))
    net.load_state_dict(ck["state"])
    net.eval()

    def read_slot(rgb: np.ndarray, q: np.ndarray) -> np.ndarray:
        return camera_slot(arm, rgb, q)

    def goal_slot(sim: ArmSim) -> np.ndarray:
        return read_slot(sim.render_goal(), sim.goal.arm_qpos)

    @torch.no_grad()
    def forecast(slot: np.ndarray, last: np.ndarray, paths: np.ndarray) -> np.ndarray:
        """(1, n, 2) the slot at the plans' end from the slot, its last step, the paths (n, hor+1, 2, 3)."""
        x = np.broadcast_to(np.concatenate([slot, last]), (len(paths), 4))
        xt = torch.from_numpy(((x - ck["mu"]) / ck["sd"]).astype(np.float32))
        pt = torch.from_numpy(((paths - ck["pmu"]) / ck["psd"]).astype(np.float32))
        return (slot + net(xt, pt).numpy() * ck["ys"])[None]


def make(sim: ArmSim, seed: int) -> cl.Policy:
    r = np.random.default_rng(seed)
    goal = goal_slot(sim)
    state = {"mean": np.zeros((args.chunks, nj), np.float32), "slot": None}

    def act(sim: ArmSim) -> np.ndarray:
        q = sim.state().qpos
        slot = read_slot(sim.render(), q)
        last = slot - state["slot"] if state["slot"] is not None else np.zeros(2, np.float32)
        state["slot"] = slot

        def cost(plans: np.ndarray) -> np.ndarray:
            acts = np.repeat(plans, args.chunk, axis=1)
            paths = wrist_tip_path(chain, np.broadcast_to(q, (len(acts), nj)), acts, hor, lim)
            dist = np.linalg.norm(forecast(slot, last, paths) - goal, axis=-1)  # ([M,] ks, n)
            if dist.ndim == 2:
                return dist.mean(0)
            return dist.mean((0, 1)) + args.beta * dist.std(0).mean(0)

        mean = chunked_cem(cost, state["mean"], alim, r, args.samples, args.iters, args.elites)
        state["mean"] = mean
        return mean[0]

    return cl._filtered(ecfg, act)


run = closed_loop_summary(make, ecfg, "pixel plan")
print(json.dumps(run), flush=True)
if args.out:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "result": run}, indent=1))
