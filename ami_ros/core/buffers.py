"""Time-indexed buffers of sensor data (numpy only): pairing by stamp, latent histories.

Stamps are float seconds of whatever clock the messages carry (simulated or wall time); the
buffers only compare stamps with each other, never with a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np


class JointStateBuffer:
    """Recent joint positions in a fixed joint order, matched by name from messages in any order.

    Args:
        joint_names: the order positions are returned in (the model's).
        capacity: how many messages are kept.
    """

    def __init__(self, joint_names: Sequence[str], capacity: int = 64) -> None:
        self.joint_names = list(joint_names)
        self._entries: deque[tuple[float, np.ndarray]] = deque(maxlen=capacity)

    def add(self, stamp: float, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """Store one JointState; returns its positions in `joint_names` order.

        Raises:
            ValueError: a joint is missing or named twice, names and positions differ in length,
                or a position is not finite (the message names the joints).
        """
        if len(names) != len(positions):
            raise ValueError(f"joint_states has {len(names)} names but {len(positions)} positions")
        index = {n: i for i, n in enumerate(names)}
        if len(index) != len(names):
            duplicates = sorted({n for n in names if list(names).count(n) > 1})
            raise ValueError(f"joint_states has duplicate joint name(s) {duplicates}")
        missing = [n for n in self.joint_names if n not in index]
        if missing:
            raise ValueError(f"joint_states lacks joint(s) {missing} (has {list(names)})")
        q = np.array([positions[index[n]] for n in self.joint_names], dtype=np.float64)
        if not np.all(np.isfinite(q)):
            bad = [n for n, v in zip(self.joint_names, q, strict=True) if not np.isfinite(v)]
            raise ValueError(f"joint_states has non-finite position(s) for {bad}")
        if self._entries and stamp < self._entries[-1][0]:
            self._entries.clear()  # the clock jumped back (sim reset, bag loop): older data is void
        self._entries.append((stamp, q))
        return q

    def latest(self) -> tuple[float, np.ndarray] | None:
        return self._entries[-1] if self._entries else None

    def nearest(self, stamp: float, max_skew: float) -> np.ndarray | None:
        """Positions of the message whose stamp is closest to `stamp`, if within `max_skew` s."""
        if not self._entries:
            return None
        t, q = min(self._entries, key=lambda e: abs(e[0] - stamp))
        return q if abs(t - stamp) <= max_skew else None


class LatentHistory:
    """Recent latents by stamp; builds the predictor's history at the model's control period.

    Latents arrive at camera rate; the model was trained on latents one control period apart, so
    a history is the newest latent plus, going back one period at a time, the latent nearest each
    earlier instant (within half a period).
    """

    def __init__(self, capacity: int = 64) -> None:
        self._stamps: deque[float] = deque(maxlen=capacity)
        self._latents: deque[np.ndarray] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self) -> None:
        self._stamps.clear()
        self._latents.clear()

    def add(self, stamp: float, latent: np.ndarray) -> None:
        if self._stamps and stamp <= self._stamps[-1]:
            if stamp == self._stamps[-1]:
                return  # a duplicate
            self.clear()  # the clock jumped back
        self._stamps.append(stamp)
        self._latents.append(latent)

    def latest(self) -> tuple[float, np.ndarray] | None:
        return (self._stamps[-1], self._latents[-1]) if self._stamps else None

    def nearest(self, stamp: float, tolerance: float) -> tuple[float, np.ndarray] | None:
        if not self._stamps:
            return None
        i = int(np.argmin(np.abs(np.asarray(self._stamps) - stamp)))
        return (self._stamps[i], self._latents[i]) if abs(self._stamps[i] - stamp) <= tolerance else None

    def history(self, length: int, period: float) -> tuple[float, np.ndarray] | None:
        """(stamp of the newest, (length, L, D) oldest first) or None when no latent is stored.

        An instant with no latent within half a period (start-up, dropped frames) repeats the
        next newer one, as training pads the start of an episode.
        """
        newest = self.latest()
        if newest is None:
            return None
        stamp, latent = newest
        out = [latent]
        for k in range(1, length):
            found = self.nearest(stamp - k * period, period / 2)
            out.append(found[1] if found is not None else out[-1])
        return stamp, np.stack(out[::-1])
