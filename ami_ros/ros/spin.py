"""The one `main()` body every node shares: init, build, start (lifecycle), spin, shut down cleanly."""

from __future__ import annotations

import faulthandler
import signal
import threading
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ami_ros.config import ConfigError
from ami_ros.ros.lifecycle import ManagedNode

POLL_S = 0.1
"""Longest wait between looks at the stop flag (how long Ctrl-C may take to be noticed)."""


def spin_node(
    make_node: Callable[[], Node],
    name: str,
    args: list[str] | None = None,
    threads: int = 1,
    teardown_s: float | None = None,
) -> int:
    """Run the node `make_node()` builds until Ctrl-C, SIGTERM or shutdown; returns the exit code.

    See `spin_nodes`, which this calls with one node.
    """
    return spin_nodes([make_node], name, args, threads, teardown_s)


def spin_nodes(
    makers: Sequence[Callable[[], Node]],
    name: str,
    args: list[str] | None = None,
    threads: int = 1,
    teardown_s: float | None = None,
) -> int:
    """Run the nodes `makers` build in one executor until Ctrl-C, SIGTERM or shutdown.

    SIGINT and SIGTERM only set a flag that the spin loop checks between callbacks: rclpy's own
    handler raises KeyboardInterrupt wherever the main thread is, and one raised inside a C++
    call (taking a message) corrupted rclpy's state, crashing the node as it shut down. An
    invalid configuration is logged as one FATAL line (no traceback) and exits with 1. Lifecycle
    nodes (`ManagedNode`) whose `autostart` parameter is true are configured and activated before
    spinning (a failed configure is an invalid configuration), and shut down (resources released)
    on exit. Every node's `close()`, if it has one, runs on every exit path (a recorder must
    finish its file). `threads` > 1 spins a MultiThreadedExecutor, for nodes whose callback
    groups let inputs arrive during a long callback. With `teardown_s`, a shutdown that takes
    longer than that ends the process with exit code 1 after printing every thread's stack to
    stderr (Python's faulthandler, whose watchdog thread needs no interpreter lock): a node with
    nothing to save stops promptly even if the middleware's teardown hangs, and says where.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    nodes: list[Node] = []
    code = 0
    executor = MultiThreadedExecutor(threads) if threads > 1 else SingleThreadedExecutor()
    try:
        for make in makers:
            nodes.append(make())
            executor.add_node(nodes[-1])
        for node in nodes:
            autostart(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=POLL_S)
    except ConfigError as err:
        get_logger(name).fatal(f"invalid configuration: {err}")
        code = 1
    except ExternalShutdownException:
        pass
    finally:
        if teardown_s is not None:
            faulthandler.dump_traceback_later(teardown_s, exit=True)
        executor.shutdown(timeout_sec=5.0)  # let a running callback finish before the nodes go
        _retrieve_failed_callbacks(executor)
        for node in reversed(nodes):
            finish(node)
        rclpy.try_shutdown()
        # The interpreter's own shutdown (seconds under load) resets Python-set handlers to the
        # default, so a second Ctrl-C then (a terminal's SIGINT reaches both ros2 launch and the
        # node, and launch forwards one more) killed the process (exit -2, "process has died").
        # Ignored signals are left alone; the process is on its way out.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        faulthandler.cancel_dump_traceback_later()
    return code


def autostart(node: Node) -> None:
    """Configure and activate a ManagedNode whose `autostart` is true.

    Raises:
        ConfigError: configure failed (the message is the node's reason).
    """
    if not isinstance(node, ManagedNode) or not node.get_parameter("autostart").value:
        return
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise ConfigError(node.config_error or f"{node.get_name()}: configure failed")
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise ConfigError(f"{node.get_name()}: activate failed")


def finish(node: Node) -> None:
    """Shut a node down: the lifecycle shutdown transition (releases resources), close(), destroy."""
    if isinstance(node, ManagedNode) and node.state_label in ("unconfigured", "inactive", "active"):
        node.trigger_shutdown()
    close = getattr(node, "close", None)
    if close is not None:
        close()
    node.destroy_node()


def _retrieve_failed_callbacks(executor: Executor) -> None:
    """Collect the outcome of callbacks a MultiThreadedExecutor ran while shutting down.

    A callback queued just before shutdown can fail taking from an entity that is being
    destroyed; its task would otherwise print "The following exception was never retrieved"
    when garbage-collected. Such a failure at shutdown is expected and is not reported.
    """
    for future in getattr(executor, "_futures", ()):
        if future.done():
            future.exception()
