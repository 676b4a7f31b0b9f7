"""Plausibility of message stamps against the receiving node's clock (numpy-free, no ROS).

A stamp of zero, or one far ahead of or behind the node's clock, comes from a misconfigured or
foreign publisher (a driver without a clock, a bag replayed without `use_sim_time`); data stamped
so is refused rather than paired, kept as "newest" or taken as a clock jump.
"""

from __future__ import annotations

MAX_AHEAD_S = 2.0
"""Stamps up to this far ahead of the node's clock are accepted (clocks of two machines differ)."""
MAX_BEHIND_S = 30.0
"""Stamps up to this far behind the node's clock are accepted (older data is useless to a loop)."""
CLOCKS_DIFFER_S = 1e8
"""A gap this large (3 years) is a publisher on another clock: simulated time against wall time."""


def check_stamp(stamp: float, now: float, ahead: float = MAX_AHEAD_S, behind: float = MAX_BEHIND_S) -> None:
    """Raise ValueError unless `stamp` (s) is non-zero and within [now - behind, now + ahead].

    A clock that has not started (`now` <= 0: sim time before the first /clock) checks only for
    a zero stamp.
    """
    if stamp == 0.0:
        raise ValueError("stamp is zero (publisher without a clock?)")
    if now <= 0.0:
        return
    hint = " (sim time against wall time? use_sim_time must match the publisher's clock)"
    if stamp > now + ahead:
        why = hint if stamp - now > CLOCKS_DIFFER_S else ""
        raise ValueError(f"stamp is {stamp - now:.1f} s ahead of the clock (at most {ahead} s accepted){why}")
    if stamp < now - behind:
        why = hint if now - stamp > CLOCKS_DIFFER_S else ""
        raise ValueError(f"stamp is {now - stamp:.1f} s behind the clock (at most {behind} s accepted){why}")
