"""Refused inputs by kind: one throttled log line per kind, counts for /diagnostics.

rclpy throttles a log call per call site, so one `_error()` helper shared by every refusal let a
flood of one kind of bad input hide every other kind. Here the kind is the message with its
numbers blanked out: "joint3 = 7.5 is outside its limits" and "joint3 = 9.1 ..." are one kind,
"unknown joint name(s) ['elbow']" another.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)", re.IGNORECASE)
_MAX_KINDS = 256


class FaultLog:
    """Log `text` at most once per `period` seconds per kind; count and keep the last one."""

    def __init__(self, logger, period: float = 2.0) -> None:
        self.logger, self.period = logger, period
        self.count = 0
        self.last = ""
        self._logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def __call__(self, text: str, severity: str = "error") -> None:
        self.count += 1
        self.last = text
        kind = _NUMBER.sub("#", text)[:200]
        now = time.monotonic()
        if now - self._logged.get(kind, -float("inf")) < self.period:
            self._suppressed[kind] += 1
            return
        if len(self._logged) >= _MAX_KINDS:  # a flood of distinct messages: forget the old kinds
            self._logged.clear()
            self._suppressed.clear()
        more = self._suppressed.pop(kind, 0)
        self._logged[kind] = now
        line = f"{text} ({more} more of this kind since the last line)" if more else text
        if severity == "warning":  # one call site per severity: rclpy refuses to mix them at one
            self.logger.warning(line)
        else:
            self.logger.error(line)

    def guard(
        self, topic: str, handle: Callable[[Any], None], errors: tuple[type[Exception], ...] = (ValueError,)
    ) -> Callable[[Any], None]:
        """A subscription callback: `handle(msg)`, or "`topic` ignored: why" logged here when it
        raises one of `errors` (the input was refused; the node goes on)."""

        def callback(msg: Any) -> None:
            try:
                handle(msg)
            except errors as err:
                text = err.args[0] if isinstance(err, KeyError) and err.args else err  # no KeyError quotes
                self(f"{topic} ignored: {text}")

        return callback

    @classmethod
    def of(cls, node) -> FaultLog:
        """The node's FaultLog, created on first use (so nodes need no set-up line for it)."""
        log = getattr(node, "_fault_log", None)
        if log is None:
            log = node._fault_log = cls(node.get_logger())
        return log
