"""onnxruntime sessions for the exported world model (numpy + onnxruntime only; no torch, no ROS)."""

from ami_ros.runtime.world_model import (
    ModelLoadError,
    WorldModelRuntime,
    choose_providers,
    default_model_dir,
    load_model,
)

__all__ = ["ModelLoadError", "WorldModelRuntime", "choose_providers", "default_model_dir", "load_model"]
