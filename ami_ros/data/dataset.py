"""rosbag2 recordings -> synchronised (frame, joint state, action) episodes.

Works on any bag with a camera, joint states and joint-position commands (topic names and
command type from `DataConfig`): the embedded robot's `ami-ros collect` shards, `recorder_node`
bags, or `ros2 bag record -s mcap` on a real robot.

Synchronisation, per command message at stamp t (header stamp; the bag's log time when the
header stamp is zero or the message has no header):
    frame       the latest image with stamp <= t, at most `max_skew` older;
    joints      the joint state nearest t, within `max_skew`; joints matched by name, any order;
    action      command positions − joints (see `ami_ros.data.collect` for how sim data defines it).
Commands without both are dropped; segments (episodes) split at dropped commands and at stamp
gaps above 2.5 × control_period. `actions[t]` leads from frame t to frame t + 1, so the last
action of an episode has no successor frame and training windows
(`ami_ros.world_model.data.WindowDataset`) never use it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ami_ros.config import DataConfig
from ami_ros.core.preprocess import resize_frame
from ami_ros.data import messages as m
from ami_ros.data.bag import BagReader, DatasetError, find_bags, topic_name

COMMAND_TYPES = {"trajectory": m.JOINT_TRAJECTORY, "forward": m.FLOAT64_ARRAY}

__all__ = ["DatasetError", "Episode", "read_bag", "read_episodes", "resize_frame"]


@dataclasses.dataclass
class Episode:
    """One synchronised segment of a bag; T steps, J joints in `DataConfig.joint_names` order."""

    frames: np.ndarray  # (T, S, S, 3) uint8 RGB
    joints: np.ndarray  # (T, J) float32 joint positions, rad
    actions: np.ndarray  # (T, J) float32 command − joints; actions[t] leads from step t to t + 1
    stamps: np.ndarray  # (T,) int64 command stamps, ns
    block_xy: np.ndarray | None = None  # (T, 2) float32 ground-truth block position (probes only)
    end_effector: np.ndarray | None = None  # (T, 3) float32 ground-truth end effector (probes only)
    source: str = ""  # bag path

    def __len__(self) -> int:
        return len(self.stamps)

    def as_dict(self) -> dict[str, np.ndarray]:
        """`frames`, `joints`, `actions` (and `block_xy` when recorded): `ami_ros.world_model.data`'s
        episode layout."""
        out = {"frames": self.frames, "joints": self.joints, "actions": self.actions}
        if self.block_xy is not None:
            out["block_xy"] = self.block_xy
        return out


def read_episodes(path: str | Path, config: DataConfig | None = None) -> list[Episode]:
    """Episodes of every bag at `path` (a bag directory, or a directory of bag shards)."""
    return [ep for bag in find_bags(path) for ep in read_bag(bag, config)]


def read_bag(path: str | Path, config: DataConfig | None = None) -> list[Episode]:
    """Synchronised episodes of one bag directory.

    Raises:
        DatasetError: the bag is missing, truncated or corrupt; a required topic is missing or has
            the wrong type; joints are missing; too few commands can be synchronised.
    """
    config = config or DataConfig()
    path = Path(path)
    with BagReader(path) as bag:
        streams = _read_streams(bag, path, config)
    return _synchronise(streams, path, config)


# ------------------------------------------------------------------------------------ reading
def _stamp(msg: Any, log_time: int) -> int:
    header = getattr(msg, "header", None)
    stamp = m.stamp_ns(msg) if header is not None else 0
    return stamp or log_time


def _check_topics(bag: BagReader, path: Path, config: DataConfig) -> dict[str, str]:
    """The topics to read, by role; raises if a required one is missing or of the wrong type."""
    present = bag.topics
    listing = ", ".join(f"{t} ({typ}, {n} msgs)" for t, (typ, n) in sorted(present.items())) or "none"
    required = {
        "image": (config.image_topic, (m.IMAGE,)),
        "joints": (config.joint_state_topic, (m.JOINT_STATE,)),
        "command": (config.command_topic, (COMMAND_TYPES[config.command_type],)),
    }
    roles = {}
    for role, (name, types) in required.items():
        topic = topic_name(name)
        if topic not in present:
            raise DatasetError(f"bag {path} has no topic {topic} (the {role} topic); it has: {listing}")
        if present[topic][0] not in types:
            raise DatasetError(
                f"bag {path}: topic {topic} has type {present[topic][0]}, expected {types[0]}"
                + (" (set command_type)" if role == "command" else "")
            )
        roles[role] = topic
    for role, name in (("object", config.object_topic), ("end_effector", config.end_effector_topic)):
        topic = topic_name(name)
        if present.get(topic, ("", 0))[0] == m.POSE_STAMPED:
            roles[role] = topic
    return roles


def _read_streams(bag: BagReader, path: Path, config: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """role -> (stamps (N,) int64 ns, values (N, ...)), each sorted by stamp."""
    roles = _check_topics(bag, path, config)
    by_topic = {topic: role for role, topic in roles.items()}
    joint_index = {name: i for i, name in enumerate(config.joint_names)}
    data: dict[str, tuple[list[int], list[Any]]] = {role: ([], []) for role in roles}
    skipped = {"joints": 0, "command": 0}
    last_problem = {"joints": "", "command": ""}
    for topic, log_time, msg in bag.messages(list(by_topic)):
        role = by_topic[topic]
        if role == "image":
            try:
                value = resize_frame(m.image_to_rgb(msg), config.image_size)
            except ValueError as err:
                raise DatasetError(f"bag {path}, topic {topic}: {err}") from None
        elif role in ("joints", "command"):
            value, problem = _joint_vector(msg, role, joint_index, config)
            if value is None:
                skipped[role] += 1
                last_problem[role] = problem
                continue
        else:
            p = msg.pose.position
            value = np.array([p.x, p.y, p.z])
        data[role][0].append(_stamp(msg, log_time))
        data[role][1].append(value)
    for role in ("joints", "command"):
        if not data[role][0]:
            raise DatasetError(
                f"bag {path}: no usable message on {roles[role]} "
                f"({skipped[role]} skipped, the last for: {last_problem[role]})"
            )
    streams = {}
    for role, (stamps, values) in data.items():
        if not stamps:
            continue
        order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
        streams[role] = (np.asarray(stamps, dtype=np.int64)[order], np.stack(values)[order])
    return streams


def _joint_vector(
    msg: Any, role: str, joint_index: dict[str, int], config: DataConfig
) -> tuple[np.ndarray | None, str]:
    """Positions of `config.joint_names` from a JointState / JointTrajectory / Float64MultiArray."""
    if role == "command" and config.command_type == "forward":
        values = np.asarray(msg.data, dtype=float)
        if len(values) != len(joint_index):
            return None, f"{len(values)} values for {len(joint_index)} joints {list(joint_index)}"
        return values, ""
    if role == "joints":
        names, values = list(msg.name), np.asarray(msg.position, dtype=float)
    else:
        if not msg.points:
            return None, "an empty trajectory"
        names, values = list(msg.joint_names), np.asarray(msg.points[0].positions, dtype=float)
    if len(names) != len(values):
        return None, f"{len(names)} names but {len(values)} positions"
    lookup = dict(zip(names, values, strict=True))
    missing = [n for n in joint_index if n not in lookup]
    if missing:
        return None, f"joints {missing} missing (message has {names})"
    return np.array([lookup[n] for n in joint_index]), ""


# ------------------------------------------------------------------------------------ sync
def _nearest(stamps: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the stamp nearest each t and |difference| (ns)."""
    right = np.clip(np.searchsorted(stamps, t), 0, len(stamps) - 1)
    left = np.clip(right - 1, 0, len(stamps) - 1)
    use_left = np.abs(t - stamps[left]) <= np.abs(stamps[right] - t)
    idx = np.where(use_left, left, right)
    return idx, np.abs(stamps[idx] - t)


def _synchronise(
    streams: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, config: DataConfig
) -> list[Episode]:
    t, commands = streams["command"]
    img_t, frames = streams["image"]
    joint_t, joints = streams["joints"]
    skew = round(config.max_skew * 1e9)
    img_idx = np.searchsorted(img_t, t, side="right") - 1  # latest frame at or before t
    img_age = np.where(img_idx >= 0, t - img_t[np.maximum(img_idx, 0)], np.iinfo(np.int64).max)
    joint_idx, joint_dt = _nearest(joint_t, t)
    ok = (img_age <= skew) & (joint_dt <= skew)
    if ok.mean() < config.min_synced_fraction or not ok.any():
        ages = img_age[img_idx >= 0]
        age = f"{np.median(ages) * 1e-9:.3f} s" if len(ages) else "none: every frame is later"
        raise DatasetError(
            f"bag {path}: only {int(ok.sum())} of {len(t)} commands could be synchronised within max_skew = "
            f"{config.max_skew} s: {int((img_age > skew).sum())} had no earlier frame that recent (median "
            f"age of the latest earlier frame {age}), "
            f"{int((joint_dt > skew).sum())} no joint state (median {np.median(joint_dt) * 1e-9:.3f} s). "
            "Check that the topics share a clock (use_sim_time) or raise max_skew."
        )
    gap = np.diff(t) > round(2.5 * config.control_period * 1e9)
    # A new segment starts after a gap, and at every synced command that follows a dropped one.
    breaks = np.r_[True, gap | ~ok[:-1]]
    segment = np.cumsum(breaks) - 1
    truth = {}
    for role in ("object", "end_effector"):
        if role in streams:
            idx, dt = _nearest(streams[role][0], t)
            values = streams[role][1][idx].astype(np.float32)
            values[dt > skew] = np.nan
            truth[role] = values
    episodes = []
    for seg in np.unique(segment[ok]):
        sel = ok & (segment == seg)
        q = joints[joint_idx[sel]]
        episodes.append(
            Episode(
                frames=frames[img_idx[sel]],
                joints=q.astype(np.float32),
                actions=(commands[sel] - q).astype(np.float32),
                stamps=t[sel],
                block_xy=truth["object"][sel, :2] if "object" in truth else None,
                end_effector=truth["end_effector"][sel] if "end_effector" in truth else None,
                source=str(path),
            )
        )
    return episodes
