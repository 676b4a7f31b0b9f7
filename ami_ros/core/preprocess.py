"""Camera frames to encoder input (numpy + OpenCV only): any supported encoding, any size.

The same two steps run when training data is read from a bag and when a node encodes a live
frame, so the model sees identical pixels in both.
"""

from __future__ import annotations

import cv2
import numpy as np

ENCODINGS = ("rgb8", "bgr8", "mono8")


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
