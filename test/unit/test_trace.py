"""The latency trace: events of one frame joined across nodes' files by the frame's stamp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ami_ros.core.trace import (
    SPANS,
    LatencyTrace,
    frames_at,
    percentiles,
    read_events,
    stage_latencies,
    stage_percentiles,
)


def test_a_frame_is_joined_across_files_and_its_spans_add_up(tmp_path) -> None:
    encoder, planner = LatencyTrace(tmp_path / "e.jsonl"), LatencyTrace(tmp_path / "p.jsonl")
    encoder("received", 10.0, t=10.002)
    encoder("encoded", 10.0, t=10.010)
    planner("latent", 10.0, t=10.013)
    planner("tick", 10.0, t=10.015)
    planner("command", 10.0, t=10.045)
    encoder("received", 10.1, t=10.101)  # encoded, never planned: in no span
    encoder("encoded", 10.1, t=10.108)
    encoder("received", 10.0, t=10.5)  # a repeat of a stage: the first one counts
    encoder.close()
    planner.close()
    events = read_events([tmp_path / "e.jsonl", tmp_path / "p.jsonl", tmp_path / "none"])
    assert [frames_at(events, s) for s in ("received", "encoded", "command")] == [2, 2, 1]
    spans = stage_latencies(events)
    assert stage_percentiles(spans)["camera_to_command"] == {"p50": 45.0, "p99": 45.0, "max": 45.0, "n": 1}
    expected = {"camera_to_received": 2, "received_to_encoded": 8, "encoded_to_latent": 3,
                "latent_to_tick": 2, "tick_to_command": 30, "camera_to_command": 45}  # fmt: skip
    assert set(spans) == set(SPANS)
    for span, ms in expected.items():
        np.testing.assert_allclose(spans[span], [ms], atol=1e-3)
    parts = sum(spans[s][0] for s in SPANS if s != "camera_to_command")
    assert parts == pytest.approx(spans["camera_to_command"][0], abs=1e-6)


def test_no_path_records_nothing_and_a_torn_line_is_skipped(tmp_path) -> None:
    LatencyTrace("")("received", 1.0)  # no file, no error
    path = tmp_path / "t.jsonl"
    trace = LatencyTrace(path)
    trace("received", 1.0, t=1.5)
    trace.close()
    trace("received", 2.0)  # after close: ignored
    with open(path, "a") as f:
        f.write('{"stage":"enc')  # a process killed mid-line
    assert read_events([path]) == [{"stage": "received", "stamp": 1.0, "t": 1.5}]


def test_percentiles() -> None:
    out = percentiles(np.arange(1, 101, dtype=float))
    assert out == {"p50": 50.5, "p99": 99.0, "max": 100.0, "n": 100}
    empty = percentiles(np.array([]))
    assert empty["n"] == 0 and math.isnan(empty["p50"])
