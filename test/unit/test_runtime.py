"""Runtime pieces that need no exported model: provider choice, shape checks (numpy + onnxruntime)."""

from types import SimpleNamespace

import numpy as np
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


def test_a_node_opens_only_the_graphs_it_needs(tmp_path):
    """The shipped model, opened with one graph: the others are neither opened nor read."""
    from ami_ros.runtime import default_model_dir, load_model

    model = default_model_dir()
    if not (model / "manifest.yaml").is_file():
        pytest.skip(f"no shipped model at {model}")
    for f in model.iterdir():  # a copy whose rollout-cost graph is corrupt
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "rollout_cost.onnx").write_bytes(b"corrupt")
    runtime = load_model(tmp_path, graphs=("encoder.onnx",))
    assert list(runtime.sessions) == ["encoder.onnx"]
    latent, _ = runtime.encode(np.zeros((runtime.image_size,) * 2 + (3,), np.uint8), np.zeros(4))
    assert latent.shape == runtime.latent_shape
    with pytest.raises(RuntimeError, match=r"predictor.onnx was not opened"):
        runtime.step(np.zeros((1, runtime.history, *runtime.latent_shape)), np.zeros((1, 4)))
    with pytest.raises(ModelLoadError, match=r"sha256 mismatch for .*rollout_cost\.onnx"):
        load_model(tmp_path, graphs=("encoder.onnx", "rollout_cost.onnx"))
    with pytest.raises(ValueError, match="subset"):
        load_model(tmp_path, graphs=("decoder.onnx",))
    runtime.close()
    assert not runtime.sessions


def test_the_shipped_model_is_found_in_the_package_share():
    from ami_ros.paths import share_file
    from ami_ros.runtime import default_model_dir

    assert (default_model_dir() / "manifest.yaml").is_file()
    assert share_file("config", "robots", "tabletop_arm.yaml").is_file()


def test_bench_reports_every_available_execution_provider():
    from ami_ros.eval.bench_model import bench_providers
    from ami_ros.runtime import default_model_dir

    report = bench_providers(default_model_dir(), batch=8, repeats=2)
    assert set(report) == set(ort.get_available_providers()) - {"AzureExecutionProvider"}
    cpu = report["CPUExecutionProvider"]
    assert cpu["sessions_ran_on"] == dict.fromkeys(cpu["sessions_ran_on"], "CPUExecutionProvider")
    assert cpu["encoder_ms_per_frame"] > 0 and cpu["rollout_cost_ms_batch8_h5"] > 0
    assert cpu["load_and_warm_up_s"] > 0 and "rss_growth_mb" in cpu


def test_loading_checks_the_robots_control_period_and_joint_limits():
    from ami_ros.runtime import default_model_dir, load_model

    model = default_model_dir()
    lower, upper = [-1.9, -2.4, -2.4, -2.0], [1.9, 2.4, 2.4, 2.0]
    graphs = ("predictor.onnx",)
    load_model(model, expected_control_period=0.1, expected_limits=(lower, upper), graphs=graphs)
    load_model(model, expected_limits=([-1.0, -2.4, -2.0, -2.0], [0.0, 2.0, 2.4, 1.5]), graphs=graphs)
    with pytest.raises(ModelLoadError, match=r"control period mismatch: the robot's is 0\.05 s"):
        load_model(model, expected_control_period=0.05, graphs=graphs)
    with pytest.raises(ModelLoadError, match=r"joint limits of \['joint2'\] reach beyond"):
        load_model(model, expected_limits=(lower, [1.9, 3.0, 2.4, 2.0]), graphs=graphs)


def test_bench_times_the_plan_tick_with_and_without_the_proposal_and_the_approach():
    from ami_ros.config import ControllerConfig, from_params, load_ros_params
    from ami_ros.eval.bench_tick import bench_tick
    from ami_ros.runtime import default_model_dir, load_model

    config = from_params(ControllerConfig, load_ros_params("config/robots/tabletop_arm.yaml", "planner_node"))
    report = bench_tick(default_model_dir(), config, ticks=3)
    assert report["has_proposal"] == float(load_model(default_model_dir(), warm_up=False).has_policy)
    for variant in ("with_proposal", "without_proposal", "without_approach"):
        assert 0 < report[f"{variant}_tick_ms_p50"] <= report[f"{variant}_tick_ms_p99"]
    assert report["ratio_p50"] > 0 and report["approach_ratio_p50"] > 0


def test_worker_threads_do_not_busy_wait_unless_asked():
    """Busy-waiting sessions of one process take each other's cores (see `load_model`)."""
    from ami_ros.runtime import default_model_dir, load_model

    graphs = ("encoder.onnx",)
    for spin, expected in ((False, "0"), (True, "1")):
        runtime = load_model(default_model_dir(), graphs=graphs, warm_up=False, spin_wait=spin)
        options = runtime.sessions["encoder.onnx"].get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == expected
