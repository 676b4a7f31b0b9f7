"""The training loop: a run killed mid-way resumes to exactly the uninterrupted run's weights (end to
end and frozen-encoder), two gloo DDP processes match one process, latents are cached by encoder
and data, and the block-forecast diagnostic reads the block from the right latents."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from ami_ros.config import ConfigError, TrainConfig, TrainRunConfig
from ami_ros.world_model import evaluate as ev
from ami_ros.world_model.latents import cached_latents, encode_episodes
from ami_ros.world_model.model import WorldModel
from ami_ros.world_model.synthetic import TINY_MODEL, toy_episodes
from ami_ros.world_model.train import autocast, resolve_precision, save_checkpoint, train

TINY = TINY_MODEL
CHILD = """
import json, sys
import numpy as np
from ami_ros.config import TrainRunConfig, from_dict
from ami_ros.world_model.train import train
cfg = from_dict(TrainRunConfig, json.load(open(sys.argv[1])))
arrays = np.load(sys.argv[2])
keys = ("frames", "joints", "actions", "block_xy")
episodes = [{k: arrays[f"{i}/{k}"] for k in keys} for i in range(int(sys.argv[3]))]
train(cfg, episodes, sys.argv[4])
"""


def run_config(tmp_path: Path, **train: object) -> TrainRunConfig:
    base = TrainConfig(
        device="cpu",
        steps=40,
        batch_size=4,
        warmup_steps=4,
        eval_every=0,
        checkpoint_every=0,
        num_threads=1,
        val_fraction=0.25,
        latent_cache=str(tmp_path / "cache"),
    )
    return TrainRunConfig(model=TINY, train=dataclasses.replace(base, **train))


def weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, weights_only=True)
    return {f"{part}.{k}": v for part in ("encoder", "predictor") for k, v in ckpt[part].items()}


@pytest.fixture(scope="module")
def episodes():
    return toy_episodes(8, 12, TINY, seed=3)


@pytest.fixture(scope="module")
def init_checkpoint(tmp_path_factory):
    """A checkpoint of an untrained model: the encoder frozen-encoder runs keep."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("init") / "checkpoint.pt"
    model = WorldModel(TINY)
    save_checkpoint(path, TrainRunConfig(model=TINY), model, model.encoder, step=0, command="ami-ros train x")
    return path


@pytest.mark.parametrize("mode", ["end_to_end", "frozen_encoder", "variance_beyond_joints", "bf16"])
def test_a_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, episodes, init_checkpoint, mode):
    torch.set_num_threads(1)
    extra = {
        "end_to_end": {},
        "frozen_encoder": {
            "freeze_encoder": True,
            "init_checkpoint": str(init_checkpoint),
            "latent_whitening": 0.01,
        },
        "variance_beyond_joints": {"variance_beyond_joints": True},  # the arm head's state resumes too
        "bf16": {"precision": "bf16"},  # autocast keeps a resumed run exact
    }[mode]
    cfg = run_config(tmp_path, steps=400, checkpoint_every=5, **extra)
    whole = train(cfg, episodes, tmp_path / "whole")

    # the same run in another process, SIGKILLed once it has written a checkpoint mid-way
    killed = tmp_path / "killed"
    (tmp_path / "cfg.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    np.savez(
        tmp_path / "episodes.npz", **{f"{i}/{k}": v for i, ep in enumerate(episodes) for k, v in ep.items()}
    )
    args = [tmp_path / "cfg.json", tmp_path / "episodes.npz", len(episodes), killed]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    interrupted_at = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < interrupted_at < cfg.train.steps

    resumed = train(cfg, episodes, killed, resume=True)
    final = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert final["step"] == cfg.train.steps
    for name, value in weights(tmp_path / "whole" / "checkpoint.pt").items():
        torch.testing.assert_close(weights(killed / "checkpoint.pt")[name], value, rtol=0, atol=0, msg=name)
    assert resumed["metrics"]["kstep_ratio"] == whole["metrics"]["kstep_ratio"]
    logged = [r["step"] for r in final["log"]]
    assert logged == sorted(set(logged)) and logged[-1] == cfg.train.steps - 1  # one log, no gap


def test_resume_refuses_another_configuration(tmp_path, episodes):
    cfg = run_config(tmp_path, steps=4)
    train(cfg, episodes, tmp_path / "run")
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=0.5))
    with pytest.raises(Exception, match="another configuration"):
        train(other, episodes, tmp_path / "run", resume=True)


def test_frozen_encoder_training_keeps_the_encoder_and_cuts_the_latent_error(
    tmp_path, episodes, init_checkpoint
):
    cfg = run_config(tmp_path, steps=150, lr=3e-3, freeze_encoder=True, init_checkpoint=str(init_checkpoint))
    result = train(cfg, episodes, tmp_path / "frozen")
    before, after = weights(init_checkpoint), weights(tmp_path / "frozen" / "checkpoint.pt")
    for name in (n for n in before if n.startswith("encoder.")):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)
    assert any(not torch.equal(after[n], before[n]) for n in before if n.startswith("predictor."))
    assert max(result["metrics"]["kstep_ratio"]) < 1.0  # better than copy-last on held-out windows
    ckpt = torch.load(tmp_path / "frozen" / "checkpoint.pt", weights_only=True)
    assert ckpt["command"].startswith("ami-ros train x")  # the encoder's history travels along


def test_bf16_autocasts_the_forward_pass_and_learns_like_fp32(tmp_path, episodes):
    cpu = torch.device("cpu")
    layer = torch.nn.Linear(4, 4)
    with autocast("bf16", cpu):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    assert resolve_precision("auto", cpu) in ("bf16", "fp32")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16")

    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = run_config(tmp_path, steps=150, lr=3e-3, precision=precision)
        result = train(cfg, episodes, tmp_path / precision)
        ckpt = torch.load(tmp_path / precision / "checkpoint.pt", weights_only=True)
        assert all(v.dtype == torch.float32 for v in ckpt["predictor"].values() if v.is_floating_point())
        runs[precision] = (result["metrics"]["kstep_ratio"], ckpt["log"][-1]["total"])
    assert not torch.equal(*(weights(tmp_path / p / "checkpoint.pt")["predictor.out.weight"] for p in runs))
    np.testing.assert_allclose(runs["bf16"][0], runs["fp32"][0], rtol=0.1)  # held-out k-step error
    assert runs["bf16"][1] == pytest.approx(runs["fp32"][1], rel=0.05)  # the last training loss


def test_an_end_to_end_run_starts_from_the_init_checkpoint(tmp_path, episodes, init_checkpoint):
    cfg = run_config(tmp_path, steps=1, lr=1e-12, warmup_steps=1, init_checkpoint=str(init_checkpoint))
    train(cfg, episodes, tmp_path / "fine_tune")
    after = weights(tmp_path / "fine_tune" / "checkpoint.pt")
    for name, value in weights(init_checkpoint).items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=1e-6, msg=name)


def _ddp_rank(rank: int, port: int, cfg: TrainRunConfig, episodes: list, out: Path) -> None:
    os.environ |= {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": "2",
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
    }
    train(cfg, episodes, out)


def test_two_gloo_processes_take_the_steps_of_one(tmp_path, episodes, init_checkpoint):
    cfg = run_config(tmp_path, steps=30, freeze_encoder=True, init_checkpoint=str(init_checkpoint))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(
        _ddp_rank, args=(port, cfg, episodes, tmp_path / "ddp"), nprocs=2, join=True, start_method="spawn"
    )
    train(cfg, episodes, tmp_path / "one")
    one, ddp = weights(tmp_path / "one" / "checkpoint.pt"), weights(tmp_path / "ddp" / "checkpoint.pt")
    moved = [n for n in one if not torch.equal(one[n], weights(init_checkpoint)[n])]
    assert moved, "training changed nothing"
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-4, atol=1e-5, msg=name)


def test_latents_are_cached_per_encoder_and_data(tmp_path, episodes):
    torch.manual_seed(0)
    model = WorldModel(TINY)
    first = cached_latents(model.encoder, episodes, tmp_path)
    assert len(list(tmp_path.glob("latents-*.npy"))) == 1
    again = cached_latents(model.encoder, episodes, tmp_path)
    for a, b, c in zip(first, again, encode_episodes(model.encoder, episodes), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, atol=1e-6)
    cached_latents(model.encoder, episodes[:-1], tmp_path)  # other data
    with torch.no_grad():
        model.encoder.to_latent.bias += 1.0  # another encoder
    changed = cached_latents(model.encoder, episodes, tmp_path)
    assert len(list(tmp_path.glob("latents-*.npy"))) == 3
    assert not np.allclose(changed[0][:, :-1], first[0][:, :-1])


def test_block_forecast_reads_the_block_k_steps_ahead(monkeypatch):
    """A copy-last predictor scores exactly copy-last; an oracle that returns the true future latents
    scores exactly the probe's floor: the windows, the actions and the k-step targets line up."""
    cfg = dataclasses.replace(TINY, horizon=2)
    eps = toy_episodes(12, 30, cfg, seed=5)
    lim = np.array(cfg.joint_limits)
    for ep in eps:  # the "block" is the square the first two joints move
        ep["block_xy"] = (0.2 * ep["joints"][:, :2] / lim[:2]).astype(np.float32)
    eps[9]["block_xy"][:] = eps[9]["block_xy"][0]  # a held-out episode whose block nothing moves
    torch.manual_seed(0)
    model = WorldModel(cfg).eval()
    lat = encode_episodes(model.encoder, eps)
    tr, va = lat[:8], lat[8:]
    still_arm = lambda q: np.zeros((len(q), *lat[0][:, :-1].shape[1:]))  # noqa: E731 - tokens the joints leave as they are
    copy = ev.block_forecast(model, tr, eps[:8], va, eps[8:], horizons=(3, 10), joint_map=still_arm)
    for f in copy["horizons"].values():
        assert f["windows"] > 0 and f["still_windows"] > 0
        assert f["predicted_cm"] == pytest.approx(f["copy_last_cm"]) == pytest.approx(f["arm_only_cm"])
        assert f["still_predicted_cm"] == pytest.approx(f["still_copy_last_cm"])

    def oracle(_model, hist, acts):
        """The true latents that follow each history window, checking the actions are recorded ones."""
        out = []
        for h, a in zip(hist, acts, strict=True):
            e, s = next(
                (e, s) for e, z in enumerate(va) for s in range(len(z) - 1) if np.array_equal(z[s : s + 2], h)
            )
            np.testing.assert_array_equal(a, eps[8 + e]["actions"][s + 1 : s + 1 + len(a)])
            out.append(va[e][s + 2 : s + 2 + len(a)])
        return np.stack(out)

    monkeypatch.setattr(ev, "_rollout", oracle)
    exact = ev.block_forecast(model, tr, eps[:8], va, eps[8:], horizons=(3, 10))
    for f in exact["horizons"].values():
        assert f["predicted_cm"] == pytest.approx(f["true_latent_cm"])


def test_joint_map_measures_how_much_of_the_latent_the_arm_explains():
    """Tokens made of the joints are explained almost wholly; tokens independent of them, not at all."""
    rng = np.random.default_rng(0)
    limits = (2.0, 2.0)
    eps = [{"joints": rng.uniform(-2, 2, (200, 2)).astype(np.float32)} for _ in range(6)]
    arm = [
        np.concatenate([np.sin(ep["joints"])[:, None, :].repeat(4, 1), np.zeros((200, 1, 2))], 1)
        for ep in eps
    ]
    noise = [rng.normal(size=(200, 5, 2)).astype(np.float32) for _ in eps]
    for latents, low, high in ((arm, 0.95, 1.0), (noise, -0.1, 0.05)):
        joint_map = ev.fit_joint_map(latents[:4], eps[:4], limits, steps=600)
        assert joint_map(eps[4]["joints"]).shape == (200, 4, 2)
        assert low <= ev.joint_explained_fraction(joint_map, latents[4:], eps[4:]) <= high
