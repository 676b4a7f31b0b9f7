"""spin_nodes' shutdown: a node's own shutdown is never cut short; the middleware's teardown has a
deadline, past which the process still ends and says where it was stuck; the ROS graph forgets an
ended node at once."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT  # noqa: F401  (sets the loopback-only ROS environment)

NODE = textwrap.dedent(
    """
    import time
    from rclpy.node import Node
    from ami_ros.ros.spin import spin_node

    class Slow(Node):
        def __init__(self):
            super().__init__("slow")
            self.create_timer(0.05, lambda: print("up", flush=True))

        def close(self):  # a recorder finishing its file
            time.sleep({close_s})
            print("closed", flush=True)

        def destroy_node(self):  # stands in for a middleware teardown that never returns
            time.sleep({destroy_s})
            super().destroy_node()

    spin_node(Slow, "slow", teardown_s=1.0)
    raise SystemExit(99)  # never reached: spin_node ends the process
    """
)


def run_and_interrupt(close_s: float, destroy_s: float, ctrl_c: int = 1) -> tuple[int, str, str, float]:
    """Start the node, Ctrl-C it `ctrl_c` times (0.3 s apart); exit code, stdout, stderr, seconds
    from the first Ctrl-C to the exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", NODE.format(close_s=close_s, destroy_s=destroy_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    t0 = time.monotonic()
    for i in range(ctrl_c):
        time.sleep(0.3 if i else 0.0)
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    return proc.returncode, out, err, time.monotonic() - t0


def test_a_clean_shutdown_exits_0_once_close_has_finished_even_past_the_deadline():
    code, out, err, took = run_and_interrupt(close_s=1.5, destroy_s=0.0)
    assert code == 0, err
    assert "closed" in out, out
    assert took >= 1.5, took  # close() ran to its end: the deadline covers only what follows it
    assert "Timeout" not in err, err


def test_a_hung_teardown_ends_the_process_after_its_deadline_with_the_stacks():
    code, out, err, took = run_and_interrupt(close_s=0.0, destroy_s=60.0, ctrl_c=2)
    assert code == 1, err  # not -2: the second Ctrl-C, arriving during the teardown, is ignored
    assert "closed" in out, out
    assert took < 10, took
    assert "Timeout (0:00:01)!" in err and "in destroy_node" in err, err  # faulthandler names it


@pytest.mark.ros
def test_a_lifecycle_node_that_ended_on_ctrl_c_leaves_the_graph_at_once(start_node, ros):
    """The process ends without the interpreter's finalization, so nothing but `destroy_node` takes
    the node out of the graph: not the DDS participant's deletion (its lease is 20 s)."""
    node = start_node("ami_ros.ros.encoder_node", {"autostart": False}, name="encoder_node")
    ros.spin_until(lambda: "encoder_node" in ros.node.get_node_names(), 60.0, "encoder_node in the graph")
    node.popen.send_signal(signal.SIGINT)
    assert node.wait(10) == 0, node.log()
    t0 = time.monotonic()
    ros.spin_until(lambda: "encoder_node" not in ros.node.get_node_names(), 5.0, "encoder_node gone")
    print(f"gone from the graph {time.monotonic() - t0:.2f} s after its process ended")
