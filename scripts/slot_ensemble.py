"""Does a pessimistic ensemble keep the search from exploiting the slot forecast's errors? An
experiment, not in the package.

Trains `--members` scene slot forecasts (`world_model.scene_slot.train_forecast`, each from its own
seed) on the windows of the recordings, with the arm layer of an earlier `ami-ros train-slot
--work-dir` run, and saves them for `scripts/pixel_plan.py --ensemble`, whose cost is then the
members' mean distance to the goal's slot plus `--beta` times their spread.

Usage: python scripts/slot_ensemble.py [--data runs/retrain2/data] [--arm runs/slot/work/arm_layer.pt]
           [--members 4] [--out runs/exp/slot_ensemble]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from ami_ros.cli import read_training_episodes
from ami_ros.config import SlotTrainConfig
from ami_ros.core.kinematics import Chain
from ami_ros.world_model.data import split_episodes
from ami_ros.world_model.scene_slot import ArmLayer, _Windows, episode_slots, slot_diagnostic, train_forecast

p = argparse.ArgumentParser()
p.add_argument("--data", default="runs/retrain2/data")
p.add_argument("--arm", default="runs/slot/work/arm_layer.pt")
p.add_argument("--model", default="models/tabletop_arm", help="for the joint names and limits")
p.add_argument("--members", type=int, default=4)
p.add_argument("--out", default="runs/exp/slot_ensemble")
args = p.parse_args()
cfg = SlotTrainConfig()
torch.set_num_threads(cfg.num_threads)
manifest = yaml.safe_load((Path(args.model) / "manifest.yaml").read_text())
names, limits = manifest["joints"]["names"], np.asarray(manifest["joints"]["limits_rad"], np.float32)
arm = ArmLayer(len(names), cfg.image_size)
arm.load_state_dict(torch.load(args.arm, weights_only=True))
arm.eval()
chain = Chain(cfg.urdf, cfg.tip_link, names)
train_eps, val_eps = split_episodes(
    read_training_episodes(args.data, cfg.image_size), cfg.val_fraction, cfg.seed
)
train_w, val_w = (
    _Windows(eps, [episode_slots(arm, ep, cfg.window) for ep in eps], chain, limits, cfg.horizon)
    for eps in (train_eps, val_eps)
)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
for m in range(args.members):
    t0 = time.time()
    torch.manual_seed(100 + m)
    net = train_forecast(train_w, cfg, np.random.default_rng(100 + m))
    k20 = slot_diagnostic(net, train_w, val_w)["horizons"]["20"]
    print(m, f"{time.time() - t0:.0f} s", k20["moves"], k20["copy_last_over_forecast"], flush=True)
    torch.save(net.state_dict(), out / f"member{m}.pt")
