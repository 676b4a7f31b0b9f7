"""Named goals on disk: a latent and its joint positions under a name, kept across restarts.

One `<name>.npz` file per goal in the memory's folder, written atomically (a crash never leaves a
half-written goal), so goals saved on one run of the planner are there on the next.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Goal:
    name: str
    latent: np.ndarray
    """(L, D) float32 latent of the goal state."""
    joints: np.ndarray
    """(J,) joint positions of the goal, rad (measured when saved; estimated for goal images)."""


class GoalMemory:
    """Goals saved under names in `folder` (created on first save)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(
                f"invalid goal name {name!r}: use 1-64 letters, digits, '_', '-' or '.' (not first)"
            )
        return self.folder / f"{name}.npz"

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.npz")) if self.folder.is_dir() else []

    def save(self, goal: Goal) -> Path:
        path = self._path(goal.name)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, latent=goal.latent.astype(np.float32), joints=goal.joints.astype(np.float32))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load(self, name: str, latent_shape: tuple[int, ...], n_joints: int) -> Goal:
        """Raises KeyError (unknown name) or ValueError (unreadable, or saved for another model)."""
        path = self._path(name)
        if not path.is_file():
            raise KeyError(f"no goal named {name!r} in {self.folder} (known: {self.names()})")
        try:
            with np.load(path) as data:
                latent, joints = data["latent"], data["joints"]
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"goal file {path} is unreadable: {err}") from None
        if latent.shape != tuple(latent_shape) or joints.shape != (n_joints,):
            raise ValueError(
                f"goal {name!r} has latent {latent.shape} and {joints.shape[0]} joints; the model needs "
                f"{tuple(latent_shape)} and {n_joints} (saved with another model?)"
            )
        return Goal(name, latent, joints)
