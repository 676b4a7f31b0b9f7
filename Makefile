# ami_ros quick start: `make demo` runs the stack on the embedded robot, `make test` the tests.
# Both create .venv and install everything on first use (scripts/bootstrap.sh).
# `make test-jazzy` runs the ROS tests again on the ROS 2 Jazzy wheels (venv build/venv-jazzy).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
ORT ?= onnxruntime
STAMP := $(VENV)/.ami_ros-installed
PY := $(VENV)/bin/python
# Under build/, which the colcon workspace copy in test/ros/test_ros2_install.py leaves out.
JAZZY_VENV ?= build/venv-jazzy
JAZZY_STAMP := $(JAZZY_VENV)/.ami_ros-installed

# ROS traffic stays on this machine (no discovery multicast on the network).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_LOCALHOST_ONLY ?= 1
export MUJOCO_GL ?= egl

.PHONY: setup demo test test-fast test-jazzy lint format bench docs clean

setup: $(STAMP)

$(STAMP): scripts/bootstrap.sh setup.py $(wildcard requirements/*.txt)
	VENV=$(VENV) PYTHON=$(PYTHON) ORT=$(ORT) bash scripts/bootstrap.sh
	touch $@

demo: setup
	$(VENV)/bin/ami-ros demo

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not ros and not slow"

NO_ROS_SOURCED = @if [ -n "$${ROS_DISTRO:-}" ]; then echo "test-jazzy tests the PyPI wheels: run it without" \
  "a sourced ROS 2 (ROS_DISTRO=$$ROS_DISTRO)" >&2; exit 2; fi
# The ROS tests on ROS 2 Jazzy (the LTS) from its PyPI wheels. test_ros2_install.py is left out: its
# ROS 2 install (../shared/ros2-user-env) is Kilted whichever venv runs it, and `make test` runs it.
$(JAZZY_STAMP): scripts/bootstrap.sh setup.py $(wildcard requirements/*.txt)
	$(NO_ROS_SOURCED)
	VENV=$(JAZZY_VENV) PYTHON=$(PYTHON) ORT=$(ORT) ROS_WHEELS=jazzy bash scripts/bootstrap.sh
	touch $@

test-jazzy: $(JAZZY_STAMP)
	$(NO_ROS_SOURCED)
	$(JAZZY_VENV)/bin/python -c "import rclpy, importlib.metadata as m; print('rclpy', m.version('ros-rclpy'))"
	$(JAZZY_VENV)/bin/python -m pytest -m ros --ignore=test/ros/test_ros2_install.py

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: setup
	$(VENV)/bin/ami-ros bench $(if $(wildcard models/tabletop_arm/manifest.yaml),--model models/tabletop_arm)

# The generated pages: docs/reference.md, docs/results.md and the README's figures (test/test_docs.py
# fails when they differ from what this writes).
docs: setup
	$(PY) -m ami_ros.docs

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
