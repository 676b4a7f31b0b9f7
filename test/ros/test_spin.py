"""spin_nodes' teardown deadline: a node whose shutdown hangs still ends its process, and says where."""

import signal
import subprocess
import sys
import textwrap
import time

from conftest import ROOT  # noqa: F401  (sets the loopback-only ROS environment)

HANGS = textwrap.dedent(
    """
    import time
    from rclpy.node import Node
    from ami_ros.ros.spin import spin_node

    class Stuck(Node):
        def __init__(self):
            super().__init__("stuck")
            self.create_timer(0.05, lambda: print("up", flush=True))

        def close(self):
            time.sleep(60)  # stands in for a middleware teardown that never returns

    raise SystemExit(spin_node(Stuck, "stuck", teardown_s={teardown}))
    """
)


def run_and_interrupt(teardown: float) -> tuple[int, str, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGS.format(teardown=teardown)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    return proc.returncode, err, time.monotonic() - t0


def test_a_hung_teardown_ends_the_process_after_its_deadline_with_the_stacks():
    code, err, took = run_and_interrupt(1.0)
    assert code == 1, err
    assert took < 10, took
    assert "Timeout (0:00:01)!" in err and "in close" in err, err  # faulthandler's dump names the frame
