"""The strict config loader: unknown keys, wrong types and invalid values fail with the key named."""

import pytest

from ami_ros.config import ConfigError, SimConfig, SimNodeConfig, from_dict, load_yaml


def test_defaults_and_valid_yaml(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("sim:\n  image_width: 96\n  push_distance: [0.06, 0.1]\n")
    cfg = load_yaml(path, SimConfig, section="sim")
    assert cfg == SimConfig(image_width=96, push_distance=(0.06, 0.1))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"image_widht": 64}, "unknown key(s) for SimConfig: image_widht"),
        ({"image_width": "64"}, "image_width: expected int"),
        ({"image_width": 64.0}, "image_width: expected int"),
        ({"shadows": 1}, "shadows: expected bool"),
        ({"push_distance": [0.1]}, "push_distance: expected 2 values"),
        ({"task": "throw"}, "task must be 'reach' or 'push'"),
        ({"image_width": 8}, "at least 16x16"),
    ],
)
def test_invalid_sim_config_names_the_problem(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_dict(SimConfig, data)


def test_numbers_accept_ints_but_not_bools():
    assert from_dict(SimNodeConfig, {"real_time_factor": 2}).real_time_factor == 2.0
    with pytest.raises(ConfigError, match="expected a number"):
        from_dict(SimNodeConfig, {"real_time_factor": True})


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml", SimConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sim: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(bad, SimConfig, section="sim")
    other = tmp_path / "other.yaml"
    other.write_text("node: {}\n")
    with pytest.raises(ConfigError, match="missing section 'sim'"):
        load_yaml(other, SimConfig, section="sim")
