"""Render docs/scene.png for the README: the scene, the 128 px camera image and the goal image."""

from pathlib import Path

import numpy as np
from PIL import Image

from ami_ros.config import SimConfig
from ami_ros.sim import ArmSim

SIZE = 384
with ArmSim(SimConfig(image_width=SIZE, image_height=SIZE, task="push", shadows=True)) as hires:
    hires.reset(5)
    scene = hires.render(show_goal=True)
with ArmSim(SimConfig(task="push")) as sim:
    sim.reset(5)
    upscale = SIZE // sim.config.image_width
    obs = sim.render().repeat(upscale, 0).repeat(upscale, 1)
    goal = sim.render_goal().repeat(upscale, 0).repeat(upscale, 1)
gap = np.full((SIZE, 8, 3), 255, np.uint8)
out = Path(__file__).resolve().parents[1] / "docs" / "scene.png"
Image.fromarray(np.concatenate([scene, gap, obs, gap, goal], axis=1)).save(out, optimize=True)
print(f"wrote {out}")
