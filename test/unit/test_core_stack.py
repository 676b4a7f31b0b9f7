"""The numpy core under the nodes: frame preprocessing, time buffers, goal memory, energy."""

import numpy as np
import pytest

from ami_ros.core.buffers import JointStateBuffer, LatentHistory
from ami_ros.core.energy import goal_energy
from ami_ros.core.goal_memory import Goal, GoalMemory
from ami_ros.core.preprocess import resize_frame, to_rgb

LIMITS = np.array([1.9, 2.4, 2.4, 2.0], np.float32)


# ------------------------------------------------------------------------------ preprocessing
def test_every_supported_encoding_becomes_the_same_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb(rgb, "rgb8"), rgb)
    assert np.array_equal(to_rgb(np.ascontiguousarray(rgb[..., ::-1]), "bgr8"), rgb)
    grey = rgb[..., 0]
    for mono in (grey, grey[..., None]):
        out = to_rgb(mono, "mono8")
        assert out.shape == (30, 40, 3) and np.array_equal(out[..., 2], grey)


@pytest.mark.parametrize(
    ("pixels", "encoding", "message"),
    [
        (np.zeros((4, 4, 4), np.uint8), "rgba8", "unsupported image encoding 'rgba8'"),
        (np.zeros((4, 4, 3), np.uint16), "rgb8", "uint8"),
        (np.zeros((4, 4, 1), np.uint8), "rgb8", "(H, W, 3)"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(pixels, encoding, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_rgb(pixels, encoding)


def test_any_frame_size_resizes_to_the_model_input():
    for shape in ((480, 640, 3), (64, 64, 3), (17, 90, 3)):
        assert resize_frame(np.zeros(shape, np.uint8), 64).shape == (64, 64, 3)


# ------------------------------------------------------------------------------ buffers
def test_joint_states_are_matched_by_name_and_paired_by_stamp():
    buf = JointStateBuffer(["a", "b", "c"])
    q = buf.add(1.0, ["c", "x", "a", "b"], [3.0, 9.0, 1.0, 2.0])
    assert q.tolist() == [1.0, 2.0, 3.0]
    buf.add(1.1, ["a", "b", "c"], [4.0, 5.0, 6.0])
    assert buf.nearest(1.04, max_skew=0.05).tolist() == [1.0, 2.0, 3.0]
    assert buf.nearest(1.08, max_skew=0.05).tolist() == [4.0, 5.0, 6.0]
    assert buf.nearest(1.3, max_skew=0.05) is None


@pytest.mark.parametrize(
    ("names", "positions", "message"),
    [
        (["a", "b"], [0.0, 0.0], r"lacks joint\(s\) \['c'\]"),
        (["a", "b", "c"], [0.0, 0.0], "3 names but 2 positions"),
        (["a", "b", "c"], [0.0, float("nan"), 0.0], r"non-finite position\(s\) for \['b'\]"),
    ],
)
def test_bad_joint_states_are_rejected_with_a_reason(names, positions, message):
    buf = JointStateBuffer(["a", "b", "c"])
    with pytest.raises(ValueError, match=message):
        buf.add(0.0, names, positions)
    assert buf.latest() is None


def test_latent_history_is_sampled_one_control_period_apart():
    hist = LatentHistory()
    for i in range(10):  # 30 Hz latents whose value is their index
        hist.add(i / 30, np.full((2, 2), i, np.float32))
    stamp, h = hist.history(3, period=0.1)
    assert stamp == pytest.approx(9 / 30)
    assert h[:, 0, 0].tolist() == [3.0, 6.0, 9.0]  # 0.2 s and 0.1 s before the newest, then it


def test_latent_history_pads_a_short_past_and_forgets_on_a_clock_jump():
    hist = LatentHistory()
    assert hist.history(2, 0.1) is None
    hist.add(5.0, np.ones((2, 2), np.float32))
    _, h = hist.history(2, 0.1)
    assert h.shape == (2, 2, 2) and np.all(h == 1)
    hist.add(1.0, np.zeros((2, 2), np.float32))  # time went backwards (a sim reset, a bag loop)
    assert len(hist) == 1 and hist.latest()[0] == 1.0


# ------------------------------------------------------------------------------ goal memory
def test_goals_persist_across_memory_instances(tmp_path):
    latent = np.random.default_rng(1).standard_normal((65, 16)).astype(np.float32)
    joints = np.array([0.1, -0.2, 0.3, -0.4], np.float32)
    GoalMemory(tmp_path / "goals").save(Goal("home", latent, joints))
    again = GoalMemory(tmp_path / "goals")  # a restarted planner
    assert again.names() == ["home"]
    goal = again.load("home", (65, 16), 4)
    assert np.array_equal(goal.latent, latent) and np.array_equal(goal.joints, joints)
    assert not list((tmp_path / "goals").glob("*.tmp"))


def test_goal_memory_errors_name_the_problem(tmp_path):
    memory = GoalMemory(tmp_path)
    memory.save(Goal("small", np.zeros((5, 16), np.float32), np.zeros(4, np.float32)))
    with pytest.raises(KeyError, match=r"no goal named 'nope'.*known: \['small'\]"):
        memory.load("nope", (65, 16), 4)
    with pytest.raises(ValueError, match="saved with another model"):
        memory.load("small", (65, 16), 4)
    for bad in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(ValueError, match="invalid goal name"):
            memory.save(Goal(bad, np.zeros((65, 16), np.float32), np.zeros(4, np.float32)))


# ------------------------------------------------------------------------------ energy
def test_energy_is_zero_at_the_goal_and_weights_its_terms():
    rng = np.random.default_rng(2)
    goal = rng.standard_normal((65, 16)).astype(np.float32)
    goal[-1, :4] = np.array([0.5, 0.2, -0.3, 0.1]) / LIMITS
    q_goal = goal[-1, :4] * LIMITS
    assert goal_energy(goal, goal, q_goal, LIMITS, (1.0, 1.0, 1.0)) == pytest.approx(0.0, abs=1e-12)
    moved = goal.copy()
    moved[:-1] += 0.5  # every image token shifted: fine MSE 0.25, and so is the pooled one
    assert goal_energy(moved, goal, q_goal, LIMITS, (1.0, 0.0, 0.0)) == pytest.approx(0.25, rel=1e-5)
    assert goal_energy(moved, goal, q_goal, LIMITS, (0.0, 1.0, 0.0)) == pytest.approx(0.25, rel=1e-5)
    assert goal_energy(moved, goal, q_goal, LIMITS, (0.0, 0.0, 1.0)) == pytest.approx(0.0, abs=1e-10)
    off = goal.copy()
    off[-1, 0] += 0.1  # joint 1 off by 0.1 limits: normalised joint MSE 0.01 / 4
    assert goal_energy(off, goal, q_goal, LIMITS, (0.0, 0.0, 1.0)) == pytest.approx(0.0025, rel=1e-4)


def test_energy_matches_the_exported_cost_formula():
    """The pooled term is the export graph's avg_pool2d over the token grid."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 65, 16)).astype(np.float32)
    diff = torch.from_numpy(a[:-1] - b[:-1]).T.reshape(1, 16, 8, 8)
    coarse = torch.nn.functional.avg_pool2d(diff, 4).pow(2).mean().item()
    assert goal_energy(a, b, b[-1, :4] * LIMITS, LIMITS, (0.0, 1.0, 0.0)) == pytest.approx(coarse, rel=1e-5)
