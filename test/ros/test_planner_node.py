"""planner_node is a message adapter: in-process, fed latents, joint states and a goal image over
DDS, it publishes exactly the command a Controller computes from the same inputs (the controller
`ami-ros eval` runs), and holds when e-stopped as the Controller decides."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from ami_ros.config import SimConfig, load_ros_params
from ami_ros.core.controller import PLANNING, Controller
from ami_ros.core.preprocess import encode_frame
from ami_ros.core.subgoals import approach_subgoals
from ami_ros.ros import conversions as conv
from ami_ros.ros import qos
from ami_ros.sim import ArmSim

pytestmark = pytest.mark.ros

ROBOT = Path(__file__).resolve().parents[2] / "config" / "robots" / "tabletop_arm.yaml"


def flat(params: dict, prefix: str = "") -> list[Parameter]:
    out = []
    for key, value in params.items():
        if isinstance(value, dict):
            out += flat(value, f"{prefix}{key}.")
        else:
            out.append(Parameter(prefix + key, value=value))
    return out


@pytest.fixture(scope="module")
def episode() -> dict:
    """Two frames one control period apart, the joints of the second, and the goal image."""
    with ArmSim(SimConfig(task="reach")) as sim:
        sim.reset(100_002, "reach")
        first, q1 = sim.render(), sim.state().qpos
        sim.command(q1 + 0.1)
        sim.advance(0.1)
        return {"frames": (first, sim.render()), "q": (q1, sim.state().qpos), "goal": sim.render_goal()}


def test_the_node_publishes_the_command_its_controller_computes(ros, tmp_path, episode) -> None:
    from ami_ros.ros.planner_node import PlannerNode
    from ami_ros.ros.spin import autostart, finish

    overrides = {"start_enabled": False, "goal_memory_dir": str(tmp_path), "max_age": 60.0}
    params = load_ros_params(ROBOT, "planner_node") | overrides  # max_age: a loaded machine is slow
    node = PlannerNode(context=ros.context, parameter_overrides=flat(params))
    autostart(node)  # configure and activate, as spin_node does
    ros.executor.add_node(node)
    try:
        run(ros, node, episode)
    finally:
        ros.executor.remove_node(node)
        finish(node)


def run(ros, node, episode) -> None:
    rt, names = node.runtime, list(node.controller.config.joint_names)
    commands = ros.subscribe(JointTrajectory, "arm_controller/joint_trajectory", keep=50)
    progress = ros.subscribe(DiagnosticStatus, "ami/progress", keep=50)
    goal_pub = ros.node.create_publisher(Image, "ami/goal_image", qos.LATCHED)
    latent_pub = ros.node.create_publisher(Image, "ami/latent", 10)
    joint_pub = ros.node.create_publisher(JointState, "joint_states", 10)
    estop = ros.node.create_publisher(Bool, "ami/estop", 10)
    t = time.time()
    goal_pub.publish(conv.numpy_to_image(episode["goal"], conv.to_time(t), "camera"))
    ros.spin_until(lambda: node.controller.goal is not None, 20.0, "the node's goal")

    cc = node.controller.config  # same settings, so the same planner and route seeds
    reference = Controller(cc, rt, subgoals=approach_subgoals(cc, rt.action_limits))
    reference.set_goal(reference.goal_from_image(episode["goal"], "goal"))
    np.testing.assert_array_equal(node.controller.goal.latent, reference.goal.latent)
    for k, (frame, q) in enumerate(zip(episode["frames"], episode["q"], strict=True)):
        stamp = t - 0.1 * (1 - k)
        latent, _ = encode_frame(rt, frame, q)  # what encoder_node publishes
        reference.add_latent(stamp, latent)
        ros.spin_until(latent_pub.get_subscription_count, 10.0, "the node's latent subscription")
        latent_pub.publish(conv.latent_to_image(latent, Header(stamp=conv.to_time(stamp), frame_id="camera")))

        def arrived(latent=latent):
            here = node.controller.goal_here("probe")
            return here is not None and np.array_equal(here.latent, latent)

        ros.spin_until(arrived, 10.0, f"latent {k} at the node")
    q = episode["q"][1]
    reference.add_joints(t, names, q)
    joint_pub.publish(conv.joint_state(names[::-1], q[::-1], np.zeros(4), np.zeros(4), conv.to_time(t)))
    ros.spin_until(lambda: node.controller.latest_joints() is not None, 10.0, "joint_states at the node")
    assert not [m for m in commands if m.points], "a disabled node commanded"

    assert ros.call(ros.node.create_client(SetBool, "ami/enable"), SetBool.Request(data=True)).success
    reference.set_enabled(True)
    expected, _ = reference.tick_waiting(t + 0.05)  # the node holds while its subgoals are planned
    assert expected.state == PLANNING
    msg = ros.spin_until(lambda: next((m for m in commands if m.points), None), 20.0, "the node's command")
    assert msg.joint_names == names
    np.testing.assert_array_equal(msg.points[0].positions, expected.command)
    assert conv.to_seconds(msg.points[0].time_from_start) == pytest.approx(
        node.controller.config.control_period
    )
    report = ros.spin_until(
        lambda: next((p for p in progress if p.message == PLANNING), None), 10.0, "a planning progress report"
    )
    values = {kv.key: kv.value for kv in report.values}
    assert values["energy"] == f"{expected.energy:.6f}" and values["state"] == expected.state

    commands.clear()
    estop.publish(Bool(data=True))
    reference.set_enabled(False)
    hold = reference.tick(t + 0.2)
    ros.spin_until(lambda: any(not m.points for m in commands), 10.0, "a hold on e-stop")
    ros.spin_until(lambda: node.controller.state == hold.state, 10.0, f"the {hold.state!r} state")


@pytest.mark.parametrize(("spacing", "ticking"), [(0.1, range(6)), (1 / 30, range(0, 12, 3))])
def test_a_latent_a_control_period_after_the_last_tick_starts_one_at_once(
    ros, tmp_path, episode, spacing, ticking
) -> None:
    """Ticks follow the latents' stamps, not their arrival: latents stamped a control period apart
    each start a tick as they arrive, however fast they come; at 30 Hz every third one does."""
    from ami_ros.core.trace import read_events
    from ami_ros.ros.planner_node import PlannerNode
    from ami_ros.ros.spin import autostart, finish

    trace = tmp_path / "planner.jsonl"
    params = load_ros_params(ROBOT, "planner_node")
    overrides = {"goal_memory_dir": str(tmp_path), "max_age": 60.0, "latency_trace": str(trace)}
    # no approach subgoals: the first tick commands instead of holding while they are planned
    overrides["approach"] = params["approach"] | {"urdf": ""}
    node = PlannerNode(context=ros.context, parameter_overrides=flat(params | overrides))
    autostart(node)
    ros.executor.add_node(node)
    try:
        names = list(node.controller.config.joint_names)
        goal_pub = ros.node.create_publisher(Image, "ami/goal_image", qos.LATCHED)
        latent_pub = ros.node.create_publisher(Image, "ami/latent", 10)
        joint_pub = ros.node.create_publisher(JointState, "joint_states", 10)
        goal_pub.publish(conv.numpy_to_image(episode["goal"], conv.to_time(time.time()), "camera"))
        ros.spin_until(lambda: node.controller.goal is not None, 20.0, "the node's goal")
        ros.spin_until(latent_pub.get_subscription_count, 10.0, "the node's latent subscription")
        latent, _ = encode_frame(node.runtime, episode["frames"][0], episode["q"][0])
        q, start = episode["q"][0], time.time() - 1.0
        stamps = [start + spacing * i for i in range(max(ticking) + 1)]
        ros.spin_until(joint_pub.get_subscription_count, 10.0, "the node's joint_states subscription")
        for stamp in stamps:
            now = time.time()
            joint_pub.publish(conv.joint_state(names, q, np.zeros(4), np.zeros(4), conv.to_time(now)))
            ros.spin_until(
                lambda now=now: abs((node.controller.latest_joints() or (0.0,))[0] - now) < 1e-6,
                10.0,
                "the joint state at the node",
            )
            latent_pub.publish(
                conv.latent_to_image(latent, Header(stamp=conv.to_time(stamp), frame_id="camera"))
            )

            def arrived(stamp=stamp):  # a callback runs to its end before the next one here
                return any(
                    e["stage"] == "latent" and e["stamp"] == pytest.approx(stamp, abs=1e-6)
                    for e in read_events([trace])
                )

            ros.spin_until(arrived, 10.0, f"the latent stamped {stamp:.3f} at the node")
        ros.spin_for(0.05)
    finally:
        ros.executor.remove_node(node)
        finish(node)
    ticked = {round(e["stamp"], 6) for e in read_events([trace]) if e["stage"] == "command"}
    assert {round(stamps[i], 6) for i in ticking} <= ticked
