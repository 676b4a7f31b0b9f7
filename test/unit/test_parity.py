"""The GPU parity check (ami_ros.runtime.parity) on a machine without a GPU: every shipped graph is
checked, a provider this onnxruntime lacks or that falls back to CPU is `unavailable` (never a
pass), the CPU provider against itself passes, and a difference beyond the tolerance fails."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from ami_ros.runtime import default_model_dir, parity

MODEL = default_model_dir()
FILES = yaml.safe_load((MODEL / "manifest.yaml").read_text())["files"]
GRAPHS = sorted(name for name in FILES if name.endswith(".onnx"))


def test_every_listed_graph_against_cpu_and_missing_gpu_providers_are_unavailable():
    providers = ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]
    rows = parity.check_parity(MODEL, providers)
    assert [(r["graph"], r["provider"]) for r in rows] == [(g, p) for g in GRAPHS for p in providers]
    assert {"encoder.onnx", "predictor.onnx", "rollout_cost.onnx"} <= set(GRAPHS)
    for row in rows:
        if row["provider"] == "CPUExecutionProvider":
            assert row["status"] == "pass" and row["max_abs_diff"] == 0.0, row
        elif row["provider"] not in ort.get_available_providers():
            assert row["status"] == "unavailable" and row["max_abs_diff"] is None, row


@pytest.mark.filterwarnings("ignore:Specified provider")  # onnxruntime's note that CUDA is not built in
def test_a_session_that_falls_back_to_cpu_is_unavailable(monkeypatch):
    """onnxruntime-gpu without a usable GPU lists CUDA but runs the session on CPU, silently."""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine's onnxruntime offers CUDA")
    offered = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: offered)
    (row,) = parity.check_parity(MODEL, ["CUDAExecutionProvider"], batch=2)[:1]
    assert row["status"] == "unavailable"
    assert "fell back to CPUExecutionProvider" in row["detail"]


def test_a_difference_beyond_the_tolerance_fails_and_sets_the_exit_code(capsys):
    rows = parity.check_parity(MODEL, ["CPUExecutionProvider"], batch=2, tolerance=-1.0)
    assert {r["status"] for r in rows} == {"fail"}
    args = ["--model", str(MODEL), "--providers", "CPUExecutionProvider", "--batch", "2"]
    assert parity.main([*args, "--tolerance", "-1"]) == 1
    capsys.readouterr()
    assert parity.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in report["results"]] == ["pass"] * len(GRAPHS)


def test_max_abs_diff():
    a = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    assert parity.max_abs_diff(a, [x + 1e-5 for x in a]) == pytest.approx(1e-5, rel=1e-2)
    assert parity.max_abs_diff(a, [a[0], np.full(4, np.nan, np.float32)]) == float("inf")
    assert parity.max_abs_diff(a, [a[0][:1], a[1]]) == float("inf")


def test_inputs_take_the_declared_shapes_and_are_seeded():
    session = ort.InferenceSession(str(MODEL / "encoder.onnx"), providers=["CPUExecutionProvider"])
    feeds = parity.random_inputs(session, 3, np.random.default_rng(1))
    assert feeds["image"].shape == (3, 64, 64, 3) and feeds["image"].dtype == np.uint8
    assert feeds["joints"].shape == (3, 4) and feeds["joints"].dtype == np.float32
    again = parity.random_inputs(session, 3, np.random.default_rng(1))
    assert all(np.array_equal(feeds[k], again[k]) for k in feeds)
