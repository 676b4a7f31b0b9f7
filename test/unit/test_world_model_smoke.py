"""End to end through the command line with config/train_tiny.yaml: `ami-ros collect` (rosbag2
MCAP from the embedded robot) -> `ami-ros train` (reads the bags, trains, evaluates) -> `ami-ros
export` -> load with the runtime (hash + shape checks) -> parity with torch -> rollout_cost; and
the runtime's refusals (tampered file, wrong joint names, missing file)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ami_ros import cli
from ami_ros.config import TrainRunConfig, load_yaml
from ami_ros.core.preprocess import resize_frame
from ami_ros.runtime import ModelLoadError, load_model
from ami_ros.world_model.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
JOINTS = ["joint1", "joint2", "joint3", "joint4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    tiny = ROOT / "config" / "train_tiny.yaml"
    cfg = load_yaml(tiny, TrainRunConfig)
    out = tmp_path_factory.mktemp("run")
    bags, run, model = out / "bags", out / "train", out / "model"
    size = str(cfg.model.image_size)
    assert (
        cli.main(["collect", "--episodes", "4", "--steps", "10", "--image-size", size, "--out", str(bags)])
        == 0
    )
    assert cli.main(["train", "--config", str(tiny), "--data", str(bags), "--out", str(run)]) == 0
    assert (
        cli.main(
            ["export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(model), "--data", str(bags)]
        )
        == 0
    )
    episodes = cli.read_training_episodes(str(bags), cfg.model.image_size)
    manifest = yaml.safe_load((model / "manifest.yaml").read_text())
    return {"cfg": cfg, "episodes": episodes, "out": out, "manifest": manifest}


def test_training_writes_checkpoint_metrics_and_curves(trained):
    run = trained["out"] / "train"
    for name in ("checkpoint.pt", "metrics.json", "curves.png", "train_log.json"):
        assert (run / name).is_file(), name
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == trained["cfg"].train.steps and ckpt["command"].startswith("ami-ros train --config")
    log = json.loads((run / "train_log.json").read_text())
    assert any("val_k1_ratio" in rec for rec in log)  # held-out evaluation during training
    m = json.loads((run / "metrics.json").read_text())
    assert len(m["kstep_ratio"]) == trained["cfg"].model.horizon
    assert all(np.isfinite(m["kstep_ratio"]))
    assert 1 <= m["action_rank_mean"] <= 100
    assert "block_xy_error_cm" in m["probes"]
    assert len(m["collapse"]["token_dim_std"]) == trained["cfg"].model.latent_dim


def test_manifest_records_what_the_robot_checks(trained):
    m = trained["manifest"]
    assert set(m["files"]) == {"encoder.onnx", "predictor.onnx", "rollout_cost.onnx"}
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    assert m["joints"]["names"] == JOINTS and m["history"] == 2 and m["horizon"] == 3
    assert m["latent"]["shape"] == [17, 8] and m["image"]["size"] == [32, 32]
    assert max(m["parity_max_abs"].values()) <= 1e-4
    assert m["metrics"]["kstep_ratio"] and m["training"]["data"]["episodes"] == 4
    assert not list((trained["out"] / "model").glob("*.data"))  # weights embedded
    assert m["latency_ms_cpu"]["encoder_ms_per_frame"] > 0 and m["latency_ms_cpu"]["threads"] == 2


def test_runtime_matches_torch_on_heldout_frames(trained):
    rt = load_model(trained["out"] / "model", expected_joint_names=JOINTS)
    assert set(rt.providers.values()) <= {
        "CPUExecutionProvider",
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
    }
    model, _, _ = load_checkpoint(trained["out"] / "train" / "checkpoint.pt")
    ep = trained["episodes"][-1]
    frames, joints = ep["frames"][2:6], ep["joints"][2:6]
    lat, q_est = rt.encode_batch(frames, joints)
    with torch.no_grad():
        lat_t, q_t = model.encoder(torch.from_numpy(frames), torch.from_numpy(joints))
        np.testing.assert_allclose(lat, lat_t.numpy(), atol=1e-4)
        np.testing.assert_allclose(q_est, q_t.numpy(), atol=1e-4)
        hist = lat[None, :2]
        acts = ep["actions"][3:6][None]
        pred, pred_q = rt.predict(hist, acts)
        pred_t = model.predictor.rollout(torch.from_numpy(hist), torch.from_numpy(acts)).numpy()
    np.testing.assert_allclose(pred, pred_t, atol=1e-4)
    np.testing.assert_allclose(pred_q, pred[..., -1, :4] * rt.joint_limits, atol=1e-5)

    rng = np.random.default_rng(0)
    n = 64
    actions = rng.uniform(-rt.action_limits, rt.action_limits, (n, rt.horizon, 4)).astype(np.float32)
    cost = rt.rollout_cost(lat[:2], lat[3], q_est[3], actions, weights=[1.0, 0.5, 1.0])
    assert cost.shape == (n,) and np.isfinite(cost).all()
    # the fused graph equals predict + the documented formula (a stage cost on the joints)
    path, path_q = rt.predict(lat[:2][None], actions)
    final = path[:, -1]
    d = final[:, :-1] - lat[3, :-1]
    g = 4
    pooled = d.reshape(n, g // 2, 2, g // 2, 2, -1).mean(axis=(2, 4))
    expected = (d**2).mean((1, 2)) + 0.5 * (pooled**2).mean((1, 2, 3))
    expected += (((path_q - q_est[3]) / rt.joint_limits) ** 2).mean((1, 2))
    np.testing.assert_allclose(cost, expected, rtol=1e-4, atol=1e-6)


def test_runtime_rejects_a_tampered_file(trained, tmp_path):
    bad = tmp_path / "model"
    shutil.copytree(trained["out"] / "model", bad)
    data = bytearray((bad / "predictor.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bad / "predictor.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"sha256 mismatch for .*predictor\.onnx"):
        load_model(bad, warm_up=False)


def test_runtime_rejects_wrong_joint_names_and_missing_files(trained, tmp_path):
    with pytest.raises(ModelLoadError, match=r"joint names mismatch.*\['shoulder'"):
        load_model(trained["out"] / "model", expected_joint_names=["shoulder", "elbow", "wrist", "tool"])
    with pytest.raises(ModelLoadError, match="joint names mismatch"):
        load_model(trained["out"] / "model", expected_joint_names=list(reversed(JOINTS)))
    bad = tmp_path / "model"
    shutil.copytree(trained["out"] / "model", bad)
    (bad / "encoder.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"missing file: .*encoder\.onnx"):
        load_model(bad)
    with pytest.raises(ModelLoadError, match=r"missing file: .*manifest\.yaml"):
        load_model(tmp_path / "nowhere")


def test_closed_loop_eval_prints_one_json_object_with_baselines(trained, capsys):
    capsys.readouterr()
    args = ["eval", "--model", str(trained["out"] / "model"), "--episodes", "2", "--steps", "3", "--json"]
    assert cli.main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for result in (report, *report["baselines"].values()):
        assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0
        assert 0 < result["tick_ms_p50"] <= result["tick_ms_p99"]
        assert result["mean_start_distance_m"] > 0
    assert set(report["baselines"]) == {"random", "privileged_true_joint_state"}


def test_eval_ablations_run_the_controller_with_one_lever_off_on_the_same_seeds(trained, capsys):
    capsys.readouterr()
    args = [
        "eval",
        "--model",
        str(trained["out"] / "model"),
        "--task",
        "push",
        "--episodes",
        "2",
        "--steps",
        "3",
    ]
    assert cli.main([*args, "--ablations", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["ablations"]) == {
        'approach off (approach.urdf: "")',
        "scene term off (image-token cost weights 0)",
    }
    for result in report["ablations"].values():
        assert result["episodes"] == 2 and 0.0 <= result["false_reached_rate"] <= 1.0
        assert result["mean_start_distance_m"] == report["mean_start_distance_m"]  # the same seeds
    assert cli.main([*args, "--episodes", "1", "--ablations"]) == 0  # the table has a row for each
    table = capsys.readouterr().out
    assert 'approach off (approach.urdf: "")' in table and "scene term off" in table


def test_ddp_training_under_torchrun_writes_from_rank_zero_only(trained, tmp_path):
    """Two CPU processes (gloo) over loopback, as `torchrun --nproc_per_node=N` runs on GPUs."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tiny = str(ROOT / "config" / "train_tiny.yaml")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", "-m", "ami_ros.cli", "train", "--config", tiny,
           "--data", str(trained["out"] / "bags"), "--out", str(tmp_path / "ddp")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": "lo"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.count("checkpoint: ") == 1  # only rank 0 reports and writes
    ckpt = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == trained["cfg"].train.steps


def test_train_pose_fits_a_pose_network_and_exports_it(trained, tmp_path):
    """`ami-ros train-pose` adds the pixel pose network to a trained model, leaving the latent and
    predictor as they were; its export reads the joints from pixels, in parity with torch."""
    run, bags = trained["out"] / "train", trained["out"] / "bags"
    args = ["train-pose", "--checkpoint", str(run / "checkpoint.pt"), "--data", str(bags)]
    assert cli.main([*args, "--out", str(tmp_path / "pose"), "--epochs", "2"]) == 0
    ckpt = torch.load(tmp_path / "pose" / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["model"]["pose_channels"] == [32, 64, 96, 128]
    assert "train-pose" in ckpt["command"] and len(ckpt["pose_training"]["history"]) == 2
    before, _, _ = load_checkpoint(run / "checkpoint.pt")
    after, _, _ = load_checkpoint(tmp_path / "pose" / "checkpoint.pt")
    for name, value in before.predictor.state_dict().items():
        assert torch.equal(value, after.predictor.state_dict()[name]), name
    assert torch.equal(before.encoder.patch[0].weight, after.encoder.patch[0].weight)

    export = ["export", "--checkpoint", str(tmp_path / "pose" / "checkpoint.pt"), "--data", str(bags)]
    assert cli.main([*export, "--out", str(tmp_path / "model")]) == 0
    rt = load_model(tmp_path / "model", expected_joint_names=JOINTS)
    ep = trained["episodes"][0]
    lat, q_est = rt.encode_batch(ep["frames"][:4], ep["joints"][:4])
    with torch.no_grad():
        q_t = after.encoder.pose(torch.from_numpy(ep["frames"][:4])).numpy()
        lat_before, _ = before.encoder(torch.from_numpy(ep["frames"][:4]), torch.from_numpy(ep["joints"][:4]))
    np.testing.assert_allclose(q_est, q_t, atol=1e-4)
    np.testing.assert_allclose(lat, lat_before.numpy(), atol=1e-4)  # the latent is untouched
    manifest = yaml.safe_load((tmp_path / "model" / "manifest.yaml").read_text())
    assert manifest["model_config"]["pose_channels"] == [32, 64, 96, 128]
    assert "pose_training" in manifest["metrics"]


def test_train_policy_adds_a_proposal_that_the_runtime_opens(trained, tmp_path):
    out = tmp_path / "model"
    bags, model = trained["out"] / "bags", trained["out"] / "model"
    args = ["train-policy", "--model", str(model), "--data", str(bags), "--out", str(out), "--steps", "20"]
    assert cli.main(args) == 0
    m = yaml.safe_load((out / "manifest.yaml").read_text())
    assert set(m["files"]) == {"encoder.onnx", "predictor.onnx", "rollout_cost.onnx", "policy.onnx"}
    assert m["policy"]["data"]["episodes"] == 4 and m["policy"]["metrics"]["parity_max_abs"] <= 1e-4
    assert m["policy"]["command"].startswith("ami-ros train-policy")
    rt = load_model(out, expected_joint_names=JOINTS)
    assert rt.has_policy and not load_model(model).has_policy
    ep = trained["episodes"][0]
    z, q = rt.encode(ep["frames"][0], ep["joints"][0])
    g, gq = rt.encode(ep["frames"][-1], np.zeros(4, np.float32))
    actions = rt.propose(z, q, g, gq)
    assert actions.shape == (rt.horizon, 4) and np.all(np.abs(actions) <= rt.action_limits + 1e-6)
    assert not load_model(out, graphs=("encoder.onnx",)).has_policy  # only what a node asks for
    (out / "policy.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        load_model(out)


def test_train_slot_adds_the_scene_slot_graphs_that_the_runtime_opens(trained, tmp_path):
    out, config = tmp_path / "model", tmp_path / "slot.yaml"
    config.write_text(
        "slot:\n  image_size: 32\n  horizon: 3\n  width: 32\n  batch_size: 16\n  val_fraction: 0.25\n"
    )
    bags, model = trained["out"] / "bags", trained["out"] / "model"
    args = [
        "train-slot",
        "--model",
        str(model),
        "--data",
        str(bags),
        "--out",
        str(out),
        "--config",
        str(config),
    ]
    assert (
        cli.main([*args, "--steps", "20", "--renderer-steps", "20", "--work-dir", str(tmp_path / "work")])
        == 0
    )
    m = yaml.safe_load((out / "manifest.yaml").read_text())
    assert {"arm_layer.onnx", "slot_forecast.onnx"} <= set(m["files"]) and "scene_slot" not in trained[
        "manifest"
    ]
    slot = m["scene_slot"]
    assert slot["command"].startswith("ami-ros train-slot") and slot["config"]["horizon"] == 3
    assert max(slot["parity_max_abs"].values()) <= 1e-3 and slot["data"]["episodes"] == 4
    assert set(slot["metrics"]["slot_forecast"]["horizons"]) == {"3"}  # as far as it looks
    assert (tmp_path / "work" / "arm_layer.pt").is_file()
    rt = load_model(out, expected_joint_names=JOINTS)
    assert {"arm_layer.onnx", "slot_forecast.onnx"} <= set(rt.sessions)
    ep = trained["episodes"][0]
    image = resize_frame(np.asarray(ep["frames"][0]), 32)[None]
    residual = rt.sessions["arm_layer.onnx"].run(None, {"image": image, "joints": ep["joints"][:1]})[0]
    assert residual.shape == (1, 32, 32) and np.all(residual >= 0)
    again = tmp_path / "again"  # the work dir's arm layer is reused, not retrained (a killed run resumes)
    assert cli.main([*args[:-4], "--out", str(again), "--config", str(config), "--steps", "5",
                     "--work-dir", str(tmp_path / "work")]) == 0  # fmt: skip
    feed = {"image": image, "joints": ep["joints"][:1]}
    resumed = load_model(again, expected_joint_names=JOINTS).sessions["arm_layer.onnx"].run(None, feed)[0]
    np.testing.assert_array_equal(resumed, residual)
    (out / "slot_forecast.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        load_model(out)


def test_predictor_only_retrain_from_the_command_line_exports(trained, tmp_path, capsys):
    """`ami-ros train --freeze-encoder --init-checkpoint`: the checkpoint's encoder, a retrained
    predictor, a longer training rollout; resumable (`--resume` on a finished run re-evaluates only)
    and exportable like any checkpoint."""
    run, bags, tiny = trained["out"] / "train", trained["out"] / "bags", ROOT / "config" / "train_tiny.yaml"
    args = ["train", "--config", str(tiny), "--data", str(bags), "--out", str(tmp_path / "pred")]
    args += ["--init-checkpoint", str(run / "checkpoint.pt"), "--freeze-encoder"]
    assert cli.main(args) == 0
    assert cli.main([*args, "--resume"]) == 0
    before, _, _ = load_checkpoint(run / "checkpoint.pt")
    after, cfg, ckpt = load_checkpoint(tmp_path / "pred" / "checkpoint.pt")
    assert cfg.train.freeze_encoder and ckpt["step"] == cfg.train.steps
    for name, value in before.encoder.state_dict().items():
        assert torch.equal(value, after.encoder.state_dict()[name]), name
    assert not torch.equal(before.predictor.out.weight, after.predictor.out.weight)
    assert ckpt["command"].startswith("ami-ros train --config") and "--freeze-encoder" in ckpt["command"]
    model = tmp_path / "model"
    export = ["export", "--checkpoint", str(tmp_path / "pred" / "checkpoint.pt"), "--out", str(model)]
    assert cli.main(export) == 0
    assert load_model(model, expected_joint_names=JOINTS).horizon == trained["cfg"].model.horizon
