# ami_ros quick start: `make demo` runs the stack on the embedded robot, `make test` the tests.
# Both create .venv and install everything on first use (scripts/bootstrap.sh).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
ORT ?= onnxruntime
STAMP := $(VENV)/.ami_ros-installed
PY := $(VENV)/bin/python

# ROS traffic stays on this machine (no discovery multicast on the network).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_LOCALHOST_ONLY ?= 1
export MUJOCO_GL ?= egl

.PHONY: setup demo test test-fast lint format bench docs clean

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
