"""World-model units: shapes and latent layout, losses, windows, config strictness, checkpoints."""

import dataclasses

import numpy as np
import pytest
import torch

from ami_ros.config import ConfigError, TrainRunConfig, WorldModelConfig, from_dict, load_yaml
from ami_ros.world_model.data import WindowDataset, split_episodes
from ami_ros.world_model.evaluate import effective_rank, ridge_probe
from ami_ros.world_model.export import rollout_cost
from ami_ros.world_model.losses import ArmHead, change_whitening, jepa_losses, prediction_losses, vicreg
from ami_ros.world_model.model import WorldModel, latent_joints, proprio_embedding
from ami_ros.world_model.synthetic import TINY_MODEL, toy_episodes
from ami_ros.world_model.train import load_checkpoint, lr_factor, save_checkpoint

torch.set_num_threads(1)
TINY = TINY_MODEL


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return WorldModel(TINY).eval()


def test_latent_layout_and_joint_decoding(model):
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    joints = torch.tensor([[0.5, -1.0, 2.0, -1.5]]).repeat(3, 1)
    latent, q_est = model.encoder(images, joints)
    assert latent.shape == (3, TINY.n_tokens, TINY.latent_dim) == (3, 17, 8)
    assert q_est.shape == (3, 4)
    torch.testing.assert_close(latent_joints(latent, model.encoder.limits), joints)


def test_proprio_embedding_starts_with_normalised_joints():
    q, lim = torch.tensor([[1.0, -2.0]]), torch.tensor([2.0, 4.0])
    e = proprio_embedding(q, lim, 7)
    assert e.shape == (1, 7)
    torch.testing.assert_close(e[0, :2], torch.tensor([0.5, -0.5]))
    torch.testing.assert_close(e[0, 2:4], torch.sin(q[0]))


def test_untrained_predictor_copies_tokens_and_adds_clipped_action(model):
    hist = torch.randn(5, TINY.history, TINY.n_tokens, TINY.latent_dim)
    q = torch.tensor([[1.85, 0.0, 0.0, 0.0]]).repeat(5, 1)
    hist[:, :, -1] = proprio_embedding(q, model.predictor.limits, TINY.latent_dim)[:, None]
    action = torch.tensor([[0.15, 0.1, -0.2, 0.3]]).repeat(5, 1)
    nxt = model.predictor(hist, action)
    torch.testing.assert_close(nxt[:, :-1], hist[:, -1, :-1])  # zero-initialised residual
    expected = torch.tensor([1.9, 0.1, -0.2, 0.3])  # joint 1 clipped at its 1.9 rad limit
    torch.testing.assert_close(latent_joints(nxt, model.predictor.limits)[0], expected)


def training_pass(cfg: WorldModelConfig) -> tuple[WorldModel, torch.Tensor, dict, torch.Tensor, dict]:
    """A fresh model (seed 0) on 2 random windows: (model, frames, outputs, target latents, losses)."""
    torch.manual_seed(0)
    m = WorldModel(cfg)
    t = cfg.history + cfg.horizon
    frames = torch.randint(0, 256, (2, t, 32, 32, 3), dtype=torch.uint8)
    joints, actions = torch.randn(2, t, 4) * 0.5, torch.randn(2, t - 1, 4) * 0.1
    out = m(frames, joints, actions)
    with torch.no_grad():
        tgt, _ = m.encoder(frames[:, 1:].flatten(0, 1), joints[:, 1:].flatten(0, 1))
    tgt = tgt.view(2, cfg.horizon + 1, 17, 8)
    return m, frames, out, tgt, jepa_losses(out, tgt, joints, m.encoder.limits, cfg.history)


def test_training_pass_and_losses_are_finite_and_backpropagate():
    m, _, out, tgt, terms = training_pass(TINY)
    assert out["teacher"].shape == out["rollout"].shape == (2, TINY.horizon, 17, 8)
    assert set(terms) == {"teacher", "rollout", "joints", "variance", "covariance"}
    # the untrained predictor copies the last latent: the latent losses are copy-last's errors
    img = tgt[:, :, :-1]
    assert terms["teacher"].item() == pytest.approx((img[:, 1:] - img[:, :-1]).pow(2).mean().item(), rel=1e-4)
    assert terms["rollout"].item() == pytest.approx((img[:, 1:] - img[:, :1]).pow(2).mean().item(), rel=1e-4)
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert m.encoder.patch[0].weight.grad.abs().sum() > 0
    assert m.predictor.out.weight.grad.abs().sum() > 0


def test_pose_network_gives_the_joint_estimate_and_both_heads_are_trained():
    m, frames, out, _, terms = training_pass(dataclasses.replace(TINY, pose_channels=(8, 8)))
    with torch.no_grad():
        np.testing.assert_allclose(out["joints_est"][0], m.encoder.pose(frames[0]), atol=1e-6)
    assert not torch.allclose(out["joints_est"], out["joints_tokens"])
    terms["joints"].backward()
    assert m.encoder.pose_net.head[0].weight.grad.abs().sum() > 0
    assert m.encoder.joint_head[0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="pose_channels"):
        dataclasses.replace(TINY, pose_channels=(8,) * 6)  # 32 px cannot halve 6 times


def test_change_whitening_weighs_the_directions_the_latent_seldom_moves_in():
    """Token (0, 0) moves a lot every frame (the arm), token (1, 0) seldom (a block): the same error
    costs more on the second. Copy-last costs what it costs in plain MSE."""
    rng = np.random.default_rng(0)
    latents = []
    for _ in range(4):
        z = np.zeros((50, 3, 2), np.float32)  # 2 image tokens + the proprio token
        z[:, 0, 0] = np.cumsum(rng.normal(0, 1.0, 50))
        z[:, 1, 0] = np.cumsum(rng.normal(0, 0.05, 50))
        z[:, :2, 1] = rng.normal(0, 0.01, (50, 2))
        latents.append(z)
    w = change_whitening(latents, ridge=1e-4)
    assert w.shape == (4, 4)

    def cost(error: list[float]) -> float:
        pred = torch.tensor(error, dtype=torch.float32).view(1, 1, 2, 2)
        pred = torch.cat([pred, torch.zeros(1, 1, 1, 2)], dim=2)  # proprio token: not scored here
        out = {"teacher": pred, "rollout": pred}
        target = torch.zeros(1, 1, 3, 2)
        terms = prediction_losses(out, target, torch.zeros(1, 1, 1), torch.ones(1), whitening=w)
        return float(terms["teacher"])

    assert cost([0.0, 0.0, 0.1, 0.0]) > 100 * cost([0.1, 0.0, 0.0, 0.0])
    change = np.concatenate([np.diff(z[:, :-1], axis=0).reshape(49, -1) for z in latents])
    whitened = (torch.from_numpy(change) @ w).pow(2).mean()
    assert float(whitened) == pytest.approx(float((change**2).mean()), rel=1e-4)


def test_the_variance_hinge_beyond_the_joints_refuses_tokens_that_only_encode_the_arm():
    """Tokens that are a function of the joints satisfy the plain hinge, but not the one on what the
    arm head leaves unexplained once it has fitted them; no gradient of the head's fit reaches them."""
    torch.manual_seed(0)
    joints = torch.rand(4, 8, 4) * 2 - 1
    tokens = torch.sin(3 * joints.sum(-1, keepdim=True) + torch.arange(64 * 16).view(1, 1, -1))
    latents = torch.cat([tokens.view(4, 8, 64, 16), torch.zeros(4, 8, 1, 16)], dim=2).requires_grad_(True)
    out = {"latents": latents, "joints_tokens": joints, "joints_est": joints}
    out |= {"teacher": latents[:, 2:], "rollout": latents[:, 2:]}
    limits, head = torch.ones(4), ArmHead(4, 64, 16, lr=3e-3)
    first = jepa_losses(out, latents.detach()[:, 1:], joints, limits, 2, head)
    for _ in range(150):  # each call fits the head two steps
        beyond = jepa_losses(out, latents.detach()[:, 1:], joints, limits, 2, head)
    plain = jepa_losses(out, latents.detach()[:, 1:], joints, limits, 2)
    assert beyond["arm_head"] < 0.1 * first["arm_head"]
    assert plain["variance"] < 0.5 < beyond["variance"]
    assert latents.grad is None and not beyond["arm_head"].requires_grad


def test_vicreg_penalises_collapse():
    collapsed = torch.zeros(100, 8) + 0.01 * torch.randn(100, 8)
    spread = torch.randn(100, 8)
    assert vicreg(collapsed)[0] > 0.9 > vicreg(spread)[0]


def test_rollout_cost_prefers_the_action_towards_the_goal(model):
    lim = model.predictor.limits
    q0 = torch.zeros(1, 4)
    lat, _ = model.encoder(torch.zeros(1, 32, 32, 3, dtype=torch.uint8), q0)
    hist = lat[:, None].repeat(1, TINY.history, 1, 1)
    goal_q = torch.tensor([[0.3, 0.0, 0.0, 0.0]])
    actions = torch.zeros(2, TINY.horizon, 4)
    actions[0, :, 0] = 0.1  # towards the goal; sequence 1 stays
    cost = rollout_cost(model.predictor, TINY, hist, lat, goal_q, actions, torch.tensor([1.0, 1.0, 1.0]))
    assert cost.shape == (2,) and cost[0] < cost[1]
    assert lim.shape == (4,)


def test_windows_align_frames_joints_and_actions():
    eps = toy_episodes(2, 10, TINY, seed=1)
    ds = WindowDataset(eps, history=2, horizon=3)
    assert len(ds) == 2 * (10 - 5 + 1)
    item = ds[7]  # episode 1, start 1
    np.testing.assert_array_equal(item["frames"].numpy(), eps[1]["frames"][1:6])
    np.testing.assert_array_equal(item["actions"].numpy(), eps[1]["actions"][1:5])
    with pytest.raises(ValueError, match="no episode has 5 frames"):
        WindowDataset(toy_episodes(1, 4, TINY), 2, 3)


def test_split_is_by_episode():
    eps = toy_episodes(5, 6, TINY)
    tr, va = split_episodes(eps, 0.2, seed=0)
    assert len(tr) == 4 and len(va) == 1
    assert not any(v is t for v in va for t in tr)


def test_strict_config_rejects_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("model:\n  latent_dmi: 16\n")
    with pytest.raises(ConfigError, match=r"unknown key.*model\.latent_dmi"):
        load_yaml(path, TrainRunConfig)
    with pytest.raises(ConfigError, match="equal lengths"):
        from_dict(WorldModelConfig, {"joint_limits": [1.0, 1.0]})
    with pytest.raises(ConfigError, match="device"):
        from_dict(TrainRunConfig, {"train": {"device": "gpu0"}})
    with pytest.raises(ConfigError, match="latent_whitening"):  # whitens cached latents: frozen encoder only
        from_dict(TrainRunConfig, {"train": {"latent_whitening": 0.01}})


@pytest.mark.parametrize("name", ["train.yaml", "train_tiny.yaml"])
def test_shipped_train_configs_load(name):
    from pathlib import Path

    cfg = load_yaml(Path(__file__).resolve().parents[2] / "config" / name, TrainRunConfig)
    assert cfg.model.grid**2 + 1 == cfg.model.n_tokens


def test_checkpoint_round_trip_with_weights_only(tmp_path, model):
    cfg = TrainRunConfig(model=TINY)
    save_checkpoint(tmp_path / "c.pt", cfg, model, model.encoder, step=3, data={"episodes": 2})
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["step"] == 3
    loaded, cfg2, _ = load_checkpoint(tmp_path / "c.pt")
    assert cfg2 == cfg and dataclasses.asdict(cfg2.model) == dataclasses.asdict(TINY)
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 10, 100, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] > f[50] > f[99] >= 0.1


def test_probe_and_effective_rank_helpers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6))
    y = x @ rng.standard_normal((6, 2))
    assert np.abs(ridge_probe(x[:300], y[:300], x[300:]) - y[300:]).mean() < 0.05
    assert effective_rank(rng.standard_normal((500, 4))) == pytest.approx(4, abs=0.3)
    assert effective_rank(np.outer(rng.standard_normal(50), np.ones(4))) == pytest.approx(1, abs=0.01)


def test_training_with_online_stop_gradient_targets(tmp_path):
    from ami_ros.world_model.train import train

    cfg = TrainRunConfig(
        model=TINY,
        train=from_dict(
            TrainRunConfig,
            {
                "train": {
                    "steps": 2,
                    "batch_size": 2,
                    "ema_momentum": 0.0,
                    "ema_momentum_end": 0.0,
                    "device": "cpu",
                    "eval_every": 0,
                    "checkpoint_every": 0,
                    "num_threads": 1,
                }
            },
        ).train,
    )
    result = train(cfg, toy_episodes(3, 8, TINY), tmp_path)
    assert np.isfinite(result["metrics"]["kstep_ratio"]).all()
