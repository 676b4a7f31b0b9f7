"""ami_ros: an ament_python package that also installs with pip into a plain venv."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "ami_ros"


def tree(src: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing `src/**` under share/ami_ros/src, keeping sub-folders."""
    groups: dict[str, list[str]] = {}
    for path in sorted(Path(src).rglob("*")):
        if path.is_file():
            groups.setdefault(f"share/{PACKAGE}/{path.parent}", []).append(str(path))
    return sorted(groups.items())


setup(
    name=PACKAGE,
    version="0.4.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={"ami_ros.sim": ["assets/*.xml", "assets/*.urdf"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        *tree("config"),
        *tree("models"),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "PyYAML", "mujoco"],
    zip_safe=False,
    maintainer="ami_ros maintainers",
    maintainer_email="maintainers@ami-ros.dev",
    description="Plan robot motions with a JEPA world model from ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "ami-ros = ami_ros.cli:main",
            "sim_node = ami_ros.ros.sim_node:main",
            "recorder_node = ami_ros.ros.recorder_node:main",
            "encoder_node = ami_ros.ros.encoder_node:main",
            "predictor_node = ami_ros.ros.predictor_node:main",
            "planner_node = ami_ros.ros.planner_node:main",
            "ami_stack = ami_ros.ros.stack:main",
        ],
    },
)
