"""The fault-injection benchmark's pieces: AUROC, and one short episode of every fault."""

from __future__ import annotations

import numpy as np
import pytest

from ami_ros.eval.early_warning import FAULTS, SCORES, auroc, evaluate, run_episode


def test_auroc_is_the_probability_a_faulty_tick_scores_higher() -> None:
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auroc(np.array([0.0]), np.array([1.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5  # ties count half
    rng = np.random.default_rng(0)
    assert abs(auroc(rng.normal(size=2000), rng.normal(size=2000)) - 0.5) < 0.03


def test_every_fault_runs_and_the_report_covers_every_score() -> None:
    from ami_ros.config import SimConfig
    from ami_ros.runtime import default_model_dir, load_model
    from ami_ros.sim import ArmSim

    model = default_model_dir()
    if not (model / "manifest.yaml").is_file():
        pytest.skip("no shipped model")
    rt = load_model(model, graphs=("encoder.onnx", "predictor.onnx"))
    rng = np.random.default_rng(0)
    with ArmSim(SimConfig(task="reach")) as sim:
        normal = [run_episode(sim, rt, i, 8, None, rng)[0] for i in range(2)]
        faulted = {f: [run_episode(sim, rt, 100 + k, 8, f, rng)] for k, f in enumerate(FAULTS)}
    for fault, [(ticks, t_f)] in faulted.items():
        assert 2 <= t_f < 6 and any(t.faulty for t in ticks), fault
        assert not any(t.faulty for t in ticks[:t_f])
    report = evaluate(normal, faulted, float(rt.manifest["actions"]["control_period_s"]))
    assert set(report["faults"]) == set(FAULTS)
    for per in report["faults"].values():
        assert set(per) == set(SCORES)
    # a dropped command shows in the tracking error: the arm does not follow
    dropped = faulted["command_dropped"][0]
    late = [t.tracking_error for t in dropped[0][dropped[1] + 1 :]]
    assert max(late) > max(t.tracking_error for t in normal[0])
