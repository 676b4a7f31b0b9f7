"""Camera frames to encoder input (numpy + OpenCV only): any supported encoding, any size.

The same two steps run when training data is read from a bag and when a node encodes a live
frame, so the model sees identical pixels in both.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

ENCODINGS = ("rgb8", "bgr8", "mono8")


class FrameEncoder(Protocol):
    """What `encode_frame` needs of a world model (`ami_ros.runtime.WorldModelRuntime` is one)."""

    image_size: int

    def encode(self, image: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image (S, S, 3) uint8 RGB, joints (J,) rad -> latent (L, D), joints_est (J,)."""
        ...


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, C) or (H, W) uint8 pixels in `encoding` -> (H, W, 3) uint8 RGB.

    Raises:
        ValueError: an encoding other than rgb8 / bgr8 / mono8, or pixels of the wrong shape.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; expected one of {list(ENCODINGS)}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    channels = 1 if encoding == "mono8" else 3
    if pixels.ndim == 2 and channels == 1:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] != channels or min(pixels.shape[:2]) < 1:
        raise ValueError(f"{encoding} pixels must be (H, W, {channels}), got {pixels.shape}")
    if encoding == "bgr8":
        return pixels[..., ::-1]
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    return pixels


def resize_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 with cv2.INTER_AREA (the encoder's preprocessing)."""
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb)
    return cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=cv2.INTER_AREA)


def encode_frame(model: FrameEncoder, rgb: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One camera frame and the joint positions measured with it -> the model's latent state.

    The one encoding step of the stack: encoder_node runs it on every camera frame, `ami-ros eval`
    on every rendered frame, and the controller on goal images (with zero joints: a goal image
    has no measured joints, so its joints are the pose network's estimate).

    Args:
        model: the world model's encoder.
        rgb: (H, W, 3) uint8 RGB frame of any size (resized here, cv2.INTER_AREA).
        joints: (J,) measured joint positions, rad, in model order.

    Returns:
        latent (L, D) float32 and joints_est (J,) rad, the joints the encoder reads from the pixels.
    """
    return model.encode(resize_frame(rgb, model.image_size), np.asarray(joints, np.float32))
