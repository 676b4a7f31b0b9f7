"""The generated pages match their generator (`python -m ami_ros.docs`), and the README stays short.

docs/reference.md comes from the nodes' declarations and the config dataclasses' field docstrings,
docs/results.md and the README's headline table from docs/results/*.json. Change a node, a field's
docstring or a recorded result without regenerating, and this fails.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from ami_ros import docs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.mark.parametrize("path", list(docs.expected_files()), ids=lambda p: p.name)
def test_generated_file_is_what_the_generator_writes(path):
    expected = docs.expected_files()[path]
    assert path.read_text() == expected, f"{path.relative_to(ROOT)} is stale: run `python -m ami_ros.docs`"


def test_check_mode_reports_a_stale_page(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    for src in (ROOT / "docs" / "results").glob("*.json"):
        (tmp_path / "docs" / "results" / src.name).write_text(src.read_text())
    (tmp_path / "README.md").write_text(README.read_text())
    assert docs.main(["--check"], root=tmp_path) == 1  # no reference.md, results.md there yet
    assert docs.main([], root=tmp_path) == 0  # writes them
    assert docs.main(["--check"], root=tmp_path) == 0
    (tmp_path / "docs" / "reference.md").write_text("edited by hand\n")
    assert docs.main(["--check"], root=tmp_path) == 1


def test_every_recorded_result_says_how_it_was_made():
    results = docs.load_results()
    assert {"eval_reach", "eval_push", "bench", "bench_stack", "early_warning"} <= set(results)
    levers = {f"stack_levers/{name}": record for name, record in results.pop("stack_levers").items()}
    assert levers
    for name, record in (results | levers).items():
        assert set(record) >= {"command", "date", "commit", "wall_s", "report"}, name
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["date"]), name
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", record["commit"]), name
        assert "/work/" not in json.dumps(record) and "/home/" not in json.dumps(record), (
            f"{name}: machine path"
        )


def test_headline_table_follows_the_recorded_results():
    results = docs.load_results()
    changed = copy.deepcopy(results)
    changed["eval_push"]["report"]["success_rate"] = 0.62
    assert "**62%** (31/50)" in docs.headline_table(changed)
    assert docs.headline_table(changed) != docs.headline_table(results)
    rate = results["eval_push"]["report"]["success_rate"]
    assert f"**{100 * rate:.0f}%**" in README.read_text()


def test_reference_lists_what_the_nodes_declare():
    page = docs.reference_page()
    planner = page[page.index("## `planner_node`") : page.index("## `recorder_node`")]
    for name in ("ami/latent", "joint_states", "ami/goal_image", "ami/estop", "ami/enable", "ami/progress"):
        assert f"`{name}`" in planner
    for parameter in ("planner.samples", "safety.max_step", "approach.urdf", "runtime.model_dir", "max_age"):
        assert f"`{parameter}`" in planner
    encoder = page[page.index("## `encoder_node`") : page.index("## `predictor_node`")]
    qos = "best effort, depth 1 (ROS QoS overrides apply)"
    camera = f"| subscribes | `camera/image_raw` | sensor_msgs/Image | {qos} |"
    assert camera in encoder


def test_readme_topics_are_the_nodes_topics():
    """The README's interface table names only topics the generated reference lists."""
    readme, page = README.read_text(), docs.reference_page()
    table = readme[readme.index("## ROS interface at a glance") : readme.index("Every topic, service")]
    names = re.findall(r"`([a-z_/]+)`", table)
    assert len(names) >= 10
    for name in names:
        assert f"`{name}`" in page, f"README names {name}, which no node declares"


def test_readme_is_short_and_points_a_newcomer_to_the_tasks():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    first_screen = "\n".join(lines[:40])
    for target in ("#quick-start", "docs/run-on-your-robot.md", "docs/train-on-your-robot.md"):
        assert target in first_screen
    for page in re.findall(r"\]\((docs/[\w.-]+\.md)", README.read_text()):
        assert (ROOT / page).exists(), page
