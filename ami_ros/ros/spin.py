"""The one `main()` body every node shares: init, build, spin, shut down cleanly."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ami_ros.config import ConfigError

POLL_S = 0.1
"""Longest wait between looks at the stop flag (how long Ctrl-C may take to be noticed)."""


def spin_node(
    make_node: Callable[[], Node], name: str, args: list[str] | None = None, threads: int = 1
) -> int:
    """Run the node `make_node()` builds until Ctrl-C, SIGTERM or shutdown; returns the exit code.

    SIGINT and SIGTERM only set a flag that the spin loop checks between callbacks: rclpy's own
    handler raises KeyboardInterrupt wherever the main thread is, and one raised inside a C++
    call (taking a message) corrupted rclpy's state, crashing the node as it shut down. An
    invalid configuration is logged as one FATAL line (no traceback) and exits with 1. The node's
    `close()` runs on every exit path (a recorder must finish its file). `threads` > 1 spins a
    MultiThreadedExecutor, for nodes whose callback groups let inputs arrive during a long callback.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node, code = None, 0
    executor = MultiThreadedExecutor(threads) if threads > 1 else SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=POLL_S)
    except ConfigError as err:
        get_logger(name).fatal(f"invalid configuration: {err}")
        code = 1
    except ExternalShutdownException:
        pass
    finally:
        executor.shutdown(timeout_sec=5.0)  # let a running callback finish before the node goes
        if node is not None:
            node.close()  # type: ignore[attr-defined]
            node.destroy_node()
        rclpy.try_shutdown()
    return code
