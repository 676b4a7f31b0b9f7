"""FaultLog: one log line per kind of refused input per period, whatever else floods the node."""

from __future__ import annotations

import pytest

from ami_ros.ros.fault_log import FaultLog


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def error(self, text: str) -> None:
        self.lines.append(("error", text))

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))


def test_each_kind_is_logged_once_per_period_and_counts_what_it_suppressed() -> None:
    rec = Recorder()
    log = FaultLog(rec, period=60.0)
    for i in range(50):
        log(f"joint3 = {i}.5 is outside its limits")
    log("unknown joint name(s) ['elbow']")  # another kind is not hidden by the flood
    log("latent has 3 NaN and 0 infinite values", "warning")
    assert [t for _, t in rec.lines] == [
        "joint3 = 0.5 is outside its limits",
        "unknown joint name(s) ['elbow']",
        "latent has 3 NaN and 0 infinite values",
    ]
    assert rec.lines[-1][0] == "warning"
    assert log.count == 52 and log.last.startswith("latent has")
    log.period = 0.0
    log("joint3 = 9.5 is outside its limits")
    assert rec.lines[-1][1] == "joint3 = 9.5 is outside its limits (49 more of this kind since the last line)"


def test_errors_and_warnings_mix_on_an_rclpy_logger() -> None:
    """rclpy refuses two severities at one call site ("Logger severity cannot be changed")."""
    logging = pytest.importorskip("rclpy.logging")
    log = FaultLog(logging.get_logger("fault_log_test"))
    log("an error")
    log("a warning", "warning")
    log("another error")
    assert log.count == 3
