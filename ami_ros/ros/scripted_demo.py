"""A scripted demo of the embedded robot over ROS 2: sim_node runs as its own process, and a
driver node here resets episodes, sends each episode's goal pose to arm_controller as a
JointTrajectory, and measures over the topics where the end effector ends up.

It exercises the whole robot interface (reset service, trajectory controller, joint_states,
camera, ground-truth poses, /clock) with a privileged controller that is told the goal joint
pose; the world-model planner replaces it in the full stack.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ami_ros.config import SimConfig
from ami_ros.ros import conversions as conv
from ami_ros.sim import ArmSim

REACHED_M = 0.02  # an episode succeeds when the end effector ends within this of the goal


class DemoDriver(Node):
    """Collects what the robot publishes and sends trajectories; the episode logic is in run_demo."""

    def __init__(self) -> None:
        super().__init__("ami_demo_driver")
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        camera = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.sim_time = 0.0
        self.frames: list[tuple[float, np.ndarray]] = []
        self.goal_image: np.ndarray | None = None
        self.joint_state: JointState | None = None
        self.end_effector: np.ndarray | None = None
        self.goal_position: np.ndarray | None = None
        self.create_subscription(Clock, "/clock", self._on_clock, 10)
        self.create_subscription(Image, "camera/image_raw", self._on_image, camera)
        self.create_subscription(Image, "sim/goal_image", self._on_goal_image, latched)
        self.create_subscription(JointState, "joint_states", self._on_joints, 10)
        self.create_subscription(PoseStamped, "sim/end_effector_pose", self._on_ee, 10)
        self.create_subscription(PoseStamped, "sim/goal_pose", self._on_goal_pose, latched)
        self.trajectory_pub = self.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", 10)
        self.reset_client = self.create_client(Trigger, "sim/reset")

    def _on_clock(self, msg: Clock) -> None:
        self.sim_time = conv.to_seconds(msg.clock)

    def _on_image(self, msg: Image) -> None:
        self.frames.append((conv.to_seconds(msg.header.stamp), conv.image_to_numpy(msg).copy()))

    def _on_goal_image(self, msg: Image) -> None:
        self.goal_image = conv.image_to_numpy(msg).copy()

    def _on_joints(self, msg: JointState) -> None:
        self.joint_state = msg

    def _on_ee(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.end_effector = np.array([p.x, p.y, p.z])

    def _on_goal_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.goal_position = np.array([p.x, p.y, p.z])

    def send_trajectory(self, names: tuple[str, ...], positions: np.ndarray, duration: float) -> None:
        point = JointTrajectoryPoint(positions=[float(q) for q in positions])
        point.time_from_start = Duration(sec=int(duration), nanosec=int((duration % 1) * 1e9))
        self.trajectory_pub.publish(JointTrajectory(joint_names=list(names), points=[point]))


def spin_until(node: Node, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if condition():
            return True
    return False


def save_gif(path: Path, frames: list[np.ndarray], goal: np.ndarray | None, scale: int = 2) -> None:
    """Frames side by side with the goal image, as an animated GIF at 10 frames/s."""
    from PIL import Image as PILImage

    pictures = []
    for frame in frames:
        tile = frame if goal is None else np.concatenate([frame, goal], axis=1)
        pictures.append(PILImage.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale)))
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)


def run_demo(out: Path, episodes: int = 3, seed: int = 1000) -> dict:
    """Run `episodes` reach episodes; writes demo.gif and the sim_node log into `out`; returns a summary.

    Reach only: the scripted controller moves the arm to a goal pose, it cannot push.
    """
    task = "reach"
    log = open(out / "sim_node.log", "w")  # noqa: SIM115 - outlives this block, closed below
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "ami_ros.ros.sim_node", "--ros-args",
         "-p", f"seed:={seed - 1}", "-p", f"sim.task:={task}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    rclpy.init()
    node = DemoDriver()
    local = ArmSim(SimConfig(task=task))  # the same episodes, to look up each goal's joint pose
    results: list[dict] = []
    wall0 = sim0 = None
    try:
        if not node.reset_client.wait_for_service(timeout_sec=30.0):
            raise RuntimeError(f"sim_node did not come up; see {out / 'sim_node.log'}")
        for _ in range(episodes):
            reply = node.reset_client.call_async(Trigger.Request())
            spin_until(node, reply.done, 10.0)
            if not reply.done() or not reply.result().success:
                raise RuntimeError("sim/reset failed or timed out")
            ep_seed = int(reply.result().message)
            goal = local.reset(ep_seed, task).goal
            start_frame = len(node.frames)
            node.end_effector = None
            spin_until(node, lambda: node.end_effector is not None and node.joint_state is not None, 5.0)
            if sim0 is None:
                wall0, sim0 = time.monotonic(), node.sim_time
            start_distance = float(np.linalg.norm(node.end_effector - goal.end_effector))
            move = float(np.max(np.abs(goal.arm_qpos - local.state().qpos) / local.velocity_limits))
            duration = 1.5 * move + 0.5
            t_start = node.sim_time
            node.send_trajectory(local.joint_names, goal.arm_qpos, duration)
            finished = spin_until(
                node, lambda t=t_start, d=duration: node.sim_time > t + d + 0.5, 30.0 + duration
            )
            error = float(np.linalg.norm(node.end_effector - node.goal_position))
            results.append({
                "seed": ep_seed, "task": task, "start_distance_m": round(start_distance, 3),
                "final_error_m": round(error, 4), "reached": bool(finished and error < REACHED_M),
                "sim_seconds": round(node.sim_time - t_start, 2),
            })  # fmt: skip
            print(
                f"episode {len(results)}/{episodes} seed {ep_seed}: "
                f"start {start_distance * 100:.1f} cm from goal, "
                f"ended {error * 100:.2f} cm away -> {'reached' if results[-1]['reached'] else 'MISSED'}",
                flush=True,
            )
            if len(results) == 1:
                frames = [f for _, f in node.frames[start_frame::3]]
                save_gif(out / "demo.gif", frames, node.goal_image)
        wall = time.monotonic() - (wall0 or time.monotonic())
        stamps = [t for t, _ in node.frames]
        camera_hz = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        return {
            "controller": "scripted (told the goal joint pose; not the world-model planner)",
            "episodes_completed": len(results),
            "success_rate": sum(r["reached"] for r in results) / max(1, len(results)),
            "success_threshold_m": REACHED_M,
            "real_time_factor": round((node.sim_time - (sim0 or 0.0)) / max(wall, 1e-6), 2),
            "camera_frames_received_per_sim_s": round(camera_hz, 1),
            "episodes": results,
            "run_folder": str(out),
        }
    finally:
        local.close()
        node.destroy_node()
        rclpy.try_shutdown()
        sim_proc.send_signal(signal.SIGINT)
        try:
            sim_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim_proc.kill()
        log.close()
