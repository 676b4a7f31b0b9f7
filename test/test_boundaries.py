"""Import boundaries of ARCHITECTURE.md, and the package's install metadata.

core/, config.py, runtime/, sim/ and data/ never import rclpy, ROS message packages or torch
(a robot's stack must not need torch; training must not need ROS); ros/ never imports torch.
"""

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ami_ros"
ROS_MODULES = re.compile(r"^(rclpy|rosidl\w*|\w+_msgs|\w+_interfaces|std_srvs|launch|launch_ros)$")
NO_ROS_NO_TORCH = ["config.py", "robot.py", "core", "runtime", "sim", "data"]


def imported_top_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def python_files(*parts: str) -> list[Path]:
    files = []
    for part in parts:
        p = PKG / part
        files += [p] if p.is_file() else sorted(p.rglob("*.py"))
    return files


@pytest.mark.parametrize("path", python_files(*NO_ROS_NO_TORCH), ids=lambda p: str(p.relative_to(PKG)))
def test_pure_layers_import_neither_ros_nor_torch(path):
    bad = {m for m in imported_top_modules(path) if ROS_MODULES.match(m) or m == "torch"}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", python_files("ros"), ids=lambda p: str(p.relative_to(PKG)))
def test_ros_layer_does_not_import_torch(path):
    assert "torch" not in imported_top_modules(path)


def test_importing_the_sim_loads_neither_ros_nor_torch():
    code = (
        "import sys, ami_ros.sim, ami_ros.config;"
        "print(sorted(m for m in ('rclpy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_package_xml_declares_every_ros_dependency_the_code_imports():
    declared = {e.text for e in ET.parse(ROOT / "package.xml").getroot() if e.tag.endswith("depend")}
    used = set().union(*(imported_top_modules(p) for p in python_files("ros")))
    missing = {m for m in used if ROS_MODULES.match(m)} - declared
    assert not missing, f"package.xml lacks exec_depend for {sorted(missing)}"


def test_console_scripts_point_at_main_functions():
    setup_py = (ROOT / "setup.py").read_text()
    scripts = re.findall(r'"([\w-]+) = ([\w.]+):(\w+)"', setup_py)
    assert ("ami-ros", "ami_ros.cli", "main") in scripts
    for _name, module, func in scripts:
        path = ROOT / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body), f"{module}:{func}"


def test_version_agrees_across_package_xml_setup_py_package_and_changelog():
    xml_version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    setup_version = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    init_version = re.search(r'__version__ = "([^"]+)"', (PKG / "__init__.py").read_text()).group(1)
    sections = re.findall(
        r"^(\d+\.\d+\.\d+) \((\d{4}-\d\d-\d\d)\)\n-+$", (ROOT / "CHANGELOG.rst").read_text(), re.M
    )
    assert sections, "CHANGELOG.rst has no `X.Y.Z (YYYY-MM-DD)` sections"
    assert xml_version == setup_version == init_version == sections[0][0]
    versions = [tuple(int(p) for p in v.split(".")) for v, _ in sections]
    assert versions == sorted(versions, reverse=True), "CHANGELOG.rst sections: newest first"
