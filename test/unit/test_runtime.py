"""Runtime pieces that need no exported model: provider choice, shape checks (numpy + onnxruntime)."""

from types import SimpleNamespace

import onnxruntime as ort
import pytest

from ami_ros.runtime import ModelLoadError, choose_providers
from ami_ros.runtime.world_model import _check_shapes


def test_provider_preference_is_filtered_by_availability_and_ends_on_cpu():
    chosen = choose_providers()
    assert chosen[-1] == "CPUExecutionProvider"
    assert set(chosen) <= set(ort.get_available_providers()) | {"CPUExecutionProvider"}
    assert choose_providers(["NoSuchExecutionProvider"]) == ["CPUExecutionProvider"]


def test_shape_check_names_the_mismatch():
    io = [SimpleNamespace(name="latent", shape=["s0", 65, 16])]
    _check_shapes("encoder.onnx", "output", {"latent": ["batch", 65, 16]}, io)
    with pytest.raises(
        ModelLoadError,
        match=r"encoder.onnx: output 'latent' has shape \['s0', 65, 16\], manifest says \['batch', 65, 8\]",
    ):
        _check_shapes("encoder.onnx", "output", {"latent": ["batch", 65, 8]}, io)
    with pytest.raises(ModelLoadError, match="names"):
        _check_shapes("encoder.onnx", "input", {"image": ["batch", 64, 64, 3]}, io)
