"""The one `main()` body every node shares: init, build, spin, shut down cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node

from ami_ros.config import ConfigError


def spin_node(
    make_node: Callable[[], Node], name: str, args: list[str] | None = None, threads: int = 1
) -> int:
    """Run the node `make_node()` builds until Ctrl-C or shutdown; returns the exit code.

    An invalid configuration is logged as one FATAL line (no traceback) and exits with 1. The
    node's `close()` runs on every exit path (a recorder must finish its file). `threads` > 1 spins
    a MultiThreadedExecutor, for nodes whose callback groups let inputs arrive during a long callback.
    """
    rclpy.init(args=args)
    node, code = None, 0
    executor = MultiThreadedExecutor(threads) if threads > 1 else SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        executor.spin()
    except ConfigError as err:
        get_logger(name).fatal(f"invalid configuration: {err}")
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down from a signal handler, so a callback running at that
        # moment fails to publish, and a SIGINT landing inside a C++ call (taking a message)
        # surfaces as a RuntimeError just before the shutdown: both are clean shutdowns, told
        # apart from real errors by the context being down a moment later.
        time.sleep(0.2)
        if rclpy.ok():
            raise
    finally:
        executor.shutdown(timeout_sec=5.0)  # let a running callback finish before the node goes
        if node is not None:
            node.close()  # type: ignore[attr-defined]
            node.destroy_node()
        rclpy.try_shutdown()
    return code
