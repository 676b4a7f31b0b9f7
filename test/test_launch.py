"""Launch files and parameter files, checked without a ROS 2 install (no `launch` package here).

Every executable a launch file starts is a console script of this package, every config file it
names exists, and every parameter file holds only keys the nodes' config dataclasses define.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

from ami_ros.config import SimConfig, SimNodeConfig, from_dict

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


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_starts_console_scripts_of_this_package(path):
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    assert set(keyword_strings(tree, "package")) == {"ami_ros"}
    executables = keyword_strings(tree, "executable")
    assert executables and set(executables) <= CONSOLE_SCRIPTS


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_config_files_named_by_launch_files_exist(path):
    named = re.findall(r'"config"\s*/\s*"([\w.]+)"', path.read_text())
    for name in named:
        assert (ROOT / "config" / name).is_file(), f"{path.name} names config/{name}"


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
