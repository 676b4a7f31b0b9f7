"""The one `main()` body every node shares: init, build, start (lifecycle), spin, shut down, exit."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

import rclpy
from rclpy.exceptions import InvalidHandle
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

EXECUTOR_THREADS_ENV = "AMI_ROS_EXECUTOR_THREADS"
"""Environment variable: executor threads for every node process started with it (> 1: rclpy's
MultiThreadedExecutor), over the node's default of 1; `ami-ros bench --stack --executor-threads`
measures the difference."""

TEARDOWN_S = 3.0
"""Longest the middleware's teardown may take once every node has shut itself down (ros2 launch
sends SIGTERM 5 s after its SIGINT)."""


def spin_node(
    make_node: Callable[[], Node],
    name: str,
    args: list[str] | None = None,
    threads: int = 1,
    teardown_s: float = TEARDOWN_S,
) -> NoReturn:
    """Run the node `make_node()` builds until Ctrl-C, SIGTERM or shutdown, then end the process.

    See `spin_nodes`, which this calls with one node.
    """
    spin_nodes([make_node], name, args, threads, teardown_s)


def spin_nodes(
    makers: Sequence[Callable[[], Node]],
    name: str,
    args: list[str] | None = None,
    threads: int = 1,
    teardown_s: float = TEARDOWN_S,
) -> NoReturn:
    """Run the nodes `makers` build in one executor until Ctrl-C, SIGTERM or shutdown, then end
    the process with its exit code: 0, or 1 on an invalid configuration (one FATAL line, no
    traceback) or a teardown past its deadline.

    SIGINT and SIGTERM only set a flag that the spin loop checks between callbacks: rclpy's own
    handler raises KeyboardInterrupt wherever the main thread is, and one raised inside a C++
    call (taking a message) corrupted rclpy's state, crashing the node as it shut down. Lifecycle
    nodes (`ManagedNode`) whose `autostart` parameter is true are configured and activated before
    spinning (a failed configure is an invalid configuration). `threads` > 1 spins a
    MultiThreadedExecutor, for nodes whose callback groups let inputs arrive during a long
    callback.

    Shutting down has two stages. First every node shuts itself down, with no deadline: the
    lifecycle shutdown transition (the planner holds the arm, models are released) and `close()`
    where a node has one (a recorder finishes its file). Then the middleware's teardown (nodes
    destroyed, the context shut down, logs flushed) gets `teardown_s`, enforced by faulthandler's
    watchdog thread, which needs no interpreter lock: past it every thread's stack goes to stderr
    and the process exits with 1. (A node process once outlived ros2 launch's SIGINT and SIGTERM,
    printing nothing, and was killed.) The process ends with `os._exit`, skipping the
    interpreter's finalization, which would delete the DDS participant in whatever order the
    garbage collector reaches it, with no deadline and with signals ignored. `destroy_node` (for
    a ManagedNode, with its lifecycle state machine) has already taken the node's endpoints and
    its entry out of the ROS graph; the participant's DDS lease expires on its own.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    nodes: list[Node] = []
    code = 0
    threads = int(os.environ.get(EXECUTOR_THREADS_ENV) or threads)
    executor = MultiThreadedExecutor(threads) if threads > 1 else SingleThreadedExecutor()
    try:
        for make in makers:
            nodes.append(make())
            executor.add_node(nodes[-1])
        for node in nodes:
            autostart(node)
        while not stop.is_set() and rclpy.ok():
            try:
                executor.spin_once(timeout_sec=POLL_S)
            except InvalidHandle:
                # A lifecycle transition running in a worker thread released an endpoint while
                # this thread was building the wait set from it: build it again without it.
                continue
    except ConfigError as err:
        get_logger(name).fatal(f"invalid configuration: {err}")
        code = 1
    except ExternalShutdownException:
        pass
    except Exception:  # a bug: its traceback, then the same shutdown
        traceback.print_exc()
        code = 1
    finally:
        executor.shutdown(timeout_sec=5.0)  # let a running callback finish before the nodes go
        _retrieve_failed_callbacks(executor)
        for node in reversed(nodes):
            finish(node)
    # A terminal's Ctrl-C reaches both ros2 launch and the node, and launch forwards one more: a
    # signal now must not cut the teardown short (exit -2, "process has died"). The deadline
    # stands in for it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    faulthandler.dump_traceback_later(teardown_s, exit=True)
    for node in reversed(nodes):
        node.destroy_node()
    rclpy.try_shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    """A node's own shutdown: the lifecycle shutdown transition (releases resources), close()."""
    if isinstance(node, ManagedNode) and node.state_label in ("unconfigured", "inactive", "active"):
        node.trigger_shutdown()
    close = getattr(node, "close", None)
    if close is not None:
        close()


def _retrieve_failed_callbacks(executor: Executor) -> None:
    """Collect the outcome of callbacks a MultiThreadedExecutor ran while shutting down.

    A callback queued just before shutdown can fail taking from an entity that is being
    destroyed; its task would otherwise print "The following exception was never retrieved"
    when garbage-collected. Such a failure at shutdown is expected and is not reported.
    """
    for future in getattr(executor, "_futures", ()):
        if future.done():
            future.exception()
