"""Every number a node is configured with is finite, and execution providers are known names.

Comparisons with NaN are all false, so `max_age <= 0` let `max_age: .nan` through; the loader
(YAML files and ROS parameters alike) and the safety-critical dataclasses refuse non-finite
values naming the field.
"""

from __future__ import annotations

import dataclasses
import math

import onnxruntime as ort
import pytest

from ami_ros import config as cfg
from ami_ros.config import ConfigError, from_dict

NODE_CONFIGS = [
    cfg.SafetyConfig,
    cfg.PlannerConfig,
    cfg.PlannerNodeConfig,
    cfg.EncoderNodeConfig,
    cfg.PredictorNodeConfig,
    cfg.SimNodeConfig,
    cfg.SimConfig,
    cfg.RuntimeConfig,
]
NODE_CONFIGS += [c for c in [getattr(cfg, "ControllerConfig", None)] if c is not None]


def _float_fields():
    for cls in NODE_CONFIGS:
        for field in dataclasses.fields(cls):
            default = field.default
            if isinstance(default, float):
                yield cls, field.name, None
            elif isinstance(default, tuple) and default and all(isinstance(v, float) for v in default):
                yield cls, field.name, len(default)


FLOAT_FIELDS = list(_float_fields())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "cls, name, length", FLOAT_FIELDS, ids=[f"{c.__name__}.{n}" for c, n, _ in FLOAT_FIELDS]
)
def test_the_loader_refuses_non_finite_numbers_naming_the_field(cls, name, length, bad) -> None:
    value = bad if length is None else [bad] + [0.0] * (length - 1)
    with pytest.raises(ConfigError, match=rf"{name}(\[0\])?: expected a finite number"):
        from_dict(cls, {name: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_step", math.nan),
        ("max_step", math.inf),
        ("velocity_scale", math.nan),
        ("limit_margin", math.nan),
    ],
)
def test_safety_config_built_directly_refuses_non_finite_values(field, value) -> None:
    with pytest.raises(ConfigError, match=f"{field}: expected a finite number"):
        cfg.SafetyConfig(**{field: value})


def test_an_unknown_execution_provider_is_a_typo_not_an_unavailable_provider() -> None:
    with pytest.raises(ConfigError, match=r"unknown execution provider\(s\) \['CUDAExecutionProvidr'\]"):
        from_dict(cfg.RuntimeConfig, {"providers": ["CUDAExecutionProvidr", "CPUExecutionProvider"]})
    assert from_dict(cfg.RuntimeConfig, {"providers": ["OpenVINOExecutionProvider"]})  # known, maybe absent


def test_the_known_providers_are_onnxruntimes() -> None:
    assert set(cfg.KNOWN_PROVIDERS) == set(ort.get_all_providers())
