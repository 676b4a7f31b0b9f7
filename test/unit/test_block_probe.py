"""scripts/block_probe.py: the block's projected pixel lies on the block, and the probe learns."""

import importlib.util
from pathlib import Path

import numpy as np

_SPEC = importlib.util.spec_from_file_location(
    "block_probe", Path(__file__).resolve().parents[2] / "scripts" / "block_probe.py"
)
block_probe = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(block_probe)


def test_projected_block_pixel_is_red_and_the_crop_holds_it():
    images, blocks, joints, pixels = block_probe.frames("scene", range(3))
    assert images.shape == (3, 256, 256, 3) and blocks.shape == (3, 2) and joints.shape == (3, 4)
    for image, (u, v) in zip(images, pixels, strict=True):
        r, g, b = image[round(float(v)), round(float(u))].astype(int)
        assert r > 120 and r > g + 60 and r > b + 60, (u, v, r, g, b)  # the block is red
    top, left, side = block_probe.crop_box(pixels, margin=4.0)
    assert (top <= pixels[:, 1]).all() and (pixels[:, 1] <= top + side).all()
    assert (left <= pixels[:, 0]).all() and (pixels[:, 0] <= left + side).all()


def test_probe_reads_a_dot_position_far_better_than_the_mean_guess():
    rng = np.random.default_rng(0)
    xy = rng.uniform(4, 28, (600, 2)).astype(np.float32)
    images = np.zeros((600, 32, 32, 3), np.uint8)
    for image, (x, y) in zip(images, xy.astype(int), strict=True):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    err = block_probe.probe(images, xy, 500, epochs=8)
    guess = np.linalg.norm(xy[500:] - xy[:500].mean(0), axis=1)
    assert np.median(err) < 0.3 * np.median(guess)
