"""Parameters set at run time (what `ros2 param set` sends): invalid values are refused with the
reason, valid ones to read-only fields as read-only, dynamic ones applied; no node dies and the
refused value never takes effect.

All four nodes run as real processes (no pipeline needed: the parameter service is what is
tested); the calls go through each node's `<node>/set_parameters` service.
"""

from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python

pytestmark = pytest.mark.ros

ROBOT = "config/robots/tabletop_arm.yaml"
NAN, INF = math.nan, math.inf

# (node, parameter, value, the reason: substrings in order, separated by " ... ")
REFUSED = [
    ("planner_node", "max_age", -1.0, "max_age ... must be > 0"),
    ("planner_node", "max_age", NAN, "max_age: expected a finite number"),
    ("planner_node", "max_age", "soon", "max_age: expected a number, got 'soon'"),
    ("planner_node", "max_age", True, "max_age: expected a number, got True"),
    ("planner_node", "control_period", 0.0, "control_period ... must be > 0"),
    ("planner_node", "planner.samples", 0, "elites must be in [2, samples=0]"),
    ("planner_node", "planner.method", "gradient", "method must be 'cem' or 'mppi'"),
    ("planner_node", "safety.max_step", NAN, "max_step: expected a finite number"),
    ("planner_node", "safety.max_step", INF, "max_step: expected a finite number"),
    ("planner_node", "safety.velocity_scale", 2.0, "velocity_scale in (0, 1]"),
    ("planner_node", "joint_lower", [NAN, -2.4, -2.4, -2.0], "joint_lower[0]: expected a finite number"),
    ("planner_node", "joint_upper", [1.9, 2.4, 2.4], "must have equal lengths"),
    ("planner_node", "command_interface", "teleport", "command_interface must be"),
    ("planner_node", "runtime.providers", ["CUDAExecutionProvidr"], "unknown execution provider(s)"),
    ("planner_node", "runtime.intra_op_threads", -2, "intra_op_threads must be >= 0"),
    ("planner_node", "max_age", 0.5, "max_age: read-only at run time"),
    ("encoder_node", "max_skew", -0.1, "max_skew and diagnostics_period must be > 0"),
    ("encoder_node", "max_skew", NAN, "max_skew: expected a finite number"),
    ("encoder_node", "max_rate", -1.0, "max_rate must be >= 0 (0: every frame)"),
    ("encoder_node", "runtime.providers", [], "providers must name at least one"),
    ("predictor_node", "surprise_window", 0, "surprise_window must be >= 1"),
    ("predictor_node", "stillness_threshold", 0.0, "stillness_threshold, scene_threshold and"),
    ("predictor_node", "scene_threshold", -1.0, "scene_threshold and diagnostics_period must be > 0"),
    ("predictor_node", "surprise_threshold", INF, "surprise_threshold: expected a finite number"),
    ("predictor_node", "command_interface", "", "command_interface must be"),
    ("sim_node", "seed", -1, "seed must be >= 0"),
    ("sim_node", "sim.task", "fly", "task must be 'reach' or 'push'"),
    ("sim_node", "control_rate", 1e6, "control_rate must be in [1, 1000]"),
    ("sim_node", "real_time_factor", NAN, "real_time_factor: expected a finite number"),
    ("sim_node", "no_such_parameter", 1.0, "undeclared parameter"),
]


@pytest.fixture(scope="module")
def sim_node_params():
    return {"publish_clock": False}  # wall-time stamps, as the nodes' clocks (no use_sim_time)


@pytest.fixture(scope="module")
def nodes(ros, sim_node, start_node) -> dict:
    robot = ("--params-file", ROBOT)
    procs = {"sim_node": sim_node}
    for name in ("encoder_node", "predictor_node", "planner_node"):
        procs[name] = start_node(f"ami_ros.ros.{name}", {"diagnostics_period": 0.3}, name, robot)
    for name in procs:
        client = ros.node.create_client(SetParameters, f"{name}/set_parameters")
        ros.spin_until(client.service_is_ready, 90.0, f"{name}'s parameter service")
    return procs


def set_parameter(ros, node: str, name: str, value):
    client = ros.node.create_client(SetParameters, f"{node}/set_parameters")
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return ros.call(client, request, timeout=20.0).results[0]


def get_parameter(ros, node: str, name: str):
    client = ros.node.create_client(GetParameters, f"{node}/get_parameters")
    response = ros.call(client, GetParameters.Request(names=[name]), timeout=20.0)
    return parameter_value_to_python(response.values[0])


@pytest.mark.parametrize(
    "node, name, value, reason", REFUSED, ids=[f"{n}.{p}={v!r}" for n, p, v, _ in REFUSED]
)
def test_an_invalid_or_read_only_change_is_refused_with_the_reason(ros, nodes, node, name, value, reason):
    before = get_parameter(ros, node, name) if name != "no_such_parameter" else None
    result = set_parameter(ros, node, name, value)
    assert not result.successful
    assert re.search(".*".join(map(re.escape, reason.split(" ... "))), result.reason), result.reason
    nodes[node].check_alive()
    if before is not None:
        after = get_parameter(ros, node, name)
        assert after == before or (isinstance(after, float) and math.isnan(after) and math.isnan(before))


def test_refusals_are_logged_and_reported_in_diagnostics(ros, nodes) -> None:
    diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics", keep=100)
    assert not set_parameter(ros, "planner_node", "safety.limit_margin", -0.5).successful

    def reported():
        return any(
            s.name.startswith("planner_node")
            and any("parameter change refused" in kv.value and "limit_margin" in kv.value for kv in s.values)
            for m in diagnostics
            for s in m.status
        )

    ros.spin_until(reported, 10.0, "the refusal in the planner's /diagnostics")
    assert "parameter change refused: invalid value" in nodes["planner_node"].log(200_000)
    assert "parameter change refused" in nodes["sim_node"].log(200_000)


def test_a_valid_change_to_a_dynamic_parameter_is_applied(ros, nodes) -> None:
    result = set_parameter(ros, "sim_node", "seed", 42)
    assert result.successful, result.reason
    assert get_parameter(ros, "sim_node", "seed") == 42
    for proc in nodes.values():
        proc.check_alive()


@pytest.mark.parametrize("transition", [99, 1])  # no such transition; configure while active
def test_a_lifecycle_transition_that_does_not_apply_is_refused(ros, nodes, transition) -> None:
    """Service calls with bad arguments: the node says no and stays active."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    change = ros.node.create_client(ChangeState, "planner_node/change_state")
    request = ChangeState.Request(transition=Transition(id=transition))
    assert not ros.call(change, request, timeout=20.0).success
    get = ros.node.create_client(GetState, "planner_node/get_state")
    assert ros.call(get, GetState.Request(), timeout=20.0).current_state.label == "active"
    nodes["planner_node"].check_alive()


def test_a_robot_file_sets_the_declared_joint_parameters(ros, start_node) -> None:
    """`ros2 param get` shows what the node uses: the robot file's joints, not the embedded arm's."""
    from ami_ros.robot import load_robot, robot_file

    ur5e = load_robot(robot_file("ur5e.robot.yaml"))
    params = {"robot": "ur5e.robot.yaml", "autostart": False}
    start_node("ami_ros.ros.encoder_node", params, "ur5e_encoder", ("-r", "__node:=ur5e_encoder"))
    client = ros.node.create_client(GetParameters, "ur5e_encoder/get_parameters")
    ros.spin_until(client.service_is_ready, 90.0, "ur5e_encoder's parameter service")
    assert get_parameter(ros, "ur5e_encoder", "joint_names") == list(ur5e.joint_names)
    assert get_parameter(ros, "ur5e_encoder", "robot") == "ur5e.robot.yaml"
