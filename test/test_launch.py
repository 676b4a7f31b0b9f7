"""Launch files and parameter files, checked without a ROS 2 install (no `launch` package here).

Every executable a launch file starts is a console script of this package, every config file it
names exists, and every parameter file holds only keys the nodes' config dataclasses define.
"""

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from ami_ros.config import (
    ApproachConfig,
    ControllerConfig,
    EncoderNodeConfig,
    PlannerConfig,
    PlannerNodeConfig,
    PredictorNodeConfig,
    RuntimeConfig,
    SafetyConfig,
    SimConfig,
    SimNodeConfig,
    from_dict,
    from_params,
    load_ros_params,
)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
CONSOLE_SCRIPTS = set(re.findall(r'"([\w-]+) = [\w.]+:\w+"', (ROOT / "setup.py").read_text()))


def keyword_strings(tree: ast.AST, name: str) -> list[str]:
    """String constants passed as keyword `name=` anywhere in the file."""
    return [
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == name and isinstance(kw.value, ast.Constant)
    ]


EXTERNAL = {  # what gazebo.launch.py starts besides this package: package -> executables
    "robot_state_publisher": {"robot_state_publisher"},
    "ros_gz_sim": {"create"},
    "ros_gz_bridge": {"parameter_bridge"},
    "controller_manager": {"spawner"},
}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_starts_console_scripts_of_this_package(path):
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    packages = set(keyword_strings(tree, "package"))
    external = EXTERNAL if path.name == "gazebo.launch.py" else {}
    assert packages <= {"ami_ros", *external}
    executables = keyword_strings(tree, "executable")
    allowed = CONSOLE_SCRIPTS.union(*external.values())
    assert executables and set(executables) <= allowed


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_files_named_by_launch_files_exist(path):
    """Every `share / "config" / ...` or `share / "launch" / ...` path is a file of the package."""
    named = re.findall(r'share((?:\s*/\s*"[\w.]+")+)', path.read_text())
    assert named, f"{path.name} names no package file"
    for chain in named:
        relative = Path(*re.findall(r'"([\w.]+)"', chain))
        assert (ROOT / relative).is_file(), f"{path.name} names {relative}, which does not exist"


def flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_sim_node_parameter_file_matches_the_config_dataclasses():
    document = yaml.safe_load((ROOT / "config" / "sim_node.yaml").read_text())
    params = flatten(document["/**"]["ros__parameters"])
    node = {k: v for k, v in params.items() if not k.startswith("sim.")}
    sim = {k.removeprefix("sim."): v for k, v in params.items() if k.startswith("sim.")}
    from_dict(SimNodeConfig, node)
    from_dict(SimConfig, sim)


NODE_CONFIGS = {
    "encoder_node": (EncoderNodeConfig, {"runtime.": RuntimeConfig}),
    "predictor_node": (PredictorNodeConfig, {"runtime.": RuntimeConfig}),
    "planner_node": (
        (PlannerNodeConfig, ControllerConfig),
        {
            "runtime.": RuntimeConfig,
            "planner.": PlannerConfig,
            "safety.": SafetyConfig,
            "approach.": ApproachConfig,
        },
    ),
}


def plain_fields(cls: type | tuple[type, ...]) -> set[str]:
    """Field names of a node's unprefixed config dataclass(es)."""
    return {f.name for c in (cls if isinstance(cls, tuple) else (cls,)) for f in dataclasses.fields(c)}


def check_node_section(node: str, params: dict) -> None:
    """Every key a field of the node's config dataclasses, every value valid (raises ConfigError)."""
    cls, prefixed = NODE_CONFIGS[node]
    for prefix, sub in prefixed.items():
        from_dict(sub, {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)})
    plain = {k: v for k, v in params.items() if not any(k.startswith(p) for p in prefixed)}
    plain.pop("use_sim_time", None)
    for key in [k for k in plain if k.startswith("qos_overrides.")]:  # ROS's own QoS overrides
        assert node == "encoder_node" and key.startswith("qos_overrides./camera/image_raw.subscription."), key
        policy, value = key.rsplit(".", 1)[1], plain.pop(key)
        assert (policy, value) in {("reliability", "reliable"), ("reliability", "best_effort")}, key
    unknown = set(plain) - plain_fields(cls)
    assert not unknown, f"{node}: unknown parameter(s) {sorted(unknown)}"
    for c in cls if isinstance(cls, tuple) else (cls,):
        from_dict(c, {k: v for k, v in plain.items() if k in plain_fields(c)})


def test_embedded_robot_config_configures_every_node_validly():
    document = yaml.safe_load((ROOT / "config" / "robots" / "tabletop_arm.yaml").read_text())
    sections = {key.removeprefix("/**/"): value["ros__parameters"] for key, value in document.items()}
    assert set(sections) == set(NODE_CONFIGS)
    for node, params in sections.items():
        check_node_section(node, flatten(params))


def test_real_arm_template_has_only_known_keys():
    """The template's TODO values are placeholders, so only its keys (not values) are checked."""
    document = yaml.safe_load((ROOT / "config" / "robots" / "real_arm_template.yaml").read_text())
    for key, value in document.items():
        node = key.removeprefix("/**/")
        cls, prefixed = NODE_CONFIGS[node]
        for name in flatten(value["ros__parameters"]):
            prefix = next((p for p in prefixed if name.startswith(p)), "")
            fields = plain_fields(prefixed.get(prefix, cls))
            assert name.removeprefix(prefix) in fields, f"{node}: unknown parameter {name}"


def test_robot_config_matches_the_embedded_robot():
    """Joint names, limits and velocities of the planner's safety filter are the sim's."""
    from ami_ros.sim import ArmSim

    robot = ROOT / "config" / "robots" / "tabletop_arm.yaml"
    planner = from_params(ControllerConfig, load_ros_params(robot, "planner_node"))  # with its robot file
    with ArmSim(SimConfig()) as sim:
        assert list(planner.joint_names) == list(sim.joint_names)
        assert planner.joint_lower == pytest.approx(sim.lower)
        assert planner.joint_upper == pytest.approx(sim.upper)
        assert planner.velocity_limits == pytest.approx(sim.velocity_limits)
