"""rosbag2 MCAP bags without a ROS runtime: the format `ros2 bag record -s mcap` writes, and reading it.

A bag is a directory holding `metadata.yaml` and one `.mcap` file: MCAP profile `ros2`, messages
CDR-encoded, one `ros2msg` schema per message type (the full definition, dependencies appended
after `=====` separators, as rosbag2 stores them) and the type's RIHS01 hash in the metadata.
Writing goes through `rosbags.rosbag2.Writer` (storage plugin MCAP, chunks compressed with zstd
or lz4), so `ros2 bag info/play`, the `mcap` CLI, Foxglove and rosbags all read the result.

Messages are rosbags message objects (see `ami_ros.data.messages`) or, for the recorder node,
already serialized CDR bytes as they arrived from the middleware.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime as _QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

log = logging.getLogger(__name__)

COMPRESSIONS = ("zstd", "lz4", "none")


class DatasetError(ValueError):
    """A bag cannot be read or turned into training data; the message names the file and problem."""


@functools.cache
def typestore() -> Typestore:
    """The shared rosbags typestore of ROS 2 Kilted's standard message types (built once)."""
    return get_typestore(Stores.ROS2_KILTED)


def default_qos(reliable: bool = True, depth: int = 10, transient_local: bool = False) -> Qos:
    """An offered-QoS profile for the metadata (what `ros2 bag play` re-publishes with)."""
    zero = _QosTime(0, 0)  # rosbag2's "default" for deadline, lifespan and lease duration
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


def topic_name(name: str) -> str:
    """Fully qualified topic name, as rosbag2 stores it (`joint_states` -> `/joint_states`)."""
    return "/" + name.lstrip("/")


class BagWriter:
    """Writes one rosbag2 MCAP bag directory; use as a context manager or call `close()`.

    Example:
        with BagWriter("out/bag") as bag:
            bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
            bag.write("/joint_states", stamp_ns, msg)       # a rosbags message object
            bag.write_raw("/joint_states", stamp_ns, cdr)   # or serialized CDR bytes

    Args:
        path: the bag directory to create (must not exist).
        compression: MCAP chunk compression, `zstd` (default), `lz4` or `none`.
        custom_data: string key/values stored in metadata.yaml's `custom_data`.
    """

    def __init__(
        self, path: str | Path, compression: str = "zstd", custom_data: dict[str, str] | None = None
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        self.path = Path(path)
        self.typestore = typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        if compression != "none":  # chunk compression inside the MCAP file, as rosbag2's presets do
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._writer.open()
        if compression == "lz4":  # rosbags only offers zstd; its MCAP storage takes any compressor
            import lz4.frame

            storage: Any = self._writer.storage
            storage.compression, storage.compressor = "lz4", lz4.frame.compress
        self._connections: dict[str, Connection] = {}
        self.closed = False

    def add_topic(
        self,
        topic: str,
        msgtype: str,
        msgdef: str | None = None,
        type_hash: str | None = None,
        qos: Sequence[Qos] | None = None,
    ) -> None:
        """Declare a topic. `msgtype` like `sensor_msgs/msg/Image`; its definition and RIHS01 hash
        come from the typestore unless `msgdef` and `type_hash` are given.

        Raises:
            KeyError: `msgtype` is unknown to the typestore and no definition was given.
        """
        topic = topic_name(topic)
        if topic in self._connections:
            raise ValueError(f"topic {topic} was already added to {self.path}")
        if (msgdef is None or type_hash is None) and msgtype not in self.typestore.fielddefs:
            raise KeyError(f"message type {msgtype} is unknown to the typestore; pass msgdef and type_hash")
        self._connections[topic] = self._writer.add_connection(
            topic,
            msgtype,
            typestore=self.typestore,
            msgdef=msgdef,
            rihs01=type_hash,
            offered_qos_profiles=list(qos) if qos is not None else [default_qos()],
        )

    def write(self, topic: str, stamp_ns: int, msg: object) -> None:
        """Serialize a rosbags message object to CDR and write it with log time `stamp_ns`."""
        conn = self._connection(topic)
        self._writer.write(conn, int(stamp_ns), self.typestore.serialize_cdr(msg, conn.msgtype))

    def write_raw(self, topic: str, stamp_ns: int, data: bytes | memoryview) -> None:
        """Write already-serialized CDR bytes (for example from an rclpy `raw=True` subscription)."""
        self._writer.write(self._connection(topic), int(stamp_ns), data)

    def set_custom_data(self, key: str, value: str) -> None:
        """Store a string in metadata.yaml's `custom_data` (any time before `close()`)."""
        self._writer.set_custom_data(key, value)

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages written so far, per topic."""
        return {t: self._writer.counts[c.id] for t, c in self._connections.items()}

    @property
    def topics(self) -> dict[str, str]:
        """Declared topics and their message types."""
        return {t: c.msgtype for t, c in self._connections.items()}

    def close(self) -> None:
        """Finish the MCAP file (summary, index) and write metadata.yaml; idempotent."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def _connection(self, topic: str) -> Connection:
        try:
            return self._connections[topic_name(topic)]
        except KeyError:
            raise KeyError(f"topic {topic_name(topic)} was not added to {self.path}") from None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Finalize even on errors or Ctrl-C: what was written stays a valid, indexed bag.
        self.close()


def find_bags(path: str | Path) -> list[Path]:
    """Bag directories at `path`: the bag itself, or its sub-directories holding a metadata.yaml
    (a sharded collection), sorted by name.

    Raises:
        DatasetError: `path` does not exist or holds no bag.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".mcap":
        path = path.parent
    if (path / "metadata.yaml").is_file():
        return [path]
    if not path.exists():
        raise DatasetError(f"{path}: no such bag or directory")
    bags = sorted(p.parent for p in path.glob("*/metadata.yaml"))
    if not bags:
        raise DatasetError(f"{path}: no rosbag2 bag here (no metadata.yaml in it or its sub-directories)")
    return bags


def _storage_files(bag: Path) -> str:
    return ", ".join(str(p) for p in sorted(bag.glob("*.mcap")) + sorted(bag.glob("*.db3"))) or str(bag)


class BagReader:
    """Reads one rosbag2 bag (MCAP or sqlite3) with rosbags; errors become `DatasetError`s.

    Example:
        with BagReader(path) as bag:
            print(bag.topics)  # {'/joint_states': ('sensor_msgs/msg/JointState', 500)}
            for topic, log_time_ns, msg in bag.messages(["/joint_states"]):
                ...
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader = AnyReader([self.path], default_typestore=typestore())

    def __enter__(self) -> BagReader:
        try:
            self._reader.open()
        except Exception as err:  # rosbags raises several unrelated types for damaged files
            raise DatasetError(
                f"cannot open bag {_storage_files(self.path)}: {err} (a truncated or corrupt file, or a "
                "recording that was not stopped cleanly; `ros2 bag reindex` can repair the latter)"
            ) from err
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    @property
    def topics(self) -> dict[str, tuple[str, int]]:
        """Topic name -> (message type, message count)."""
        return {name: (info.msgtype or "?", info.msgcount) for name, info in self._reader.topics.items()}

    def messages(self, topics: Sequence[str]) -> Iterator[tuple[str, int, Any]]:
        """(topic, log time ns, deserialized message) of `topics`, in log-time order."""
        wanted = {topic_name(t) for t in topics}
        conns = [c for c in self._reader.connections if c.topic in wanted]
        try:
            for conn, log_time, raw in self._reader.messages(connections=conns):
                yield conn.topic, log_time, self._reader.deserialize(raw, conn.msgtype)
        except DatasetError:
            raise
        except Exception as err:
            raise DatasetError(f"cannot read {_storage_files(self.path)}: {err} (corrupt file?)") from err
