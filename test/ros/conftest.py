"""Fixtures for ROS tests: real node processes and a test-side rclpy node on a private DDS domain.

Every process talks DDS over loopback only (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; no multicast
on the network) in a domain of its own per test session, so parallel runs do not cross.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_ID = 1 + os.getpid() % 100  # 1..100: never the default domain 0
ROS_ENV = {
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    "ROS_LOCALHOST_ONLY": "1",
    "ROS_DOMAIN_ID": str(DOMAIN_ID),
    "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
}
os.environ.update(ROS_ENV)  # the test process itself joins the same loopback-only domain


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) for v in value) + "]"
    return str(value)


class NodeProcess:
    """A node started as `python -m <module> --ros-args [ros_args] -p k:=v ...`, output in `log_path`."""

    def __init__(
        self, module: str, params: dict[str, Any], log_path: Path, ros_args: tuple[str, ...] = ()
    ) -> None:
        self.log_path = log_path
        args = [sys.executable, "-m", module, "--ros-args", *ros_args]
        for key, value in params.items():
            args += ["-p", f"{key}:={_param_text(value)}"]
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {
            **os.environ,
            **ROS_ENV,
            "PYTHONPATH": pythonpath,
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
        }
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            pytest.fail(f"node exited with code {self.popen.returncode}; log:\n{self.log()}")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> int:
        """SIGINT (a clean shutdown), then kill after 10 s; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


class RosHarness:
    """A test-side rclpy node in its own context: subscribe, publish, call and spin until a condition."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node("ros_test_harness", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.watched: NodeProcess | None = None  # checked for crashes while spinning
        self._settled: set[int] = set()  # clients whose server has had time to discover them

    def subscribe(self, msg_type: type, topic: str, qos: Any = 10, keep: int = 200) -> list:
        """Subscribe; returns a list that receives the messages (the last `keep` of them)."""
        received: list = []

        def callback(msg: Any) -> None:
            received.append(msg)
            del received[:-keep]

        self.node.create_subscription(msg_type, topic, callback, qos)
        return received

    def spin_until(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Spin until `condition()` is truthy and return its value; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if self.watched is not None:
                self.watched.check_alive()
            if time.monotonic() > deadline:
                log = f"\nnode log:\n{self.watched.log()}" if self.watched else ""
                pytest.fail(f"timed out after {timeout} s waiting for {what}{log}")
            self.executor.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def call(self, client: Any, request: Any, timeout: float = 10.0) -> Any:
        """Call a service and wait for its answer.

        `service_is_ready()` says the client has discovered the server, not that the server has
        discovered the client's response reader: Fast DDS drops a response it cannot deliver
        within 100 ms ("failed to send response (timeout)"), which a busy machine reaches when
        the first request follows discovery at once. So a client's first call waits a second more.
        """
        self.spin_until(lambda: client.service_is_ready(), timeout, f"service {client.srv_name}")
        if id(client) not in self._settled:
            self.spin_for(1.0)
            self._settled.add(id(client))
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"a response from {client.srv_name}")
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture(scope="module")
def ros() -> Iterator[RosHarness]:
    pytest.importorskip("rclpy")
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def sim_node_params() -> dict[str, Any]:
    """Parameters of the module's sim_node process; override in a test module to change them."""
    return {}


@pytest.fixture(scope="module")
def start_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., NodeProcess]]:
    """Factory: start a node process; every process still running at teardown must exit cleanly."""
    started: list[NodeProcess] = []

    def start(
        module: str, params: dict[str, Any], name: str = "node", ros_args: tuple[str, ...] = ()
    ) -> NodeProcess:
        log_path = tmp_path_factory.mktemp("ros_logs") / f"{name}.log"
        started.append(NodeProcess(module, params, log_path, ros_args))
        return started[-1]

    yield start
    failures = []
    for proc in started:
        was_running = proc.popen.poll() is None
        code = proc.stop()
        if was_running and code != 0:
            failures.append(f"{proc.log_path.name} exited with {code} on SIGINT; log:\n{proc.log()}")
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def sim_node(
    start_node: Callable[..., NodeProcess], sim_node_params: dict[str, Any], ros: RosHarness
) -> NodeProcess:
    """A running `sim_node` process (module-scoped: start-up takes a few seconds), publishing."""
    from sensor_msgs.msg import JointState

    proc = start_node("ami_ros.ros.sim_node", sim_node_params, name="sim_node")
    ros.watched = proc
    ready = ros.subscribe(JointState, "joint_states", keep=1)
    ros.spin_until(lambda: ready, 60.0, "sim_node's first joint_states")
    return proc


SHARED_ROS2_ENV = ROOT.parent / "shared" / "ros2-user-env"


class Ros2Install:
    """A ROS 2 user's install built by ../shared/ros2-user-env/setup.sh: an underlay standing in
    for /opt/ros/kilted and a colcon workspace with a copy of this checkout (`ws/install`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def shell(self, command: str, workspace: str = "ws") -> list[str]:
        """argv running `command` in bash after sourcing the workspace's setup.bash."""
        return ["bash", "-c", f"source {self.root / workspace}/install/setup.bash && {command}"]

    def env(self) -> dict[str, str]:
        return {**os.environ, **ROS_ENV, "PYTHONUNBUFFERED": "1"}

    def run(self, command: str, timeout: float = 60.0, workspace: str = "ws") -> str:
        out = subprocess.run(
            self.shell(command, workspace), capture_output=True, text=True, timeout=timeout, env=self.env()
        )
        assert out.returncode == 0, f"{command} failed ({out.returncode}):\n{out.stdout}{out.stderr}"
        return out.stdout


@pytest.fixture(scope="session")
def ros2_install(tmp_path_factory: pytest.TempPathFactory) -> Ros2Install:
    """Built once per test session (~1 min); skipped where ../shared/ros2-user-env is missing."""
    setup = SHARED_ROS2_ENV / "setup.sh"
    if not setup.is_file():
        pytest.skip(f"no ROS 2 user environment: {setup} is missing (it exists in CI)")
    root = tmp_path_factory.mktemp("ros2_user_env")
    out = subprocess.run(
        ["bash", str(setup), str(root), str(ROOT)],
        capture_output=True, text=True, timeout=900, env={**os.environ, **ROS_ENV},
    )  # fmt: skip
    if out.returncode != 0:
        pytest.fail(f"{setup} failed ({out.returncode}):\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return Ros2Install(root)
