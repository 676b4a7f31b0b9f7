"""Where a camera frame's time goes: each node appends the wall time at which a frame passes a stage.

A trace is a JSON-lines file per node, one event a line: `{"stage": ..., "stamp": <the camera
frame's stamp, s>, "t": <wall time, s>}`. The frame's stamp follows it through the stack (the latent
carries the frame's header, the planner's decision the latent's stamp), so the events of one frame
can be joined across nodes and processes on one machine. `stage_latencies` does the join.

Stages, in the order a frame meets them:
    received  encoder_node's camera callback starts
    encoded   its latent is published
    latent    planner_node's latent callback starts
    tick      the planning tick that used this frame's latent starts
    command   that tick's command is published
    late      (instead of tick and command) that tick's decision came too late and the arm held
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

STAGES = ("received", "encoded", "latent", "tick", "command")
SPANS = {  # name: (from, to); "camera" is the frame's stamp
    "camera_to_received": ("camera", "received"),
    "received_to_encoded": ("received", "encoded"),
    "encoded_to_latent": ("encoded", "latent"),
    "latent_to_tick": ("latent", "tick"),
    "tick_to_command": ("tick", "command"),
    "camera_to_command": ("camera", "command"),
}


class LatencyTrace:
    """Appends stage events to `path`, a line at a time (a reader sees each at once); an empty path
    records nothing (the default: no cost)."""

    def __init__(self, path: str | Path = "") -> None:
        self._file: TextIO | None = open(path, "a", buffering=1) if str(path) else None  # noqa: SIM115
        self._lock = threading.Lock()  # nodes of one process may share a file

    def __call__(self, stage: str, stamp: float, t: float | None = None) -> None:
        if self._file is None:
            return
        now = time.time() if t is None else t
        with self._lock:
            self._file.write(f'{{"stage":"{stage}","stamp":{stamp:.9f},"t":{now:.9f}}}\n')

    def close(self) -> None:
        if self._file is not None:
            with self._lock:
                self._file.close()
                self._file = None


def read_events(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The events of several trace files (missing files add none; a torn last line is skipped)."""
    events = []
    for path in paths:
        if not Path(path).exists():
            continue
        for line in Path(path).read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def frame_key(stamp: float) -> float:
    """The stamp that names a frame across nodes (to the microsecond: float stamps round-trip)."""
    return round(float(stamp), 6)


def frames_at(events: Iterable[dict[str, Any]], stage: str) -> int:
    """How many distinct frames reached `stage`."""
    return len({frame_key(e["stamp"]) for e in events if e["stage"] == stage})


def stage_latencies(events: Iterable[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Milliseconds per span (`SPANS`) over the frames that reached a command, joined by stamp.

    A frame's first event of each stage counts (a frame is encoded once; a latent may be used by
    one tick). Frames that did not reach a command are left out of every span, so the spans of
    one frame add up to its camera-to-command time.
    """
    times: dict[float, dict[str, float]] = {}
    for event in events:
        key = frame_key(event["stamp"])
        stages = times.setdefault(key, {"camera": key})
        stages.setdefault(event["stage"], float(event["t"]))
    done = [s for s in times.values() if all(stage in s for stage in STAGES)]
    return {
        span: np.array([1e3 * (s[b] - s[a]) for s in done], dtype=float) for span, (a, b) in SPANS.items()
    }


def percentiles(ms: np.ndarray) -> dict[str, float]:
    """p50, p99 and max of `ms` (NaN when empty), rounded to 0.1 ms, and the count."""
    if ms.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    p50, p99 = np.percentile(ms, [50, 99])
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "max": round(float(ms.max()), 1),
            "n": int(ms.size)}  # fmt: skip


def stage_percentiles(latencies: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """`percentiles` of every span of `stage_latencies`."""
    return {span: percentiles(ms) for span, ms in latencies.items()}
