"""The ami_ros node graph as real processes over loopback DDS: sim_node -> encoder_node ->
planner_node / predictor_node -> sim_node, with the shipped model.

One graph serves the module; tests run in file order and each leaves the graph running and
enabled. Stamps are wall time (sim_node `publish_clock` off), as on a robot without sim time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from ami_ros.ros.conversions import image_to_latent, numpy_to_image, to_seconds, to_time

pytestmark = pytest.mark.ros

ROBOT = "config/robots/tabletop_arm.yaml"
JOINTS = ["joint1", "joint2", "joint3", "joint4"]
LOWER, UPPER = np.array([-1.9, -2.4, -2.4, -2.0]), np.array([1.9, 2.4, 2.4, 2.0])
MAX_STEP = 0.3  # safety.max_step of the robot config
MAX_AGE = 0.3  # max_age of the robot config's planner_node
LATENT = (65, 16)
BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


@pytest.fixture(scope="module")
def sim_node_params():
    return {"publish_clock": False, "seed": 100_003}


class Stack:
    def __init__(self, ros, sim_node, start_node, tmp_path_factory) -> None:
        self.ros, self.start_node = ros, start_node
        self.goals = tmp_path_factory.mktemp("goals")
        self.encoder = start_node("ami_ros.ros.encoder_node", {}, "encoder", ("--params-file", ROBOT))
        self.predictor = start_node(
            "ami_ros.ros.predictor_node", {"diagnostics_period": 0.5}, "predictor", ("--params-file", ROBOT)
        )
        self.planner = self.start_planner()
        # 20 s at 30 Hz; a reader cache as deep, so latents are not dropped while the test is busy
        self.latents = ros.subscribe(Image, "ami/latent", QoSProfile(depth=600), keep=600)
        self.camera = ros.subscribe(Image, "camera/image_raw", BEST_EFFORT, keep=600)
        self.joints = ros.subscribe(JointState, "joint_states", keep=5)
        self.commands = ros.subscribe(JointTrajectory, "arm_controller/joint_trajectory", keep=500)
        # (wall time of receipt, command) and (stamp, positions): which states a command could follow
        self.timed_commands: list[tuple[float, JointTrajectory]] = []
        self.joint_history: list[tuple[float, np.ndarray]] = []
        on_command = lambda m: self.timed_commands.append((time.time(), m))  # noqa: E731
        ros.node.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", on_command, 100)
        ros.node.create_subscription(JointState, "joint_states", self._remember_joints, 1000)
        self.progress = ros.subscribe(DiagnosticStatus, "ami/progress", keep=50)
        self.diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics", keep=50)
        self.estop = ros.node.create_publisher(Bool, "ami/estop", 10)
        self.save_goal = ros.node.create_publisher(String, "ami/save_goal", 10)
        self.goal_name = ros.node.create_publisher(String, "ami/goal_name", 10)
        self.enable = ros.node.create_client(SetBool, "ami/enable")
        ros.spin_until(lambda: self.state() == "planning", 90.0, "the planner to plan towards the sim's goal")

    def start_planner(self, **params):
        params = {"goal_memory_dir": str(self.goals), "diagnostics_period": 0.5, **params}
        ros_args = ("--params-file", ROBOT, "-r", "ami/goal_image:=sim/goal_image")
        return self.start_node("ami_ros.ros.planner_node", params, "planner", ros_args)

    def reset_sim(self) -> None:
        """A new episode: a goal image the arm is not at, so the planner moves the arm again."""
        client = self.ros.node.create_client(Trigger, "sim/reset")
        assert self.ros.call(client, Trigger.Request()).success

    def send(self, publisher, msg) -> None:
        """Publish once the planner subscribes (a message sent before discovery is lost)."""
        self.ros.spin_until(publisher.get_subscription_count, 10.0, f"a subscriber on {publisher.topic_name}")
        publisher.publish(msg)

    def values(self) -> dict[str, str]:
        self.progress.clear()
        msg = self.ros.spin_until(lambda: self.progress and self.progress[-1], 10.0, "ami/progress")
        return {kv.key: kv.value for kv in msg.values}

    def state(self) -> str:
        return self.values()["state"]

    def _remember_joints(self, msg: JointState) -> None:
        by_name = dict(zip(msg.name, msg.position, strict=True))
        self.joint_history.append((to_seconds(msg.header.stamp), np.array([by_name[j] for j in JOINTS])))
        del self.joint_history[:-1000]  # 10 s at 100 Hz

    def positions(self) -> np.ndarray:
        self.joints.clear()
        msg = self.ros.spin_until(lambda: self.joints and self.joints[-1], 5.0, "joint_states")
        by_name = dict(zip(msg.name, msg.position, strict=True))
        return np.array([by_name[j] for j in JOINTS])

    def diagnostic(self, prefix: str) -> DiagnosticStatus:
        self.diagnostics.clear()

        def find():
            return next((s for m in self.diagnostics for s in m.status if s.name.startswith(prefix)), None)

        return self.ros.spin_until(find, 10.0, f"/diagnostics from {prefix}")


@pytest.fixture(scope="module")
def stack(ros, sim_node, start_node, tmp_path_factory) -> Stack:
    return Stack(ros, sim_node, start_node, tmp_path_factory)


def test_latents_carry_the_camera_stamp_and_the_joint_state(stack: Stack) -> None:
    stack.ros.spin_until(lambda: len(stack.latents) >= 10 and len(stack.camera) >= 10, 10.0, "latents")
    camera_stamps = {to_seconds(m.header.stamp) for m in stack.camera}
    latent_stamps = [to_seconds(m.header.stamp) for m in stack.latents]
    # the test's best-effort camera subscription may miss frames, so not every latent finds its own
    assert sum(t in camera_stamps for t in latent_stamps) >= 5, "latents do not carry frame stamps"
    latest = stack.latents[-1]
    assert latest.encoding == "32FC1" and (latest.height, latest.width) == LATENT
    latent = image_to_latent(latest, LATENT)
    assert np.all(np.isfinite(latent))
    q = latent[-1, :4] * UPPER  # the proprio token: joints / limits
    assert np.abs(q - stack.positions()).max() < 0.3  # the arm moves a little in between
    status = {kv.key: kv.value for kv in stack.diagnostic("encoder_node").values}
    assert status["execution_provider"] == "CPUExecutionProvider"
    # the robot config's max_rate: 10 latents a second of camera time from the sim's 30 Hz camera
    gaps = np.diff(latent_stamps)
    assert np.all(gaps[gaps > 0] >= 0.09 - 1e-6), gaps
    assert int(status["rate_skips"]) >= int(status["latents_published"]) > 0, status


def test_planner_commands_stay_within_the_safety_limits(stack: Stack) -> None:
    stack.reset_sim()
    stack.commands.clear()
    values = stack.ros.spin_until(
        lambda: (v := stack.values())["state"] == "planning" and v, 10.0, "planning towards the new goal"
    )
    assert np.isfinite(float(values["energy"])) and float(values["tick_ms_p50"]) > 0
    assert float(values["stamp_to_command_ms_p99"]) > 0
    stack.timed_commands.clear()
    moves = lambda: [(t, m) for t, m in stack.timed_commands if m.points]  # noqa: E731 - empty ones are holds
    stack.ros.spin_until(lambda: len(moves()) >= 5, 20.0, "5 planner commands")
    for received, msg in moves():
        assert msg.joint_names == JOINTS and len(msg.points) == 1
        target = np.array(msg.points[0].positions)
        assert np.all(target >= LOWER) and np.all(target <= UPPER)
        assert to_seconds(msg.points[0].time_from_start) == pytest.approx(0.1)
        # The planner steps from the joint state it last received, at most max_age old at its tick;
        # the tick came before this receipt. Some state of the second before must be within a step.
        window = [q for stamp, q in stack.joint_history if received - 1.0 <= stamp <= received]
        assert window, "no joint states in the second before a command"
        nearest = min(float(np.abs(target - q).max()) for q in window)
        assert nearest <= MAX_STEP + 1e-6, (nearest, target)


def test_estop_holds_at_once_and_enable_resumes(stack: Stack) -> None:
    stack.reset_sim()
    stack.ros.spin_until(lambda: stack.values()["state"] == "planning", 10.0, "planning")
    stack.commands.clear()
    stack.send(stack.estop, Bool(data=True))
    stack.ros.spin_until(lambda: any(not m.points for m in stack.commands), 5.0, "a hold (empty trajectory)")
    # a plan in flight when the e-stop came is void; the next tick reports the hold
    stack.ros.spin_until(lambda: stack.values()["state"] == "disabled", 5.0, "the disabled state")
    stack.commands.clear()
    stack.ros.spin_for(1.0)
    assert not [m for m in stack.commands if m.points], "commands were sent while e-stopped"
    response = stack.ros.call(stack.enable, SetBool.Request(data=True))
    assert response.success
    stack.ros.spin_until(lambda: any(m.points for m in stack.commands), 5.0, "commands after re-enabling")


def test_losing_the_latents_stops_the_robot(stack: Stack) -> None:
    """With the encoder gone, the planner holds once its newest latent is older than max_age, and
    no plan leaves it later than 2 x max_age after the last frame (`Controller.late`).

    A latent already queued at the planner may still be planned on after a stale hold (its timer
    tick can run before that latent's callback), so the check starts 2 x max_age after the last
    possible frame, with slack for this process's own delivery."""
    stack.reset_sim()
    stack.ros.spin_until(lambda: stack.values()["state"] == "planning", 10.0, "planning")
    assert stack.encoder.stop() == 0
    last_frame = time.time()  # the encoder has exited: no latent is newer than this
    stack.ros.spin_until(
        lambda: stack.values()["state"].startswith("latent stale"), 5.0, "a stale-latent hold"
    )
    stack.ros.spin_for(max(0.0, last_frame + 2 * MAX_AGE + 1.0 - time.time()))

    def held_after_the_last_plan() -> bool:  # this process may take ami/progress before the commands
        plans = [i for i, m in enumerate(stack.commands) if m.points]
        holds = [i for i, m in enumerate(stack.commands) if not m.points]
        return bool(holds) and (not plans or holds[-1] > plans[-1])

    stack.ros.spin_until(held_after_the_last_plan, 5.0, "the hold after the last plan")
    assert stack.values()["state"].startswith("latent stale")
    stack.commands.clear()
    stack.ros.spin_for(1.0)
    assert not [m for m in stack.commands if m.points], "a stale plan kept being executed"
    stack.encoder = stack.start_node("ami_ros.ros.encoder_node", {}, "encoder2", ("--params-file", ROBOT))
    stack.ros.spin_until(lambda: stack.values()["state"] == "planning", 60.0, "planning once latents return")


def test_goal_memory_survives_a_planner_restart(stack: Stack) -> None:
    stack.send(stack.save_goal, String(data="here"))
    stack.ros.spin_until(lambda: (stack.goals / "here.npz").is_file(), 5.0, "the goal file")
    assert stack.planner.stop() == 0
    stack.planner = stack.start_planner()
    # From the new process's own log: a progress message of the old one may still be in flight, and
    # a goal name sent before the latched goal image arrives would be overridden by it.
    has_goal_image = lambda: "goal: image@" in stack.planner.log(100_000)  # noqa: E731
    stack.ros.spin_until(has_goal_image, 60.0, "the new planner's goal image")
    stack.send(stack.goal_name, String(data="nowhere"))  # unknown: an error, the current goal stays
    stack.send(stack.goal_name, String(data="here"))
    stack.ros.spin_until(lambda: stack.values()["goal"] == "here", 5.0, "the remembered goal")
    assert "no goal named 'nowhere'" in stack.planner.log()
    stack.send(stack.goal_name, String(data=""))  # no goal: hold
    stack.ros.spin_until(lambda: stack.values()["state"] == "no goal", 5.0, "a no-goal hold")


def test_predictor_forecasts_the_commands_sent_and_reports_surprise(stack: Stack) -> None:
    forecasts = stack.ros.subscribe(Image, "ami/forecast", keep=50)
    surprise = stack.ros.subscribe(Float32, "ami/surprise", keep=50)
    stack.reset_sim()
    stack.ros.spin_until(lambda: len(forecasts) >= 5 and len(surprise) >= 5, 15.0, "forecasts and surprise")
    newest_source = to_seconds(forecasts[-1].header.stamp) - 0.1
    stack.ros.spin_until(
        lambda: to_seconds(stack.latents[-1].header.stamp) >= newest_source - 1e-6, 5.0, "the test's latents"
    )
    latent_stamps = [to_seconds(m.header.stamp) for m in stack.latents]
    assert to_seconds(forecasts[0].header.stamp) - 0.1 >= latent_stamps[0]  # all sources still kept
    for msg in forecasts:
        image_to_latent(msg, LATENT)  # the latent layout
    # A forecast is stamped one control period after the latent it was made from. The encoder's
    # publisher keeps its last 10 latents (a third of a second) for a reader, so a test that did not
    # spin for longer misses source latents the predictor got: most forecasts, not all, find theirs.
    offsets = [min(abs(to_seconds(m.header.stamp) - 0.1 - s) for s in latent_stamps) for m in forecasts]
    assert sum(o < 1e-6 for o in offsets) >= len(offsets) / 2, offsets
    assert all(np.isfinite(m.data) and m.data >= 0 for m in surprise)
    # The reset teleported arm and block, which the model did not see happen: a scene-surprise
    # warning may stand for one window of forecasts (1 s) after it. Past that, the sim behaves as
    # the model expects.
    status = stack.diagnostic("predictor_node")
    assert status.level == DiagnosticStatus.OK or "scene surprise" in status.message, status.message
    stack.ros.spin_for(1.5)
    status = stack.diagnostic("predictor_node")
    assert status.level == DiagnosticStatus.OK, status.message


def test_sustained_surprise_raises_a_diagnostics_warning(stack: Stack) -> None:
    strict = stack.start_node(
        "ami_ros.ros.predictor_node",
        {"surprise_threshold": 1e-9, "surprise_window": 3, "diagnostics_period": 0.3},
        "strict_predictor",
        ("--params-file", ROBOT, "-r", "__node:=strict_predictor"),
    )
    stack.diagnostics.clear()

    def warned():
        return any(
            s.name.startswith("strict_predictor") and s.level == DiagnosticStatus.WARN
            for m in stack.diagnostics
            for s in m.status
        )

    stack.ros.spin_until(warned, 20.0, "a surprise warning")
    assert strict.stop() == 0


@pytest.mark.parametrize(
    ("threshold", "message"),
    [("stillness_threshold", "camera image"), ("scene_threshold", "scene surprise")],
    ids=["frozen camera", "scene changed"],
)
def test_the_frozen_camera_and_scene_warnings_are_reported(stack: Stack, threshold: str, message: str):
    """The stillness and scene-surprise warnings' wiring: with a threshold any motion exceeds (and
    the others out of reach), the moving arm raises that warning's message."""
    name = f"{threshold.split('_')[0]}_predictor"
    params = {"surprise_threshold": 1e9, "stillness_threshold": 1e9, "scene_threshold": 1e9}
    node = stack.start_node(
        "ami_ros.ros.predictor_node",
        params | {threshold: 1e-9, "surprise_window": 2, "diagnostics_period": 0.3},
        name,
        ("--params-file", ROBOT, "-r", f"__node:={name}"),
    )
    stack.reset_sim()  # a new goal: the planner commands, so there are forecasts to score
    stack.diagnostics.clear()

    def warned():
        return any(
            s.name.startswith(name) and s.level == DiagnosticStatus.WARN and message in s.message
            for m in stack.diagnostics
            for s in m.status
        )

    stack.ros.spin_until(warned, 20.0, f"a warning with {message!r}")
    assert node.stop() == 0


def test_bad_frames_are_dropped_with_a_reason_and_other_encodings_work(stack: Stack, start_node) -> None:
    """A second encoder in its own namespace, fed by the test: bgr8 and mono8 of any size encode;
    rgba8 is refused in /diagnostics; a frame with no joint state near its stamp is not encoded."""
    enc = start_node(
        "ami_ros.ros.encoder_node", {"diagnostics_period": 0.3}, "encoder_ns", ("-r", "__ns:=/probe")
    )
    node = stack.ros.node
    images = node.create_publisher(Image, "/probe/camera/image_raw", 10)
    joints = node.create_publisher(JointState, "/probe/joint_states", 10)
    latents = stack.ros.subscribe(Image, "/probe/ami/latent", keep=20)
    stack.ros.spin_until(lambda: images.get_subscription_count() > 0, 30.0, "the probe encoder")
    rgb = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)

    def send(pixels: np.ndarray, encoding: str, t: float, with_joints: bool = True) -> None:
        t = time.time()  # stamps are now: the encoder refuses stamps far from its clock
        if with_joints:
            joints.publish(JointState(header=_header(t), name=JOINTS[::-1], position=[0.1, 0.2, 0.3, 0.4]))
            stack.ros.spin_for(0.05)
        images.publish(numpy_to_image(pixels, to_time(t), "cam", encoding))

    def encode(pixels: np.ndarray, encoding: str, t: float) -> np.ndarray:
        latents.clear()
        for _ in range(20):  # the first messages may precede discovery
            send(pixels, encoding, t)
            stack.ros.spin_for(0.2)
            if latents:
                return image_to_latent(latents[-1], LATENT)
        pytest.fail(f"no latent for a {encoding} frame")

    got = {
        "rgb8": encode(rgb, "rgb8", 1.0),
        "bgr8": encode(np.ascontiguousarray(rgb[..., ::-1]), "bgr8", 2.0),
        "mono8": encode(rgb[..., 1].copy(), "mono8", 3.0),
    }
    assert np.allclose(got["rgb8"], got["bgr8"], atol=1e-5)
    assert np.allclose(got["rgb8"][-1, :4] * UPPER, [0.4, 0.3, 0.2, 0.1], atol=1e-5)  # matched by name
    assert not np.allclose(got["rgb8"], got["mono8"])

    latents.clear()
    bad = Image(encoding="rgba8", height=4, width=4, step=16, data=bytes(64))
    bad.header = _header(time.time())
    joints.publish(JointState(header=bad.header, name=JOINTS, position=[0.0] * 4))
    stack.ros.spin_for(0.1)
    images.publish(bad)
    stack.ros.spin_for(0.5)  # depth 1: a newer frame would replace it before the encoder takes it
    send(rgb, "rgb8", 12.0, with_joints=False)  # no joint state within max_skew of its stamp
    stack.diagnostics.clear()

    def refused():
        for m in stack.diagnostics:
            for s in m.status:
                v = {kv.key: kv.value for kv in s.values}
                if s.name.startswith("encoder_node") and "rgba8" in v.get("last_error", ""):
                    return v
        return None

    values = stack.ros.spin_until(refused, 10.0, "the rgba8 refusal in /diagnostics")
    assert "unsupported image encoding 'rgba8'" in values["last_error"]
    assert not latents, "a refused or unpaired frame was encoded"
    enc.check_alive()


def _header(t: float):
    from std_msgs.msg import Header

    return Header(stamp=to_time(t), frame_id="cam")


def test_forward_command_interface(stack: Stack) -> None:
    """The same planner drives a forward_command_controller: Float64MultiArray in joint order."""
    assert stack.planner.stop() == 0
    forward = stack.ros.subscribe(Float64MultiArray, "forward_position_controller/commands", keep=50)
    stack.reset_sim()  # a goal image the arm is not at yet
    stack.planner = stack.start_planner(command_interface="forward")
    stack.ros.spin_until(lambda: len(forward) >= 5, 60.0, "5 forward commands")
    for msg in forward:
        target = np.array(msg.data)
        assert target.shape == (4,) and np.all(target >= LOWER) and np.all(target <= UPPER)
